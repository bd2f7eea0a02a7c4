"""Asset checks on the Python assets: each recomputes its claim independently of the asset."""

import itertools
import math
import re

import dagster as dg

from ltv_pipeline import gates, publish
from ltv_pipeline.assets.analytics import MARTS_SCHEMA, customer_revenue_deciles
from ltv_pipeline.assets.cohort_outputs import RETENTION
from ltv_pipeline.assets.ingestion import raw_key
from ltv_pipeline.assets.predictions import BACKTEST, PREDICTIONS
from ltv_pipeline.assets.publishing import PUBLISHED
from ltv_pipeline.assets.segments import customer_segments, segment_summary_asset
from ltv_pipeline.ingest import (
    LOAD_ORDER,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    count_input_rows,
    find_files,
    ignored_files,
)
from ltv_pipeline.resources import PublishedDir, RawFiles, Warehouse
from ltv_pipeline.rfm import SEGMENTS


def _rows_reconcile_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(table),
        name=f"{table}_rows_reconcile",
        blocking=True,
        description=f"Rows in the {table} files = rows loaded + rows quarantined.",
    )
    def _check(warehouse: Warehouse, raw_files: RawFiles) -> dg.AssetCheckResult:
        files = find_files(raw_files.path, table)
        rows_in = sum(count_input_rows(path) for path in files)
        # table is one of LOAD_ORDER's names, not input
        with warehouse.session() as db:
            (loaded,) = db.row(f"select count(*) from {RAW_SCHEMA}.{table}")
            (held,) = db.row(
                f"select count(*) from {RAW_SCHEMA}.{QUARANTINE_TABLE} "
                f"where source_table = '{table}'"
            )
        return dg.AssetCheckResult(
            passed=rows_in == loaded + held,
            metadata={
                "rows_in": rows_in,
                "rows_loaded": loaded,
                "rows_quarantined": held,
                "difference": rows_in - loaded - held,
            },
        )

    return _check


@dg.asset_check(
    asset=raw_key(QUARANTINE_TABLE),
    name="no_raw_file_ignored",
    description="Every file in the raw folder is read by a table (none is passed over).",
)
def no_raw_file_ignored(raw_files: RawFiles) -> dg.AssetCheckResult:
    """Warn (not block) about files no table reads: a misnamed export (``orders.xlsx``,
    ``orders/2026-07.tsv``) would otherwise be skipped without a word while the as-of date
    moves past its days; a stray note must not stop the night."""
    ignored = ignored_files(raw_files.path)
    return dg.AssetCheckResult(
        passed=not ignored,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(ignored)} file(s) match no table and were not read: {', '.join(ignored)}"
            if ignored
            else "every file was read"
        ),
        metadata={"files_ignored": dg.MetadataValue.json(ignored)},
    )


raw_checks = [*(_rows_reconcile_check(table) for table in LOAD_ORDER), no_raw_file_ignored]


@dg.asset_check(asset=customer_revenue_deciles, blocking=True)
def deciles_reconcile_with_customers(warehouse: Warehouse) -> dg.AssetCheckResult:
    """Deciles cover every purchasing customer and all revenue; shares rise to exactly 1."""
    with warehouse.session() as db:
        mart_customers, mart_revenue = db.row(
            f"select count(*), cast(coalesce(sum(net_revenue), 0) as double) "
            f"from {MARTS_SCHEMA}.customers where has_purchased"
        )
        rows = db.frame(
            "select decile, customers, net_revenue, min_net_revenue, max_net_revenue, "
            f"cumulative_share_of_revenue from {MARTS_SCHEMA}.customer_revenue_deciles "
            "order by decile"
        ).itertuples(index=False, name=None)
        rows = list(rows)
    customers = sum(r[1] for r in rows)
    revenue = sum(r[2] for r in rows)
    cumulative = [r[5] for r in rows]
    problems = []
    if customers != mart_customers:
        problems.append(f"deciles hold {customers} customers, the mart {mart_customers}")
    if abs(revenue - mart_revenue) > 1e-6 * max(1.0, mart_revenue):
        problems.append(f"deciles hold revenue {revenue:.2f}, the mart {mart_revenue:.2f}")
    if any(b < a - 1e-12 for a, b in itertools.pairwise(cumulative)):
        problems.append("cumulative share decreases")
    if rows and mart_revenue > 0 and abs(cumulative[-1] - 1) > 1e-9:
        problems.append(f"cumulative share ends at {cumulative[-1]}, not 1")
    if any(lower[4] > higher[3] for higher, lower in itertools.pairwise(rows)):
        problems.append("a customer in a lower decile out-spends one in a higher decile")
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or "deciles reconcile with marts.customers",
        metadata={
            "customers": customers,
            "mart_customers": mart_customers,
            "net_revenue": revenue,
            "mart_net_revenue": mart_revenue,
        },
    )


