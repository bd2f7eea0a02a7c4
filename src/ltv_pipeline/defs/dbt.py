"""Every dbt model as an asset; dbt tests become asset checks, each described. The dbt project
is built once, in :mod:`ltv_pipeline.defs.resources`; its manifest must exist first:
``ltv prepare`` (dbt parse)."""

import datetime as dt
import functools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from pydantic import Field, field_validator

from ltv_pipeline.defs.display import GLOSSARY_METRICS, figures_table, glossary
from ltv_pipeline.defs.resources import RawFiles, dbt_project
from ltv_pipeline.warehouse.base import Warehouse, WarehouseSession


@functools.cache
def _manifest() -> dict[str, Any]:
    return json.loads(dbt_project.manifest_path.read_text())


def _sources() -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in _manifest()["sources"].values()}


def table_keys(schema: str) -> dict[str, list[str]]:
    """The unique key of the tables of ``schema`` that declare one, by table name.

    A dbt model's is the column(s) of its ``unique`` or ``unique_combination`` test over the
    whole table (not one restricted by ``where`` or to a night's rows); a Python mart's is
    ``meta.grain`` in its source entry (``_clv__sources.yml``), since no dbt test can run on a
    table written after dbt's build. Publishing sorts by it (:func:`ltv_pipeline.publish.publish`).
    """
    manifest = _manifest()
    keys: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        test = node.get("test_metadata") or {}
        kwargs = test.get("kwargs", {})
        if (
            node["resource_type"] != "test"
            or test.get("name") not in ("unique", "unique_combination")
            or set(kwargs) - {"column_name", "columns", "model"}
            or node["config"].get("where")
            or not node.get("attached_node")
        ):
            continue
        model = manifest["nodes"][node["attached_node"]]
        if model["schema"] == schema:
            keys[model["name"]] = (
                [kwargs["column_name"]] if "column_name" in kwargs else list(kwargs["columns"])
            )
    for source in manifest["sources"].values():
        grain = source["config"].get("meta", {}).get("grain")
        if source["schema"] == schema and grain:
            keys[source["name"]] = list(grain)
    return keys


def documented_columns(table: str) -> dict[str, dg.TableSchema]:
    """The columns (type and description) of a table a Python asset writes (a raw table, a
    Python mart), from its dbt source entry (``models/staging/_shop__sources.yml``,
    ``_clv__sources.yml``): documented once, where dbt users look, and shown on the asset in
    the Dagster UI; the snapshot test checks the marts' types against the warehouse."""
    columns = _sources()[table]["columns"]
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=name,
                    type=column.get("data_type") or "unknown",
                    description=column["description"],
                )
                for name, column in columns.items()
            ]
        )
    }


def metrics_glossary() -> dg.TableMetadataValue:
    """The metrics glossary (:func:`display.glossary`) from the YAML's column descriptions."""
    columns = {}
    for _, table, column in GLOSSARY_METRICS:
        source = _sources().get(table)
        described = source["columns"] if source else _model_columns(table)
        text = described[column]
        columns[(table, column)] = text["description"] if isinstance(text, dict) else text
    return glossary(columns)


#: The marts whose figures the glossary is shown beside (dbt's; the Python assets add theirs).
GLOSSARY_TABLES = frozenset({"ltv_summary"})


# Figures a person looks for on a mart in the UI, beside its row count: (name, SQL) per table.
KEY_FIGURES: dict[str, list[tuple[str, str]]] = {
    "ltv_summary": [
        (
            "overall",
            "select is_reliable, unreliable_reason, months_observed, churn_events, "
            "expected_active_months, lifespan_extrapolated_share, customer_lifespan_years, "
            "historical_ltv, margin_ltv, discounted_ltv, monthly_churn_rate "
            "from marts.ltv_summary where dimension = 'overall'",
        )
    ],
    "ltv_cac_by_channel": [
        (
            "ltv_to_cac_by_channel",
            "select acquisition_channel, ltv_to_cac, ltv_to_cac_status, "
            "ltv_to_cac_unknown_reason "
            "from marts.ltv_cac_by_channel order by acquisition_channel",
        )
    ],
    "churn_monthly": [
        (
            "last_complete_month",
            "select month_start, churn_rate, retention_rate, active_at_end "
            "from marts.churn_monthly where is_complete_month "
            "order by month_start desc limit 1",
        )
    ],
}


