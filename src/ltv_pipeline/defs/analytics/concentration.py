"""Python outputs computed from the dbt marts and written back to the warehouse."""

import itertools

import dagster as dg

from ltv_pipeline.analytics.concentration import revenue_deciles
from ltv_pipeline.defs import MARTS_GROUP, REPORTING_WINDOW, read_as_of_date, replace_mart
from ltv_pipeline.defs.dbt import documented_columns
from ltv_pipeline.warehouse.base import MARTS_SCHEMA, Warehouse


@dg.asset(
    key_prefix=[MARTS_SCHEMA],
    deps=[dg.AssetKey([MARTS_SCHEMA, "customers"]), REPORTING_WINDOW],
    group_name=MARTS_GROUP,
    kinds={"duckdb", "pandas"},
    metadata=documented_columns("customer_revenue_deciles"),
)
def customer_revenue_deciles(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per revenue decile of purchasing customers (1 = top 10%), with revenue shares."""
    with warehouse.session() as db:
        customers = db.frame(
            "select cast(net_revenue as double) as net_revenue "
            f"from {MARTS_SCHEMA}.customers where has_purchased"
        )
        as_of_date = read_as_of_date(db)
        deciles = revenue_deciles(customers)
        replace_mart(db, context.asset_key, deciles, as_of_date, "decile")
    top_share = float(deciles["share_of_revenue"].iloc[0]) if len(deciles) else 0.0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(deciles),
            "as_of_date": str(as_of_date),
            "customers": int(deciles["customers"].sum()),
            "top_decile_share_of_revenue": top_share,
            "preview": dg.MetadataValue.text(deciles.round(4).to_string(index=False)),
        }
    )


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
