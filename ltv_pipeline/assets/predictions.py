"""Predictive CLV (BG/NBD + Gamma-Gamma) per customer, and its nightly backtest."""

import time

import dagster as dg
import pandas as pd

from ltv_pipeline import forecast
from ltv_pipeline.assets.analytics import ANALYTICS_GROUP, MARTS_SCHEMA
from ltv_pipeline.resources import Warehouse, WarehouseSession

PREDICTIONS = dg.AssetKey([MARTS_SCHEMA, "customer_predictions"])
BACKTEST = dg.AssetKey([MARTS_SCHEMA, "clv_backtest"])
SUMMARY = dg.AssetKey(["intermediate", "int_customer_purchases_summarized"])
WINDOW = dg.AssetKey(["intermediate", "int_reporting_window"])
LTV_SUMMARY = dg.AssetKey([MARTS_SCHEMA, "ltv_summary"])


class ClvConfig(dg.Config):
    """How the models are fitted; the definitions shared with SQL are dbt vars."""

    time_unit_days: float = 7.0
    horizon_months: int = 12
    min_repeat_customers: int = forecast.MIN_REPEAT_CUSTOMERS


#: The summary columns each fit reads: only these cross into Python (memory at 100M orders).
FIT_COLUMNS = ("customer_id", "frequency", "recency_days", "t_days", "monetary_value")
BACKTEST_COLUMNS = (
    "customer_id",
    "is_in_calibration",
    "calibration_frequency",
    "calibration_recency_days",
    "calibration_t_days",
    "calibration_monetary_value",
    "holdout_purchases",
)


def _summary(db: WarehouseSession, columns: tuple[str, ...], where: str = "true") -> pd.DataFrame:
    return db.frame(
        f"select {', '.join(columns)} from {SUMMARY.path[0]}.{SUMMARY.path[1]} "
        f"where {where} order by customer_id"
    )


@dg.asset(
    key=PREDICTIONS,
    deps=[SUMMARY, WINDOW, LTV_SUMMARY],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "scipy"},
)
def customer_predictions(
    context: dg.AssetExecutionContext, config: ClvConfig, warehouse: Warehouse
):
    """One row per customer with a purchase: P(alive), expected purchases, order value and CLV."""
    with warehouse.session() as db:
        summary = _summary(db, FIT_COLUMNS)
        # the margin rate is defined once, in ltv_summary; the discount rate is a dbt var
        margin_rate, discount_rate = db.row(
            f"select s.gross_margin_rate, w.discount_rate from {MARTS_SCHEMA}.ltv_summary as s "
            "cross join intermediate.int_reporting_window as w where s.dimension = 'overall'"
        )
    context.log.info(f"fitting BG/NBD and Gamma-Gamma on {len(summary):,} customers")
    started = time.perf_counter()
    try:
        models = forecast.fit_models(
            summary["frequency"],
            summary["recency_days"],
            summary["t_days"],
            summary["monetary_value"],
            time_unit_days=config.time_unit_days,
            min_repeat_customers=config.min_repeat_customers,
        )
        status, fitted = "fitted", models.metadata()
        context.log.info(f"fitted in {time.perf_counter() - started:.2f}s: {models.bgnbd.params()}")
    except forecast.ModelNotFitted as exc:
        context.log.warning(f"predictions left null, the model is not fitted: {exc}")
        models, status, fitted = None, f"not fitted: {exc}", {}
    predictions = forecast.predict_customers(
        summary,
        models,
        horizon_months=config.horizon_months,
        margin_rate=float(margin_rate or 0.0),
        yearly_discount_rate=float(discount_rate),
    )
    with warehouse.session() as db:
        rows = db.replace_table(f"{MARTS_SCHEMA}.customer_predictions", predictions, "customer_id")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_status": status,
            "model": dg.MetadataValue.json(fitted),
            "horizon_months": config.horizon_months,
            "margin_rate": float(margin_rate or 0.0),
            "expected_purchases_total": float(predictions["expected_purchases"].sum()),
            "predicted_clv_total": float(predictions["predicted_clv"].sum()),
        }
    )


@dg.asset(
    key=BACKTEST,
    deps=[SUMMARY, WINDOW],
    group_name=ANALYTICS_GROUP,
    kinds={"duckdb", "scipy"},
)
def clv_backtest(context: dg.AssetExecutionContext, config: ClvConfig, warehouse: Warehouse):
    """One row per forecast (BG/NBD, historical average): holdout purchases predicted vs actual."""
    with warehouse.session() as db:
        summary = _summary(db, BACKTEST_COLUMNS, where="is_in_calibration")
        as_of_date, holdout_start = db.row(
            "select as_of_date, holdout_start_date from intermediate.int_reporting_window"
        )
    holdout_days = float((as_of_date - holdout_start).days + 1)
    context.log.info(f"backtest: fitting before {holdout_start}, scoring {holdout_days:.0f} days")
    columns = ["customers", "actual_total", "predicted_total", "aggregate_error_pct"]
    columns += ["mae", "spearman"]
    try:
        result = forecast.backtest(
            summary,
            holdout_days,
            time_unit_days=config.time_unit_days,
            min_repeat_customers=config.min_repeat_customers,
        )
        scores = [result.model_score.as_dict(), result.baseline_score.as_dict()]
        status, fitted = "scored", result.models.metadata()
    except forecast.ModelNotFitted as exc:
        context.log.warning(f"backtest not scored, the model is not fitted: {exc}")
        scores = [{"model": name} for name in ("bgnbd", "historical_average")]
        status, fitted = f"not fitted: {exc}", {}
    table = pd.DataFrame(scores).reindex(columns=["model", *columns])
    table.insert(1, "status", status)
    table.insert(2, "as_of_date", as_of_date)
    table.insert(3, "holdout_start_date", holdout_start)
    table.insert(4, "holdout_days", holdout_days)
    with warehouse.session() as db:
        rows = db.replace_table(f"{MARTS_SCHEMA}.clv_backtest", table, "model")
    metrics = {
        f"{row['model']}_{name}": float(row[name])
        for row in scores
        for name in ("aggregate_error_pct", "mae", "spearman")
        if name in row
    }
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "status": status,
            "holdout_days": holdout_days,
            **metrics,
            "scores": dg.MetadataValue.md(table.round(4).to_markdown(index=False)),
            "model": dg.MetadataValue.json(fitted),
        }
    )
