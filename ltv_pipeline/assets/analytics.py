"""Python outputs computed from the dbt marts and written back to the warehouse."""

import dagster as dg

from ltv_pipeline.concentration import revenue_deciles
from ltv_pipeline.resources import Warehouse

ANALYTICS_GROUP = "analytics"
MARTS_SCHEMA = "marts"


@dg.asset(
    key_prefix=[MARTS_SCHEMA],
    deps=[dg.AssetKey([MARTS_SCHEMA, "customers"])],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "pandas"},
)
def customer_revenue_deciles(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per revenue decile of purchasing customers (1 = top 10%), with revenue shares."""
    with warehouse.session() as db:
        customers = db.frame(
            "select customer_id, cast(net_revenue as double) as net_revenue "
            f"from {MARTS_SCHEMA}.customers where has_purchased"
        )
        deciles = revenue_deciles(customers)
        db.replace_table(f"{MARTS_SCHEMA}.customer_revenue_deciles", deciles, "decile")
    top_share = float(deciles["share_of_revenue"].iloc[0]) if len(deciles) else 0.0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(deciles),
            "customers": int(deciles["customers"].sum()),
            "top_decile_share_of_revenue": top_share,
            "preview": dg.MetadataValue.text(deciles.round(4).to_string(index=False)),
        }
    )
