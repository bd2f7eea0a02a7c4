"""Predictive CLV, laid out as pymc-marketing's ``clv`` package: one module per model
(:mod:`.bgnbd` purchase counts, :mod:`.gamma_gamma` spend), :mod:`.value` (the two together:
predicted CLV per customer), :mod:`.data` (input checks and grouping), :mod:`.fitting` (the
maximum-likelihood search both fits use), the nightly forecast per customer (:mod:`.forecast`)
and the backtest's verdict (:mod:`.backtest`). The names below are the models' public API."""

from ltv_pipeline.clv.bgnbd import (
    BGNBDFit,
    bgnbd_gradient,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_purchases_new,
    fit_bgnbd,
    p_alive,
    simulate_bgnbd,
)
from ltv_pipeline.clv.data import DAYS_PER_MONTH, group_customers
from ltv_pipeline.clv.fitting import ConvergenceError
from ltv_pipeline.clv.gamma_gamma import (
    GammaGammaFit,
    expected_average_value,
    fit_gamma_gamma,
    gamma_gamma_gradient,
    gamma_gamma_log_likelihood,
    simulate_gamma_gamma,
)
from ltv_pipeline.clv.value import CustomerForecast, forecast_customers, predicted_clv

__all__ = [
    "DAYS_PER_MONTH",
    "BGNBDFit",
    "ConvergenceError",
    "CustomerForecast",
    "GammaGammaFit",
    "bgnbd_gradient",
    "bgnbd_log_likelihood",
    "expected_average_value",
    "expected_purchases",
    "expected_purchases_new",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "forecast_customers",
    "gamma_gamma_gradient",
    "gamma_gamma_log_likelihood",
    "group_customers",
    "p_alive",
    "predicted_clv",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
]
