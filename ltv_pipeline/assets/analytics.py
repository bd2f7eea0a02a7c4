"""Python outputs computed from the dbt marts and written back to the warehouse."""

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa

from ltv_pipeline.concentration import revenue_deciles
from ltv_pipeline.resources import Warehouse, WarehouseSession

ANALYTICS_GROUP = "analytics"
MARTS_SCHEMA = "marts"
#: The one-row dbt model that says which day "today" is (the dbt var ``as_of_date``).
REPORTING_WINDOW = dg.AssetKey(["intermediate", "int_reporting_window"])


def read_as_of_date(db: WarehouseSession) -> dt.date:
    """The ``as_of_date`` the dbt marts were built for (``int_reporting_window``).

    Every Python mart stores it, so a mart left behind by a dbt-only rebuild at another date
    says so itself (``ltv dbt build`` warns; publishing refuses a mixed snapshot).
    """
    (value,) = db.row("select as_of_date from intermediate.int_reporting_window")
    return value.date() if isinstance(value, dt.datetime) else value


def with_as_of_date(frame: pd.DataFrame, as_of_date: dt.date) -> pd.DataFrame:
    """``frame`` with a last column ``as_of_date``, typed as a date even when it is empty.

    An Arrow date column: DuckDB and Spark (through Arrow) both store it as DATE, where a
    column of Python dates would be untyped when there are no rows.
    """
    out = frame.copy()
    out["as_of_date"] = pd.Series(
        [as_of_date] * len(out), index=out.index, dtype=pd.ArrowDtype(pa.date32())
    )
    return out


@dg.asset(
    key_prefix=[MARTS_SCHEMA],
    deps=[dg.AssetKey([MARTS_SCHEMA, "customers"]), REPORTING_WINDOW],
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
        as_of_date = read_as_of_date(db)
        deciles = revenue_deciles(customers)
        db.replace_table(
            f"{MARTS_SCHEMA}.customer_revenue_deciles",
            with_as_of_date(deciles, as_of_date),
            "decile",
        )
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
