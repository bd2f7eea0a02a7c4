"""A run of every asset in this process (``ltv run``), and what is read back after it: the
summary ``ltv run`` prints and the as-of dates of the Python marts."""

from __future__ import annotations

import os
import sys
from datetime import date, datetime

from ltv_pipeline import settings

#: The code location the UI loads (workspace.yaml, ``[tool.dg.project]``) and the repository
#: name Dagster gives a ``Definitions`` object.
CODE_LOCATION = "ltv_pipeline"
REPOSITORY = "__repository__"
#: The UI's job page lists the runs tagged with the job's repository and location: a run
#: launched from the UI or the schedule carries the tag; one in this process is given it, so
#: ``ltv run`` is listed under ``all_assets`` too (not only on the global Runs page).
REPOSITORY_TAG = {".dagster/repository": f"{REPOSITORY}@{CODE_LOCATION}"}

#: The marts the Python assets write (not dbt): a dbt-only rebuild leaves them as they were.
#: Each stores the ``as_of_date`` it describes (tests check this list against the assets).
PYTHON_MARTS = (
    "customer_predictions",
    "predicted_value_by_channel",
    "predicted_value_by_channel_month",
    "clv_backtest",
    "cohort_retention",
    "cohort_retention_wide",
    "customer_revenue_deciles",
    "customer_segments",
    "segment_summary",
)


#: dbt commands that rebuild models (and so may move ``int_reporting_window``).
DBT_BUILDING = frozenset({"build", "run"})


def python_marts_as_of() -> tuple[date | None, dict[str, date | None]]:
    """``int_reporting_window.as_of_date``, and the ``as_of_date`` each Python mart holds.

    A mart that does not exist yet, or predates the ``as_of_date`` column, is left out; one
    holding several dates (it should not) maps to None.
    """
    from ltv_pipeline.defs.resources import build_resources

    warehouse = build_resources()["warehouse"]
    held: dict[str, date | None] = {}
    try:
        existing = set(warehouse.mart_tables("marts"))
        with warehouse.session() as db:
            window = db.row("select as_of_date from intermediate.int_reporting_window")
            for name in PYTHON_MARTS:
                if name not in existing:
                    continue
                if "as_of_date" not in db.frame(f"select * from marts.{name} limit 0").columns:
                    continue
                low, high = db.row(f"select min(as_of_date), max(as_of_date) from marts.{name}")
                if low is not None:
                    held[name] = _day(low) if low == high else None
    finally:
        warehouse.release()
    return (_day(window[0]) if window else None), held


def _day(value: date | datetime) -> date:
    # DuckDB returns dates; a Spark frame (or a pandas min()) may return timestamps
    return value.date() if isinstance(value, datetime) else value


def stale_marts_warning() -> str | None:
    """A warning when the Python marts describe another ``as_of_date`` than the dbt marts.

    ``ltv dbt build --vars '{as_of_date: ...}'`` rebuilds the dbt models only: the Python
    outputs (predictions, predicted value by channel, backtest, cohorts, deciles, segments)
    keep their old date (no dbt model reads them). Returns None when they agree.
    """
    try:
        window, held = python_marts_as_of()
    except Exception as exc:  # a warning must never turn a dbt success into a failure
        return f"warning: could not compare the Python marts' as_of_date with dbt's: {exc}"
    stale = {name: day for name, day in held.items() if day != window}
    if window is None or not stale:
        return None
    dates = sorted({str(day or "several dates") for day in stale.values()})
    lines = [
        f"warning: dbt built the marts as of {window}, but these Python marts are now stale "
        f"and still describe {' / '.join(dates)}:",
        *(f"  marts.{name}  (as_of_date {day or 'several dates'})" for name, day in stale.items()),
    ]
    lines += [
        "  Nothing was published: the BI snapshot is unchanged.",
        "  Rebuild every asset, the Python marts included, and publish it with:",
        f"    ltv run --as-of {window}",
    ]
    return "\n".join(lines)


def dbt_run_config(as_of_date: date | None, node_names: list[str]) -> dict:
    """Run config that builds every dbt step of a job as of ``as_of_date`` (a backfill).

    Every dbt step of the job (``defs.dbt.DBT_STEPS``; one, ``dbt_models``) takes the vars.
    """
    from ltv_pipeline.defs.dbt import DBT_STEPS

    if as_of_date is None:
        return {}
    config = {"config": {"as_of_date": as_of_date.isoformat()}}
    return {"ops": {name: config for name in node_names if name in DBT_STEPS}}