# What a generic test checks, from its arguments; other tests (reconciles_by_day,
# churn_flow_balances, the singular ones) say it in the comment that opens their file.
_GENERIC_TESTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "not_null": lambda k: f"`{k['column_name']}` is never null.",
    "unique": lambda k: f"`{k['column_name']}` is unique: no value appears on two rows.",
    "unique_combination": lambda k: f"One row per ({', '.join(k['columns'])}).",
    "accepted_values": lambda k: (
        f"`{k['column_name']}` is one of {', '.join(map(str, k['values']))}."
    ),
    "relationships": lambda k: f"Every `{k['column_name']}` is a `{k['field']}` of {k['to']}.",
    "row_count_equals": lambda k: f"Exactly {k['expected']} row(s).",
    "positive_when": lambda k: f"`{k['column_name']}` > 0 wherever {k['condition']}.",
    "not_before": lambda k: f"`{k['column_name']}` >= `{k['other_column']}` on every row.",
    "between": lambda k: (
        f"`{k['column_name']}` "
        + (
            f"lies in [{k['min_value']}, {k['max_value']}]"
            if "min_value" in k and "max_value" in k
            else f"is at least {k['min_value']}"
            if "min_value" in k
            else f"is at most {k['max_value']}"
        )
        + " (nulls pass)."
    ),
}
_OPENING_COMMENT = re.compile(r"\A\s*\{#-?(.*?)-?#\}", re.S)


