"""RFM segments and their summary, from marts.customers."""

import datetime
import json

import dagster as dg

from ltv_pipeline.analytics.rfm import (
    MEASURES,
    SEGMENT_COLUMNS,
    SEGMENTS,
    measure_ranks_sql,
    score_values,
    segment_cells,
    segment_summary,
    segment_totals_sql,
    segments_sql,
)
from ltv_pipeline.charts import save_png, segments_figure
from ltv_pipeline.defs import MARTS_GROUP, check_result, not_fitted
from ltv_pipeline.defs.clv import PREDICTIONS, WINDOW
from ltv_pipeline.defs.dbt import documented_columns
from ltv_pipeline.defs.display import figures_table, png_markdown
from ltv_pipeline.defs.resources import RawFiles, ReportsDir
from ltv_pipeline.warehouse.base import MARTS_SCHEMA, Warehouse, WarehouseSession

CUSTOMERS = dg.AssetKey([MARTS_SCHEMA, "customers"])


def _as_of_date(db: WarehouseSession) -> datetime.date:
    """The date the marts describe (one row of int_reporting_window), written on every row so
    BI can tell which day a segment table is about."""
    (as_of_date,) = db.row(f"select as_of_date from {WINDOW.path[0]}.{WINDOW.path[1]}")
    return as_of_date


@dg.asset(
    key_prefix=[MARTS_SCHEMA],
    deps=[CUSTOMERS, WINDOW],
    group_name=MARTS_GROUP,
    kinds={"duckdb", "pandas"},
    metadata=documented_columns("customer_segments"),
)
def customer_segments(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per customer with a purchase as of as_of_date (a column): R, F, M scores and RFM
    segment."""
    customers = f"{MARTS_SCHEMA}.customers"
    table = f"{MARTS_SCHEMA}.customer_segments"
    with warehouse.session() as db:
        buyers, unflagged = db.row(
            "select count(*), coalesce(sum(case when is_churned is null then 1 else 0 end), 0) "
            f"from {customers} where has_purchased"
        )
        if unflagged:
            raise ValueError(f"is_churned has nulls: {unflagged} buyers of {customers}")
        as_of_date = _as_of_date(db)
        # Python scores the distinct values of each measure and the 250 score cells; the
        # warehouse gives every buyer theirs by joins (3M buyers of 10M orders: 0.9 s
        # instead of 2.4 s through pandas batches)
        inputs = {
            f"_rfm_{score}_scores": score_values(
                db.frame(measure_ranks_sql(customers, score)), int(buyers)
            )
            for score in MEASURES
        }
        inputs["_rfm_cells"] = segment_cells()
        scored = segments_sql(
            customers, {score: f"_rfm_{score}_scores" for score in MEASURES}, "_rfm_cells"
        )
        day = f"cast('{as_of_date.isoformat()[:10]}' as date)"
        rows = db.replace_table_query(
            table,
            f"select customer_id, {day} as as_of_date, {', '.join(SEGMENT_COLUMNS[1:])} "
            f"from ({scored}) as scored",
            inputs,
        )
        counts = dict(
            db.frame(f"select segment, count(*) as n from {table} group by segment").itertuples(
                index=False, name=None
            )
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "customers_per_segment": dg.MetadataValue.json(
                {name: int(counts[name]) for name in sorted(counts)}
            ),
        }
    )


@dg.asset(
    key=[MARTS_SCHEMA, "segment_summary"],
    deps=[customer_segments, CUSTOMERS, PREDICTIONS, WINDOW],
    group_name=MARTS_GROUP,
    kinds={"duckdb", "pandas"},
    metadata=documented_columns("segment_summary"),
)
def segment_summary_asset(warehouse: Warehouse, raw_files: RawFiles, reports: ReportsDir):
    """One row per RFM segment as of as_of_date (a column): customers, shares of customers and
    revenue, average LTV and CLV."""
    with warehouse.session() as db:
        totals = db.frame(
            segment_totals_sql(
                f"{MARTS_SCHEMA}.customer_segments",
                f"{MARTS_SCHEMA}.customers",
                f"{MARTS_SCHEMA}.customer_predictions",
            )
        )
        summary = segment_summary(totals)
        summary.insert(1, "as_of_date", _as_of_date(db))
        rows = db.replace_table(f"{MARTS_SCHEMA}.segment_summary", summary, "segment")
    chart = save_png(segments_figure(summary), reports.path / "segment_summary.png")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "chart": png_markdown(chart, "RFM segments: customers and revenue"),
            "summary": figures_table(
                json.loads(summary.to_json(orient="records", date_format="iso")),
                raw_files.currency,
            ),
        }
    )


@dg.asset_check(asset=customer_segments, blocking=True)
def every_buyer_has_one_segment(warehouse: Warehouse) -> dg.AssetCheckResult:
    """Each customer with a purchase has exactly one known segment, and nobody else has one."""
    known = ", ".join("'" + s.replace("'", "''") + "'" for s in SEGMENTS)
    # one join of the buyers and the segments (two anti joins took 0.1 s more at 3M buyers); a
    # buyer whose has_purchased is null is nobody's buyer, as in the dbt marts
    with warehouse.session() as db:
        missing, extra, duplicated, unknown, scores = db.row(
            f"""
            with joined as (
                select
                    count(case when c.has_purchased and s.customer_id is null then 1 end)
                        as missing,
                    count(
                        case when s.customer_id is not null
                            and not coalesce(c.has_purchased, false) then 1 end
                    ) as extra
                from {MARTS_SCHEMA}.customers as c
                full join {MARTS_SCHEMA}.customer_segments as s
                    on c.customer_id = s.customer_id
            ),

            segments as (
                select
                    count(*) - count(distinct customer_id) as duplicated,
                    count(case when segment is null or segment not in ({known}) then 1 end)
                        as unknown,
                    count(case when least(r, f, m) < 1 or greatest(r, f, m) > 5 then 1 end)
                        as scores
                from {MARTS_SCHEMA}.customer_segments
            )

            select missing, extra, duplicated, unknown, scores from joined cross join segments
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
    return check_result(
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
        return not_fitted("segment_summary", "is empty: no customer has a completed order")
    problems = []
    if customers != buyers:
        problems.append(f"segments hold {customers} customers, the mart {buyers} buyers")
    if abs((share_customers or 0) - 1) > 1e-9:
        problems.append(f"customer shares sum to {share_customers}")
    if abs((share_revenue or 0) - 1) > 1e-9:
        problems.append(f"revenue shares sum to {share_revenue}")
    return check_result(
        problems,
        "shares sum to 1",
        share_of_customers=share_customers,
        share_of_revenue=share_revenue,
    )