def _result(problems: list[str], ok: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems, description="; ".join(problems) or ok, metadata=metadata
    )


@dg.asset_check(asset=customer_segments, blocking=True)
def every_buyer_has_one_segment(warehouse: Warehouse) -> dg.AssetCheckResult:
    """Each customer with a purchase has exactly one known segment, and nobody else has one."""
    known = ", ".join("'" + s.replace("'", "''") + "'" for s in SEGMENTS)
    with warehouse.session() as db:
        missing, extra, duplicated, unknown, scores = db.row(
            f"""
            select
                (select count(*) from {MARTS_SCHEMA}.customers c
                 where c.has_purchased and c.customer_id not in
                     (select customer_id from {MARTS_SCHEMA}.customer_segments)),
                (select count(*) from {MARTS_SCHEMA}.customer_segments s
                 where s.customer_id not in
                     (select customer_id from {MARTS_SCHEMA}.customers where has_purchased)),
                (select count(*) - count(distinct customer_id)
                 from {MARTS_SCHEMA}.customer_segments),
                (select count(*) from {MARTS_SCHEMA}.customer_segments
                 where segment not in ({known})),
                (select count(*) from {MARTS_SCHEMA}.customer_segments
                 where least(r, f, m) < 1 or greatest(r, f, m) > 5)
            """
        )
    problems = [
        f"{n} {what}"
        for n, what in [
            (missing, "buyers without a segment"),
            (extra, "segments for non-buyers"),
            (duplicated, "duplicate customers"),
            (unknown, "unknown segment names"),
            (scores, "scores outside 1-5"),
        ]
        if n
    ]
    return _result(
        problems,
        "every buyer has exactly one segment",
        missing=missing,
        extra=extra,
        duplicated=duplicated,
    )


@dg.asset_check(asset=segment_summary_asset, blocking=True)
def segment_shares_sum_to_one(warehouse: Warehouse) -> dg.AssetCheckResult:
    """Customer and revenue shares each sum to 1, and customers add up to the buyers."""
    with warehouse.session() as db:
        customers, share_customers, share_revenue = db.row(
            f"select sum(customers), sum(share_of_customers), sum(share_of_revenue) "
            f"from {MARTS_SCHEMA}.segment_summary"
        )
        (buyers,) = db.row(f"select count(*) from {MARTS_SCHEMA}.customers where has_purchased")
    if not buyers and not customers:
        # every order refunded or cancelled: nothing to segment, which is news, not an error
        return _not_fitted("segment_summary", "is empty: no customer has a completed order")
    problems = []
    if customers != buyers:
        problems.append(f"segments hold {customers} customers, the mart {buyers} buyers")
    if abs((share_customers or 0) - 1) > 1e-9:
        problems.append(f"customer shares sum to {share_customers}")
    if abs((share_revenue or 0) - 1) > 1e-9:
        problems.append(f"revenue shares sum to {share_revenue}")
    return _result(
        problems,
        "shares sum to 1",
        share_of_customers=share_customers,
        share_of_revenue=share_revenue,
    )