def begin_night_early() -> None:
    """Keep the last good night on a thread while ``ltv run`` starts up (DuckDB only).

    The copy of the warehouse the night begins with (1 GB at 10M orders) is then made while
    Dagster is imported and the definitions load; :func:`run_all` waits for it before Dagster
    writes its first record, and the raw load takes the night over
    (:func:`ltv_pipeline.warehouse.last_good.begin_early`). A run from the UI or the schedule
    begins it in the raw load, as before.
    """
    if settings.warehouse() != "duckdb":
        return
    from ltv_pipeline.warehouse import last_good

    last_good.begin_early(settings.duckdb_path())


def _wait_for_the_night_begun_early() -> None:
    if settings.warehouse() != "duckdb":
        return
    from ltv_pipeline.warehouse import last_good

    last_good.wait_early(settings.duckdb_path())


def run_all(*, instance=None, as_of_date: date | None = None) -> bool:
    """Materialize every asset (and run every check) once, in this process.

    With ``as_of_date``, every asset is rebuilt as of that day (dbt and Python outputs alike)
    and the snapshot published for it: a backfill.
    """
    import dagster as dg

    from ltv_pipeline.definitions import defs
    from ltv_pipeline.defs.resources import build_resources
    from ltv_pipeline.defs.schedules import all_assets_job

    job = defs().resolve_job_def(all_assets_job.name)
    # Dagster's storage fsyncs each record; during the copy of the last good night those
    # fsyncs wait for its writeback (bench/results/early_copy_ab.md): let it finish first
    _wait_for_the_night_begun_early()
    if instance is None:
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    run_config = dbt_run_config(as_of_date, list(job.graph.node_dict))
    tags = dict(REPOSITORY_TAG)
    if as_of_date:
        tags["ltv/as_of_date"] = as_of_date.isoformat()
    result = job.execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config or None, tags=tags
    )
    if not result.success and build_resources()["warehouse"].restore_last_good():
        print("the warehouse was put back to the last good night", file=sys.stderr)
    return result.success


def summary() -> dict:
    """Key figures of the last run, read from the warehouse (either engine)."""
    from ltv_pipeline.defs.resources import build_resources

    warehouse = build_resources()["warehouse"]
    try:
        with warehouse.session() as db:
            loaded, held = db.row(
                "select (select count(*) from raw.customers) + (select count(*) from raw.orders)"
                " + (select count(*) from raw.marketing_spend), "
                "(select count(*) from raw.quarantine)"
            )
            customers, buyers, revenue, margin = db.row(
                "select count(*), sum(case when has_purchased then 1 else 0 end), "
                "sum(net_revenue), sum(gross_margin) from marts.customers"
            )
            predicted_clv, backtest_error, backtest_mae, baseline_mae = db.row(
                "select (select sum(predicted_clv) from marts.customer_predictions), "
                "(select aggregate_error_pct from marts.clv_backtest where model = 'bgnbd'), "
                "(select mae from marts.clv_backtest where model = 'bgnbd'), "
                "(select mae from marts.clv_backtest where model = 'historical_average')"
            )
            verdict, reason = db.row(
                "select verdict, verdict_reason from marts.clv_backtest where model = 'bgnbd'"
            )
            (as_of_date,) = db.row("select as_of_date from intermediate.int_reporting_window")
        marts = warehouse.mart_tables("marts")
    finally:
        warehouse.release()
    return {
        "rows_loaded": int(loaded),
        "rows_quarantined": int(held),
        "customers": int(customers),
        "purchasing_customers": int(buyers or 0),
        "net_revenue": float(revenue or 0),
        "gross_margin": float(margin or 0),
        "predicted_clv_12m": None if predicted_clv is None else float(predicted_clv),
        "backtest_error_pct": None if backtest_error is None else float(backtest_error),
        "backtest_mae": None if backtest_mae is None else float(backtest_mae),
        "baseline_mae": None if baseline_mae is None else float(baseline_mae),
        "backtest_verdict": verdict,
        "backtest_verdict_reason": reason,
        "as_of_date": str(_day(as_of_date)),
        "warehouse": warehouse.location(),
        "published": str(settings.published_dir() / "marts.duckdb"),
        "marts": [f"marts.{name}" for name in marts],
    }
