"""Predictive CLV: BG/NBD purchases and Gamma-Gamma spend, per customer."""

import dagster as dg
import numpy as np
import pandas as pd

from ltv_pipeline import clv
from ltv_pipeline.assets.analytics import ANALYTICS_GROUP, MARTS_SCHEMA
from ltv_pipeline.resources import DuckDBWarehouse, replace_table

PREDICTIONS = dg.AssetKey([MARTS_SCHEMA, "customer_predictions"])
HORIZON_MONTHS = 12
TIME_UNIT_DAYS = 7.0

# The per-customer summary is computed in the warehouse; only it crosses into Python.
# frequency = repeat purchases; recency and T in weeks from the first purchase (timestamps,
# so two purchases on one day still have recency > 0); T runs to the end of as_of_date.
SUMMARY_SQL = f"""
with reporting_window as (
    select as_of_date from intermediate.int_reporting_window
),
purchases as (
    select o.customer_id, o.ordered_at, cast(o.net_revenue as double) as net_revenue
    from {MARTS_SCHEMA}.fct_orders as o cross join reporting_window as w
    where o.is_purchase and o.ordered_date <= w.as_of_date
)
select
    p.customer_id,
    count(*) - 1 as frequency,
    epoch(max(p.ordered_at) - min(p.ordered_at)) / 86400.0 / {TIME_UNIT_DAYS} as recency,
    epoch(cast(w.as_of_date as timestamp) + interval 1 day - min(p.ordered_at))
        / 86400.0 / {TIME_UNIT_DAYS} as t_weeks,
    (sum(p.net_revenue) - arg_min(p.net_revenue, p.ordered_at)) / nullif(count(*) - 1, 0)
        as monetary_value
from purchases as p cross join reporting_window as w
group by p.customer_id, w.as_of_date
order by p.customer_id
"""


@dg.asset(
    key=PREDICTIONS,
    deps=[
        dg.AssetKey([MARTS_SCHEMA, "fct_orders"]),
        dg.AssetKey(["intermediate", "int_reporting_window"]),
        dg.AssetKey([MARTS_SCHEMA, "ltv_summary"]),
    ],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "scipy"},
)
def customer_predictions(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    """One row per customer with a purchase: P(alive), expected 12-month purchases, expected
    order value and predicted 12-month CLV (margin applied, monthly discounting)."""
    with warehouse.connect() as con:
        summary = con.execute(SUMMARY_SQL).df()
        margin_rate, discount_rate = con.execute(
            f"select s.gross_margin_rate, w.discount_rate from {MARTS_SCHEMA}.ltv_summary as s "
            "cross join intermediate.int_reporting_window as w where s.dimension = 'overall'"
        ).fetchone()
    frequency = summary["frequency"].to_numpy(dtype=float)
    recency = summary["recency"].to_numpy(dtype=float)
    t_weeks = summary["t_weeks"].to_numpy(dtype=float)
    monetary = summary["monetary_value"].fillna(0).to_numpy(dtype=float)
    context.log.info(f"fitting BG/NBD on {len(summary):,} customers")
    *grouped, weights = clv.group_customers(frequency, recency, t_weeks)
    bgnbd = clv.fit_bgnbd(*grouped, weights=weights)
    repeat = frequency > 0
    gamma_gamma = clv.fit_gamma_gamma(frequency[repeat], monetary[repeat])
    # the yearly discount_rate var, as the equivalent monthly rate
    monthly_discount = (1 + float(discount_rate)) ** (1 / 12) - 1
    horizon = HORIZON_MONTHS * clv.DAYS_PER_MONTH / TIME_UNIT_DAYS
    predictions = pd.DataFrame(
        {
            "customer_id": summary["customer_id"],
            "frequency": frequency.astype(int),
            "recency_weeks": recency,
            "t_weeks": t_weeks,
            "p_alive": clv.p_alive(bgnbd, frequency, recency, t_weeks),
            "expected_purchases_12m": clv.expected_purchases(
                bgnbd, horizon, frequency, recency, t_weeks
            ),
            "expected_average_order_value": clv.expected_average_value(
                gamma_gamma, frequency, monetary
            ),
            "predicted_clv": clv.predicted_clv(
                bgnbd,
                gamma_gamma,
                frequency,
                recency,
                t_weeks,
                monetary,
                months=HORIZON_MONTHS,
                margin=float(margin_rate),
                monthly_discount_rate=monthly_discount,
                time_unit_days=TIME_UNIT_DAYS,
            ),
        }
    )
    with warehouse.connect() as con:
        rows = replace_table(
            con, f"{MARTS_SCHEMA}.customer_predictions", predictions, "customer_id"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "bgnbd": dg.MetadataValue.json(
                {**bgnbd.params(), "log_likelihood": bgnbd.log_likelihood}
            ),
            "gamma_gamma": dg.MetadataValue.json(
                {**gamma_gamma.params(), "log_likelihood": gamma_gamma.log_likelihood}
            ),
            "expected_purchases_12m_total": float(np.sum(predictions["expected_purchases_12m"])),
            "predicted_clv_total": float(np.sum(predictions["predicted_clv"])),
        }
    )
