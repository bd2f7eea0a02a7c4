"""RFM segments and their summary, from marts.customers."""

import datetime

import dagster as dg

from ltv_pipeline.assets.analytics import ANALYTICS_GROUP, MARTS_SCHEMA
from ltv_pipeline.assets.predictions import PREDICTIONS, WINDOW
from ltv_pipeline.resources import Warehouse, WarehouseSession
from ltv_pipeline.rfm import score_customers, segment_summary

CUSTOMERS = dg.AssetKey([MARTS_SCHEMA, "customers"])


def _as_of_date(db: WarehouseSession) -> datetime.date:
    """The date the marts describe (one row of int_reporting_window), written on every row so
    BI can tell which day a segment table is about."""
    (as_of_date,) = db.row(f"select as_of_date from {WINDOW.path[0]}.{WINDOW.path[1]}")
    return as_of_date


@dg.asset(
    key_prefix=[MARTS_SCHEMA],
    deps=[CUSTOMERS, WINDOW],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "pandas"},
)
def customer_segments(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per customer with a purchase as of as_of_date (a column): R, F, M scores and RFM
    segment."""
    with warehouse.session() as db:
        customers = db.frame(
            "select customer_id, days_since_last_purchase, purchases, "
            "cast(net_revenue as double) as net_revenue, is_churned "
            f"from {MARTS_SCHEMA}.customers "
            "where has_purchased"
        )
        segments = score_customers(customers)
        segments.insert(1, "as_of_date", _as_of_date(db))
        rows = db.replace_table(f"{MARTS_SCHEMA}.customer_segments", segments, "customer_id")
    counts = segments["segment"].value_counts().sort_index()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "customers_per_segment": dg.MetadataValue.json(
                {name: int(n) for name, n in counts.items()}
            ),
        }
    )


@dg.asset(
    key=[MARTS_SCHEMA, "segment_summary"],
    deps=[customer_segments, CUSTOMERS, PREDICTIONS, WINDOW],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "pandas"},
)
def segment_summary_asset(warehouse: Warehouse):
    """One row per RFM segment as of as_of_date (a column): customers, shares of customers and
    revenue, average LTV and CLV."""
    with warehouse.session() as db:
        segments = db.frame(f"select * from {MARTS_SCHEMA}.customer_segments")
        customers = db.frame(
            f"select customer_id, net_revenue, historical_ltv from {MARTS_SCHEMA}.customers"
        )
        predictions = db.frame(
            f"select customer_id, predicted_clv from {MARTS_SCHEMA}.customer_predictions"
        )
        summary = segment_summary(segments, customers, predictions)
        summary.insert(1, "as_of_date", _as_of_date(db))
        rows = db.replace_table(f"{MARTS_SCHEMA}.segment_summary", summary, "segment")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "summary": dg.MetadataValue.md(summary.round(4).to_markdown(index=False)),
        }
    )
