"""Predictive CLV and its backtest, from the per-customer summary the warehouse computes.

The warehouse (dbt model ``int_customer_purchases_summarized``) turns orders into one row per
buyer: frequency, recency and T in days, the mean repeat spend, and the same summary at the
start of a holdout with the purchases made in it. This module fits :mod:`ltv_pipeline.clv` on
that summary, predicts per customer and scores the backtest. pandas in, pandas out; no Dagster.

Small shops: a BG/NBD fit needs enough repeat buyers to identify four parameters. Below
``min_repeat_customers``, or when the maximisation finds no proper maximum, :func:`fit_models`
raises :class:`ModelNotFitted` with the reason, and callers publish null predictions rather
than numbers from a model the data do not support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ltv_pipeline.clv.bgnbd import BGNBDFit, fit_bgnbd
from ltv_pipeline.clv.data import DAYS_PER_MONTH
from ltv_pipeline.clv.fitting import ConvergenceError
from ltv_pipeline.clv.gamma_gamma import GammaGammaFit, fit_gamma_gamma
from ltv_pipeline.clv.value import forecast_customers

#: Minimum number of customers with a repeat purchase before a fit is attempted.
MIN_REPEAT_CUSTOMERS = 30

SUMMARY_COLUMNS = ("customer_id", "frequency", "recency_days", "t_days", "monetary_value")


class ModelNotFitted(ValueError):
    """The data cannot support a fit; ``str()`` says why."""


@dataclass(frozen=True)
class CustomerModels:
    """A fitted purchase model and spend model, and the time unit the first is in."""

    bgnbd: BGNBDFit
    gamma_gamma: GammaGammaFit
    time_unit_days: float

    def metadata(self) -> dict[str, float | str]:
        """Parameters and log-likelihoods, flat, for run metadata and reports."""
        return {
            **{f"bgnbd_{k}": v for k, v in self.bgnbd.params().items()},
            "bgnbd_log_likelihood": self.bgnbd.log_likelihood,
            **{f"gamma_gamma_{k}": v for k, v in self.gamma_gamma.params().items()},
            "gamma_gamma_log_likelihood": self.gamma_gamma.log_likelihood,
            "time_unit_days": self.time_unit_days,
        }


def model_arrays(
    frequency: pd.Series, recency_days: pd.Series, t_days: pd.Series, time_unit_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not time_unit_days > 0:
        raise ValueError(f"time_unit_days must be > 0, got {time_unit_days!r}")
    return (
        frequency.to_numpy(dtype=float),
        recency_days.to_numpy(dtype=float) / time_unit_days,
        t_days.to_numpy(dtype=float) / time_unit_days,
    )


def fit_models(
    frequency: pd.Series,
    recency_days: pd.Series,
    t_days: pd.Series,
    monetary_value: pd.Series,
    customers: pd.Series | None = None,
    *,
    time_unit_days: float = 7.0,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
) -> CustomerModels:
    """Fit BG/NBD on all buyers and Gamma-Gamma on the repeat buyers: :func:`fit_grouped` on
    one table.

    Parameters
    ----------
    frequency, recency_days, t_days, monetary_value
        One row per customer, or per group of customers with equal values (see ``customers``).
    customers
        How many customers each row stands for (default: one each).

    Raises
    ------
    ModelNotFitted
        Fewer than ``min_repeat_customers`` repeat buyers, or a fit without a proper maximum.
    """
    w = np.ones(len(frequency)) if customers is None else customers.to_numpy(dtype=float)
    x = frequency.to_numpy()
    return fit_grouped(
        pd.DataFrame(
            {
                "frequency": x,
                "recency_days": recency_days.to_numpy(),
                "t_days": t_days.to_numpy(),
                "customers": w,
            }
        ),
        pd.DataFrame({"frequency": x, "monetary_value": monetary_value.to_numpy(), "customers": w}),
        time_unit_days=time_unit_days,
        min_repeat_customers=min_repeat_customers,
    )


def group_for_fit(
    frequency: pd.Series,
    recency_days: pd.Series,
    t_days: pd.Series,
    monetary_value: pd.Series,
    customers: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fit_grouped`'s ``purchases`` and ``spend`` from a summary of one row per
    customer, or per group of customers with equal values (``customers`` counts them).

    A summary grouped by more columns than a model reads (the backtest's, by its holdout
    purchases too) has several rows for one of that model's groups: regrouped, the fit reads
    fewer rows and gives the same parameters.
    """
    counts = np.ones(len(frequency)) if customers is None else customers.to_numpy()
    x = frequency.to_numpy()
    purchases = _summed_by(
        {"frequency": x, "recency_days": recency_days.to_numpy(), "t_days": t_days.to_numpy()},
        counts,
    )
    repeat = x > 0
    spend = _summed_by(
        {"frequency": x[repeat], "monetary_value": monetary_value.to_numpy()[repeat]},
        counts[repeat],
    )
    return purchases, spend


