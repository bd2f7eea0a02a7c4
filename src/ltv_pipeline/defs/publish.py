"""The BI snapshot, published only when every check of the run has passed."""

import datetime as dt
import re
from collections.abc import Sequence

import dagster as dg

from ltv_pipeline import publish
from ltv_pipeline.defs import check_result
from ltv_pipeline.defs.analytics.cohorts import cohort_retention
from ltv_pipeline.defs.analytics.concentration import customer_revenue_deciles
from ltv_pipeline.defs.analytics.rfm import customer_segments, segment_summary_asset
from ltv_pipeline.defs.clv import clv_backtest, customer_predictions, predicted_value_by_channel
from ltv_pipeline.defs.dbt import dbt_models, table_keys
from ltv_pipeline.defs.resources import PublishedDir
from ltv_pipeline.warehouse.base import MARTS_SCHEMA, Warehouse, WarehouseSession

PUBLISHED = dg.AssetKey(["published_marts"])
#: Order-level detail stays in the warehouse: no BI exposure reads it, and at 100M orders
#: copying it would cost more than every mart together.
NOT_PUBLISHED = frozenset({"fct_orders"})


def _failed_blocking_checks(context: dg.AssetExecutionContext) -> list[str]:
    """Checks of this run that failed with ERROR severity.

    Blocking checks already stop their downstream assets, but a failing dbt test does not stop
    an asset in another step by itself (dagster-io/dagster#25112); this is the last guard.
    """
    failed = []
    for record in context.instance.all_logs(
        context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ):
        evaluation = record.get_dagster_event().event_specific_data
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return sorted(failed)


def _marts_of_another_date(
    db: WarehouseSession, tables: Sequence[str], as_of_date: dt.date
) -> list[str]:
    """Marts with an ``as_of_date`` column holding any other day than the dbt window's.

    The manifest's ``as_of_date`` must be true of every mart in the snapshot: a Python mart
    left from a run at another date (a dbt-only rebuild, a partial materialization) fails the
    publish instead of being published under the wrong date.
    """
    day = f"cast('{as_of_date.isoformat()[:10]}' as date)"
    found = []
    for table in tables:  # names from the warehouse's catalog, not input
        if "as_of_date" not in db.frame(f"select * from {MARTS_SCHEMA}.{table} limit 0").columns:
            continue
        (others,) = db.row(
            f"select count(*) from {MARTS_SCHEMA}.{table} "
            f"where as_of_date is null or as_of_date <> {day}"
        )
        if others:
            found.append(f"{MARTS_SCHEMA}.{table} ({others} rows)")
    return found


#: BI reads last night's figures: a snapshot older than a day and two hours (the nightly run's
#: time plus its length) is late, one older than two days has missed a night (shown in the UI).
PUBLISHED_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=48), warn_window=dt.timedelta(hours=26)
)


def published_marts_asset(marts: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The ``published_marts`` asset, downstream of every mart in ``marts``."""

    @dg.asset(
        key=PUBLISHED,
        deps=list(marts),
        group_name="published",
        kinds={"duckdb", "parquet"},
        freshness_policy=PUBLISHED_FRESHNESS,
    )
    def published_marts(
        context: dg.AssetExecutionContext, warehouse: Warehouse, published: PublishedDir
    ):
        """One read-only snapshot of every mart for BI (DuckDB file + one Parquet per mart)."""
        failed = _failed_blocking_checks(context)
        if failed:
            raise dg.Failure(
                description="not publishing, blocking checks failed: " + ", ".join(failed)
            )
        tables = [t for t in warehouse.mart_tables(MARTS_SCHEMA) if t not in NOT_PUBLISHED]
        with warehouse.session() as db:
            (as_of_date,) = db.row("select as_of_date from intermediate.int_reporting_window")
            other_dates = _marts_of_another_date(db, tables, as_of_date)
        if other_dates:
            raise dg.Failure(
                description=f"not publishing: the snapshot would say as_of_date {as_of_date}, "
                "but these marts describe another day (rebuild every asset with ltv run "
                f"--as-of {as_of_date}): " + ", ".join(other_dates)
            )
        context.log.info(f"publishing {len(tables)} marts to {published.path}")
        manifest = warehouse.publish(
            MARTS_SCHEMA,
            tables,
            published.path,
            run_id=context.run_id,
            as_of_date=as_of_date,
            keys=table_keys(MARTS_SCHEMA),
        )
        warehouse.mark_published()
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(manifest.row_counts().values()),
                "path": dg.MetadataValue.path(str(published.path / manifest.duckdb_file)),
                "version": manifest.version,
                "as_of_date": manifest.as_of_date,
                "row_counts": dg.MetadataValue.json(manifest.row_counts()),
                "duckdb_sha256": manifest.duckdb_sha256,
            }
        )

    return published_marts


#: Every Python mart (dbt's come from the dbt assets).
PYTHON_MARTS = (
    customer_revenue_deciles,
    customer_segments,
    segment_summary_asset,
    cohort_retention,
    customer_predictions,
    predicted_value_by_channel,
    clv_backtest,
)

published_marts = published_marts_asset(
    [
        key
        for asset in (dbt_models, *PYTHON_MARTS)
        for key in asset.keys
        if key.path[0] == MARTS_SCHEMA and key.path[-1] not in NOT_PUBLISHED
    ]
)


@dg.asset_check(asset=PUBLISHED)
def published_snapshot_matches_manifest(
    warehouse: Warehouse, published: PublishedDir
) -> dg.AssetCheckResult:
    """What BI sees equals what the run built: every file's checksum and row count.

    Reads the version ``published/current`` points to, and fails if a fixed path BI opens
    (``marts.duckdb``, ``parquet``, ``manifest.json``) no longer leads into it.
    """
    manifest = publish.read_manifest(published.path)
    if manifest is None:
        return check_result(["no manifest.json: nothing published"], "")
    problems = publish.verify(published.path, manifest)
    with warehouse.session() as db:
        for table, rows in manifest.row_counts().items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
                problems.append(f"{table!r}: not a mart name")
                continue
            (built,) = db.row(f"select count(*) from {MARTS_SCHEMA}.{table}")
            if built != rows:
                problems.append(f"{table}: {rows} rows published, {built} in the warehouse")
    return check_result(
        problems,
        "snapshot matches its manifest and the warehouse",
        run_id=manifest.run_id,
        version=manifest.version,
    )