@dg.asset_check(asset=RETENTION, blocking=True)
def cohort_retention_is_consistent(warehouse: Warehouse) -> dg.AssetCheckResult:
    """Retention in [0, 1], month 0 is 100%, cumulative values never decrease."""
    window = "over (partition by cohort_month order by months_since_acquisition)"
    with warehouse.session() as db:
        out_of_range, month0, decreasing = db.row(
            f"""
            with ordered as (
                select *,
                    lag(cumulative_net_revenue_per_customer) {window} as prev_revenue,
                    lag(cumulative_gross_margin_per_customer) {window} as prev_margin
                from {MARTS_SCHEMA}.cohort_retention
            )
            select
                coalesce(sum(case when retention < 0 or retention > 1 or retention is null
                             then 1 else 0 end), 0),
                coalesce(sum(case when months_since_acquisition = 0 and retention <> 1
                             then 1 else 0 end), 0),
                coalesce(sum(case when cumulative_net_revenue_per_customer < prev_revenue - 1e-9
                                  or cumulative_gross_margin_per_customer < prev_margin - 1e-9
                             then 1 else 0 end), 0)
            from ordered
            """
        )
    problems = [
        f"{n} {what}"
        for n, what in [
            (out_of_range, "retention values outside [0, 1]"),
            (month0, "cohorts whose month 0 is not 100%"),
            (decreasing, "cumulative values that decrease"),
        ]
        if n
    ]
    return _result(
        problems,
        "retention consistent",
        out_of_range=out_of_range,
        month0_not_full=month0,
        decreasing=decreasing,
    )


def _not_fitted(what: str, status: str) -> dg.AssetCheckResult:
    # a shop too small to fit is a warning, not wrong numbers: the predictions are null
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{what} {status}",
    )


@dg.asset_check(asset=PREDICTIONS, blocking=True)
def predictions_cover_buyers_and_are_valid(warehouse: Warehouse) -> dg.AssetCheckResult:
    """One prediction per buyer; P(alive) in [0, 1]; expected purchases and CLV finite, >= 0."""
    # "between 0 and 1e308" is false for NaN and infinity on both engines (no isfinite on Spark)
    with warehouse.session() as db:
        rows, buyers, fitted, bad_alive, bad_values = db.row(
            f"""
            select
                (select count(distinct customer_id) from {MARTS_SCHEMA}.customer_predictions),
                (select count(*) from intermediate.int_customer_purchases_summarized),
                (select count(p_alive) from {MARTS_SCHEMA}.customer_predictions),
                (select count(*) from {MARTS_SCHEMA}.customer_predictions
                 where not (p_alive between 0 and 1)),
                (select count(*) from {MARTS_SCHEMA}.customer_predictions
                 where not (predicted_clv between 0 and 1e308
                            and expected_purchases between 0 and 1e308
                            and expected_order_value > 0 and expected_order_value <= 1e308))
            """
        )
    problems = [
        f"{n} {what}"
        for n, what in [
            (abs(rows - buyers), "buyers without exactly one prediction"),
            (fitted and rows - fitted, "customers without a prediction from a fitted model"),
            (bad_alive, "P(alive) outside [0, 1]"),
            (bad_values, "negative or non-finite predictions"),
        ]
        if n
    ]
    if not buyers and not problems:
        return _not_fitted("BG/NBD", "not fitted: no customer has a completed order (empty)")
    if rows and not fitted and not problems:
        return _not_fitted("BG/NBD", "not fitted (too little data): predictions are null")
    return _result(problems, "predictions valid", predictions=rows, buyers=buyers)


def _backtest_row(warehouse: Warehouse) -> tuple[dict, dict]:
    """The BG/NBD row of ``clv_backtest`` and the naive forecast's, as dicts."""
    with warehouse.session() as db:
        frame = db.frame(
            "select model, status, aggregate_error_pct, mae, spearman, predicted_total, "
            f"verdict, verdict_reason, is_backfill from {MARTS_SCHEMA}.clv_backtest"
        )
    rows = {row["model"]: row for row in frame.to_dict("records")}
    return rows["bgnbd"], rows["historical_average"]


