"""RFM segments and their summary, from marts.customers."""

import dagster as dg

from ltv_pipeline.assets.analytics import ANALYTICS_GROUP, MARTS_SCHEMA
from ltv_pipeline.assets.predictions import PREDICTIONS
from ltv_pipeline.resources import Warehouse
from ltv_pipeline.rfm import score_customers, segment_summary

CUSTOMERS = dg.AssetKey([MARTS_SCHEMA, "customers"])


@dg.asset(
    key_prefix=[MARTS_SCHEMA],
    deps=[CUSTOMERS],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "pandas"},
)
def customer_segments(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per customer with a purchase as of as_of_date: R, F, M scores and RFM segment."""
    with warehouse.session() as db:
        customers = db.frame(
            "select customer_id, days_since_last_purchase, purchases, "
            "cast(net_revenue as double) as net_revenue, is_churned "
            f"from {MARTS_SCHEMA}.customers "
            "where has_purchased"
        )
        segments = score_customers(customers)
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
    deps=[customer_segments, CUSTOMERS, PREDICTIONS],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "pandas"},
)
def segment_summary_asset(warehouse: Warehouse):
    """One row per RFM segment: customers, shares of customers and revenue, average LTV and CLV."""
    with warehouse.session() as db:
        segments = db.frame(f"select * from {MARTS_SCHEMA}.customer_segments")
        customers = db.frame(
            f"select customer_id, net_revenue, historical_ltv from {MARTS_SCHEMA}.customers"
        )
        predictions = db.frame(
            f"select customer_id, predicted_clv from {MARTS_SCHEMA}.customer_predictions"
        )
        summary = segment_summary(segments, customers, predictions)
        rows = db.replace_table(f"{MARTS_SCHEMA}.segment_summary", summary, "segment")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "summary": dg.MetadataValue.md(summary.round(4).to_markdown(index=False)),
        }
    )
