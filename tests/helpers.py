"""Running the real pipeline in-process for tests."""

from __future__ import annotations

import dagster as dg

from ltv_pipeline.definitions import defs
from ltv_pipeline.defs.dbt import DBT_STEPS, DbtBuildConfig
from ltv_pipeline.defs.ingest import RawLoadConfig
from ltv_pipeline.defs.schedules import all_assets_job


def run_pipeline(
    selection: dg.AssetSelection | None = None,
    *,
    as_of_date: str | None = None,
    full_refresh: bool = False,
    dbt_vars: dict[str, float] | None = None,
    op_config: dict | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset (or ``selection``) with the env's paths, on an ephemeral instance."""
    definitions = defs()
    if selection is None:
        job = definitions.resolve_job_def(all_assets_job.name)
    else:
        job = dg.Definitions.merge(
            definitions, dg.Definitions(jobs=[dg.define_asset_job("subset", selection)])
        ).resolve_job_def("subset")
    ops: dict = dict(op_config or {})
    if full_refresh and "raw_tables" in job.graph.node_dict:
        ops.setdefault("raw_tables", RawLoadConfig(full_refresh=True))
    if as_of_date or full_refresh or dbt_vars:
        config = DbtBuildConfig(
            as_of_date=as_of_date, full_refresh=full_refresh, vars=dbt_vars or {}
        )
        for name in job.graph.node_dict:
            if name in DBT_STEPS:
                ops[name] = config
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config=dg.RunConfig(ops=ops) if ops else None,
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Asset check name -> passed, for every check evaluated in the run."""
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in (
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        )
    }


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Asset check name -> its evaluation (passed, severity, description, metadata)."""
    return {
        event.event_specific_data.check_name: event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def materialization_metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    """The metadata values of the last materialization of asset ``key`` (e.g. "marts/x")."""
    for event in reversed(result.all_events):
        if (
            event.event_type_value == "ASSET_MATERIALIZATION"
            and event.asset_key.to_user_string() == key
        ):
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise KeyError(key)


def fitted_parameters(result: dg.ExecuteInProcessResult, key: str) -> dict[str, float]:
    """Parameter -> value of the ``fitted_parameters`` table an asset (e.g. "marts/x") shows."""
    table = materialization_metadata(result, key)["fitted_parameters"]
    return {record.data["parameter"]: record.data["value"] for record in table.records}


def table_rows(value: dg.TableMetadataValue) -> list[dict]:
    """The rows of a table shown as metadata, as dicts."""
    return [dict(record.data) for record in value.records]


def materialized_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        event.asset_key.to_user_string()
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(event.event_specific_data.error.to_string())
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    )


def run_on_files(
    root, customers: str, orders: str, spend: str, **run: object
) -> dg.ExecuteInProcessResult:
    """Write the three CSV texts into ``root/raw`` and run the pipeline there (``run`` as for
    :func:`run_pipeline`), with the warehouse at ``root/warehouse.duckdb``."""
    import pytest

    raw = root / "raw"
    raw.mkdir()
    (raw / "customers.csv").write_text(customers)
    (raw / "orders.csv").write_text(orders)
    (raw / "marketing_spend.csv").write_text(spend)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_DATA_DIR", str(root))
        mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        return run_pipeline(**run)