def _summed_by(keys: dict[str, np.ndarray], counts: np.ndarray) -> pd.DataFrame:
    """``counts`` summed per distinct row of ``keys``, sorted by them, rows with a null key
    left out: what pandas' ``groupby(keys).sum()`` gives, from one sort (its groupby took
    0.68 s of the 1.7 s backtest of 3M buyers, this 0.36 s)."""
    columns = list(keys.values())
    known = np.ones(len(counts), dtype=bool)
    for column in columns:
        known &= ~pd.isna(column)
    columns = [column[known] for column in columns]
    counts = counts[known]
    order = np.lexsort(columns[::-1])  # the first key sorts first
    columns = [column[order] for column in columns]
    same = np.ones(len(order), dtype=bool)  # as the row before, in every key
    same[:1] = False
    for column in columns:
        same[1:] &= column[1:] == column[:-1]
    starts = np.flatnonzero(~same)
    grouped = {name: column[starts] for name, column in zip(keys, columns, strict=True)}
    sums = np.add.reduceat(counts[order], starts) if len(order) else counts[:0]
    return pd.DataFrame({**grouped, "customers": sums})


def fit_grouped(
    purchases: pd.DataFrame,
    spend: pd.DataFrame,
    *,
    time_unit_days: float = 7.0,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
) -> CustomerModels:
    """Fit BG/NBD on ``purchases`` and Gamma-Gamma on ``spend``, each table grouped for its
    model.

    Parameters
    ----------
    purchases
        ``frequency``, ``recency_days``, ``t_days`` and ``customers``: all buyers, one row per
        customer or per distinct (frequency, recency, T) with how many customers share it.
    spend
        ``frequency``, ``monetary_value`` and ``customers``: the same buyers (or only the
        repeat buyers), one row per customer or per distinct (frequency, spend). Rows without
        a repeat purchase or a positive spend are not fitted on.

    Notes
    -----
    Each likelihood is a weighted sum over customers that depends on a customer only through
    its model's columns, so grouping each table by its own columns gives the same fit from
    far fewer rows than grouping the summary by all four: at 10M orders, 0.96M purchase rows
    and 0.49M spend rows instead of 2.07M, and the fit takes 0.5 s instead of 3 s in a fresh
    process (the warehouse groups them: ``defs.clv.customer_predictions``).

    Raises
    ------
    ModelNotFitted
        Fewer than ``min_repeat_customers`` repeat buyers, or a fit without a proper maximum.
    """
    x, tx, T = model_arrays(
        purchases["frequency"], purchases["recency_days"], purchases["t_days"], time_unit_days
    )
    w = purchases["customers"].to_numpy(dtype=float)
    spend_x = spend["frequency"].to_numpy(dtype=float)
    m = spend["monetary_value"].to_numpy(dtype=float)
    spend_w = spend["customers"].to_numpy(dtype=float)
    repeat = (spend_x > 0) & np.isfinite(m) & (m > 0)
    repeat_customers = int(spend_w[repeat].sum())
    if repeat_customers < min_repeat_customers:
        raise ModelNotFitted(
            f"{repeat_customers} customers with a repeat purchase, fewer than the "
            f"{min_repeat_customers} a fit needs"
        )
    try:
        bgnbd = fit_bgnbd(x, tx, T, w)
        gamma_gamma = fit_gamma_gamma(spend_x[repeat], m[repeat], spend_w[repeat])
    except ConvergenceError as exc:
        raise ModelNotFitted(str(exc)) from exc
    if gamma_gamma.q <= 1:
        raise ModelNotFitted(f"Gamma-Gamma q = {gamma_gamma.q:.4g} <= 1: mean spend is infinite")
    return CustomerModels(bgnbd, gamma_gamma, time_unit_days)


def predict_customers(
    summary: pd.DataFrame,
    models: CustomerModels | None,
    *,
    horizon_months: int = 12,
    margin_rate: float,
    yearly_discount_rate: float,
) -> pd.DataFrame:
    """One row per customer of ``summary``: P(alive), expected purchases, order value and CLV.

    ``predicted_revenue`` is the discounted expected net revenue over ``horizon_months``;
    ``predicted_clv`` is that times ``margin_rate``. The yearly discount rate becomes the
    equivalent monthly one. With ``models=None`` (not fitted) the predictions are null.
    """
    out = pd.DataFrame(
        {
            "customer_id": summary["customer_id"].to_numpy(),
            "frequency": summary["frequency"].to_numpy(dtype=np.int64),
            "recency_days": summary["recency_days"].to_numpy(dtype=float),
            "t_days": summary["t_days"].to_numpy(dtype=float),
        }
    )
    columns = ("p_alive", "expected_purchases", "expected_order_value", "predicted_revenue")
    if models is None:
        for column in (*columns, "predicted_clv"):
            out[column] = np.nan
        return out
    unit = models.time_unit_days
    x, tx, T = model_arrays(summary["frequency"], summary["recency_days"], summary["t_days"], unit)
    horizon = horizon_months * DAYS_PER_MONTH / unit
    monthly_discount = (1.0 + yearly_discount_rate) ** (1.0 / 12.0) - 1.0
    predicted = forecast_customers(
        models.bgnbd,
        models.gamma_gamma,
        x,
        tx,
        T,
        summary["monetary_value"].to_numpy(dtype=float),
        horizon=horizon,
        months=horizon_months,
        monthly_discount_rate=monthly_discount,
        time_unit_days=unit,
    )
    out["p_alive"] = predicted.p_alive
    out["expected_purchases"] = predicted.expected_purchases
    out["expected_order_value"] = predicted.expected_average_value
    revenue = predicted.predicted_value
    out["predicted_revenue"] = revenue
    out["predicted_clv"] = revenue * margin_rate
    return out