def describe_dbt_test(test: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """A sentence for a dbt test's asset check: what it checks, and what a failure does.

    The test's own ``description`` (or ``meta.description``) wins; otherwise it is built from
    the generic test's arguments, or read from the opening ``{#- ... -#}`` comment of the
    test's file (``tests/generic/test_<name>.sql``, or the singular test's own).
    """
    metadata = test.get("test_metadata") or {}
    name = metadata.get("name")
    kwargs = metadata.get("kwargs", {})
    what = test.get("description") or test.get("meta", {}).get("description")
    if not what and name in _GENERIC_TESTS:
        what = _GENERIC_TESTS[name](kwargs)
    if not what:
        code = test.get("raw_code", "")
        if name:
            macro = manifest["macros"].get(f"macro.{test['package_name']}.test_{name}", {})
            path = macro.get("original_file_path")
            code = (dbt_project.project_dir / path).read_text() if path else ""
        found = _OPENING_COMMENT.match(code)
        what = " ".join(found.group(1).split()) if found else f"dbt test {test['name']}."
    severity = (test.get("config", {}).get("severity") or "error").lower()
    consequence = {
        "error": "Severity error: a failure stops the run.",
        "warn": "Severity warn: a failure is reported and the run goes on.",
    }[severity]
    return f"{what.strip()} {consequence}"


class LtvDbtTranslator(DagsterDbtTranslator):
    """Groups follow the dbt folders (staging, intermediate, marts); every dbt test's check
    says what it checks (:func:`describe_dbt_test`)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else None

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=describe_dbt_test(manifest["nodes"][unique_id], manifest),
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
        )


class DbtBuildConfig(dg.Config):
    """Run options: rebuild the marts as of a past date, or rebuild incremental models."""

    as_of_date: str | None = None
    full_refresh: bool = False
    # Other dbt vars (e.g. churn_inactivity_days); each is range-checked by its macro.
    vars: dict[str, float] = Field(default_factory=dict)

    @field_validator("as_of_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            dt.date.fromisoformat(value)  # raises ValueError naming the bad value
        return value

    def cli_args(self) -> list[str]:
        args = ["build"]
        dbt_vars = {name: int(v) if float(v).is_integer() else v for name, v in self.vars.items()}
        if self.as_of_date:
            dbt_vars["as_of_date"] = self.as_of_date
        if dbt_vars:
            args += ["--vars", json.dumps(dbt_vars, sort_keys=True)]
        if self.full_refresh:
            args.append("--full-refresh")
        return args


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=LtvDbtTranslator(),
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    raw_files: RawFiles,
    config: DbtBuildConfig,
):
    """Build and test the dbt models selected in this run, in one dbt invocation."""
    yield from build_dbt_models(context, dbt, warehouse, raw_files, config)


#: The dbt steps of a run; each takes the run's :class:`DbtBuildConfig`. One: the predictions
#: are made after it, and what reads them is Python (README, "One dbt invocation").
DBT_STEPS = (dbt_models.op.name,)


def build_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    raw_files: RawFiles,
    config: DbtBuildConfig,
) -> Iterator[Any]:
    """One ``dbt build`` of the step's selection; its events, with row counts and key figures."""
    # dbt holds the DuckDB lock while it builds, so row counts and key figures are read once it
    # has exited; the events are held until then (dbt's own log streams meanwhile).
    events, failure = [], None
    warehouse.release()  # e.g. a local Spark's metastore admits one process
    invocation = dbt.cli(config.cli_args(), context=context)
    try:
        for event in invocation.stream():
            events.append(event)
    except Exception as exc:  # re-raised below, after reporting what was built
        failure = exc
        # an error raised while dbt still runs (e.g. a stale manifest): let it finish, or the
        # warehouse is still locked and the real error hides behind a lock error
        invocation.process.wait()
    _keep_partial_parse(invocation.target_path)
    try:
        prune_invocation_folders(invocation.target_path, keep=KEPT_INVOCATIONS)
    except OSError as exc:  # tidying up must not fail a build that succeeded
        context.log.warning(f"could not prune old dbt invocation folders: {exc}")
    with warehouse.session() as db:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                figures = _table_metadata(db, key, raw_files.currency)
                event = event.with_metadata({**event.metadata, **figures})
            yield event
    if failure is not None:
        raise failure


def _keep_partial_parse(invocation_target: Path) -> None:
    """Keep this invocation's parse state where the next invocation looks for it.

    dagster-dbt gives each invocation its own target folder, seeded with
    ``target/partial_parse.msgpack``. dbt parses the whole project again (3 s) when the profile
    differs from that file's, e.g. after ``LTV_DUCKDB_PATH`` changed, and writes the new state
    only into the invocation's folder; so without this every later invocation parses again.
    """
    fresh = invocation_target / "partial_parse.msgpack"
    if not fresh.exists():
        return
    kept = Path(dbt_project.project_dir, dbt_project.target_path, "partial_parse.msgpack")
    staged = kept.with_name(f".{kept.name}.{os.getpid()}")
    shutil.copyfile(fresh, staged)
    os.replace(staged, kept)  # atomic: a concurrent invocation reads the old or the new file


#: dbt invocation folders kept under ``dbt_project/target`` (compiled SQL, ``dbt.log``, run
#: results): enough to look back over a week of nights.
KEPT_INVOCATIONS = 10
#: ... and none is deleted before it is this old (seconds): it may still be written.
PRUNE_AFTER_SECONDS = 6 * 3600


def prune_invocation_folders(
    latest: Path, *, keep: int, min_age_seconds: float = PRUNE_AFTER_SECONDS
) -> list[Path]:
    """Delete the invocation folders of ``latest``'s step beyond the ``keep`` newest, once
    they are ``min_age_seconds`` old.

    dagster-dbt gives each invocation a new folder ``<step>-<run id>-<random>`` under the
    target folder and never removes it: about 6 MB a night at any shop size (the manifest,
    the parse state and dbt's debug log), which a nightly job would pile up without end.
    The newest are kept (``latest`` among them); the age keeps the folder of an invocation
    that another process (a run from the UI, a test worker) is still writing, however many
    have finished since it started. A folder that vanishes meanwhile (another process
    pruning) is skipped. Returns the deleted folders.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    step = latest.name.rsplit("-", 2)[0]
    dated = []
    for path in latest.parent.glob(f"{step}-*-*"):
        if path.name.rsplit("-", 2)[0] != step or path == latest:
            continue
        try:
            if path.is_dir():
                dated.append((path.stat().st_mtime, path))
        except OSError:  # deleted by another process since the listing
            continue
    dated.sort(reverse=True)
    cutoff = time.time() - min_age_seconds
    stale = [path for mtime, path in dated[keep - 1 :] if mtime < cutoff]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)  # another process may be pruning too
    return stale


def _table_metadata(db: WarehouseSession, key: dg.AssetKey, currency: str) -> dict[str, Any]:
    # dbt's schema and model names are plain identifiers: unquoted, as both engines take them
    schema, name = key.path[0], key.path[-1]
    (rows,) = db.row(f"select count(*) from {schema}.{name}")
    metadata: dict[str, Any] = {"dagster/row_count": int(rows)}
    for label, sql in KEY_FIGURES.get(name, []):
        frame = db.frame(sql)
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        metadata[label] = figures_table(records, currency, _model_columns(name))
    if name in GLOSSARY_TABLES:
        metadata["glossary"] = metrics_glossary()
    return metadata


@functools.cache
def _model_columns(model: str) -> dict[str, str]:
    """Column name -> description of a dbt model, from its YAML (via the manifest)."""
    (node,) = (
        n
        for n in _manifest()["nodes"].values()
        if n["resource_type"] == "model" and n["name"] == model
    )
    return {name: column.get("description", "") for name, column in node["columns"].items()}