def _scores_metadata(model: dict, baseline: dict) -> dict[str, object]:
    return {
        "verdict": str(model["verdict"]),
        "is_backfill": bool(model["is_backfill"]),
        "aggregate_error_pct": float(model["aggregate_error_pct"]),
        "mae": float(model["mae"]),
        "baseline_mae": float(baseline["mae"]),
        "spearman": float(model["spearman"]),
        "baseline_spearman": float(baseline["spearman"]),
    }


@dg.asset_check(asset=BACKTEST, blocking=False)
def backtest_within_accuracy_bars(warehouse: Warehouse) -> dg.AssetCheckResult:
    """BG/NBD's holdout forecast meets the accuracy bars: reported (WARN), never blocking.

    A model merely less accurate than a fixed bar is still the best forecast there is; the
    bars (``clv_backtest`` config) say when a person should look, not when to withhold marts.
    Unlike the other checks this one reports the verdict the asset wrote rather than
    recomputing it: the bars are the asset's config, so the mart, the asset's metadata and
    this check cannot disagree about them.
    """
    model, baseline = _backtest_row(warehouse)
    if model["status"] != "scored":
        return _not_fitted("backtest", str(model["status"]))
    passed = model["verdict"] == gates.OK
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "BG/NBD meets the accuracy bars"
            if passed
            else f"{model['verdict']}: {model['verdict_reason']}"
        ),
        metadata=_scores_metadata(model, baseline),
    )


@dg.asset_check(asset=BACKTEST, blocking=True)
def backtest_fit_not_broken(warehouse: Warehouse) -> dg.AssetCheckResult:
    """The fit is not broken: finite forecasts, not far worse than the naive forecast, no
    collapse against the recent nights (limits: ``clv_backtest`` config).

    Fails with ERROR (blocking publishing) on a nightly run; in a backfill only non-finite
    output blocks, and a broken verdict on accuracy alone is a WARN. Non-finite scores are
    tested here from the table itself, whatever the verdict column says.
    """
    model, baseline = _backtest_row(warehouse)
    if model["status"] != "scored":
        return _not_fitted("backtest", str(model["status"]))
    metadata = _scores_metadata(model, baseline)
    non_finite = not all(
        value is not None and math.isfinite(value)
        for value in (model["mae"], model["predicted_total"])
    )
    if non_finite:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"non-finite forecast: MAE {model['mae']}, total "
            f"{model['predicted_total']} ({model['verdict_reason']})",
            metadata=metadata,
        )
    if model["verdict"] not in (gates.OK, gates.LESS_ACCURATE, gates.BROKEN):
        return _result([f"scored, but no verdict ({model['verdict']!r})"], "", **metadata)
    if model["verdict"] != gates.BROKEN:
        return _result([], "the fit is not broken", **metadata)
    backfill = bool(model["is_backfill"])
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN if backfill else dg.AssetCheckSeverity.ERROR,
        description=(
            f"broken{' (backfill: not blocking on accuracy)' if backfill else ''}: "
            f"{model['verdict_reason']}"
        ),
        metadata=metadata,
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
        return _result(["no manifest.json: nothing published"], "")
    problems = publish.verify(published.path, manifest)
    with warehouse.session() as db:
        for table, rows in manifest.row_counts().items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
                problems.append(f"{table!r}: not a mart name")
                continue
            (built,) = db.row(f"select count(*) from {MARTS_SCHEMA}.{table}")
            if built != rows:
                problems.append(f"{table}: {rows} rows published, {built} in the warehouse")
    return _result(
        problems,
        "snapshot matches its manifest and the warehouse",
        run_id=manifest.run_id,
        version=manifest.version,
    )
