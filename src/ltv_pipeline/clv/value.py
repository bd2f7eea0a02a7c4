"""Predicted CLV: the BG/NBD purchase counts and the Gamma-Gamma spend together, per customer
over a horizon, discounted (:func:`predicted_clv`, :func:`forecast_customers`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltv_pipeline.clv.bgnbd import (
    BGNBDFit,
    alive_expectation_any_a,
    alive_expectation_dedup,
    p_alive,
    p_alive_unchecked,
)
from ltv_pipeline.clv.data import (
    DAYS_PER_MONTH,
    ArrayLike,
    FloatArray,
    broadcast,
    check_rft,
    unique_rows_if_few,
)
from ltv_pipeline.clv.gamma_gamma import GammaGammaFit, expected_average_value


def predicted_clv(
    bgnbd_fit: BGNBDFit,
    gg_fit: GammaGammaFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    months: int = 12,
    margin: float = 1.0,
    monthly_discount_rate: float = 0.01,
    time_unit_days: float = 7.0,
) -> FloatArray:
    """Discounted expected margin over the next ``months`` months, per customer.

    Each month's expected purchases (the increase of :func:`expected_purchases` over that
    month) times the expected transaction value and ``margin``, discounted by
    ``(1 + monthly_discount_rate) ** month`` - the same discrete monthly scheme as
    ``lifetimes``' ``customer_lifetime_value``, except that a month here is 30.4375 days
    (365.25 / 12), not 30.

    Parameters
    ----------
    time_unit_days
        Length in days of the time unit the BG/NBD model was fitted in (7 for weeks, 1 for
        days), needed to turn calendar months into model time.
    """
    _check_value_args(months, margin, monthly_discount_rate, time_unit_days)
    x, tx, T_, m = broadcast(
        frequency=frequency,
        recency=recency,
        T=T,
        monetary_value=monetary_value,
    )
    value = expected_average_value(gg_fit, x, m)
    alive = p_alive(bgnbd_fit, x, tx, T_)
    discounted = _discounted_purchases(
        bgnbd_fit, x, T_, months, DAYS_PER_MONTH / time_unit_days, monthly_discount_rate
    )
    return alive * discounted * value * margin


def _check_value_args(
    months: int, margin: float, monthly_discount_rate: float, time_unit_days: float
) -> None:
    if not (isinstance(months, int | np.integer) and months >= 0):
        raise ValueError(f"months must be a non-negative integer, got {months!r}")
    if not (np.isfinite(margin) and np.isfinite(monthly_discount_rate)):
        raise ValueError("margin and monthly_discount_rate must be finite")
    if monthly_discount_rate <= -1:
        raise ValueError("monthly_discount_rate must be > -1")
    if not (np.isfinite(time_unit_days) and time_unit_days > 0):
        raise ValueError("time_unit_days must be > 0")


def _discounted_purchases(
    fit: BGNBDFit, x: FloatArray, T: FloatArray, months: int, month: float, discount: float
) -> FloatArray:
    """Sum over the next ``months`` months of each month's expected purchases given alive,
    discounted; ``month`` is a month in model time units."""
    # purchases given alive depend only on (x, T): evaluate once per distinct pair
    shape = x.shape
    xs, Ts = x.ravel(), T.ravel()
    found = unique_rows_if_few(Ts, xs, at_most=0.5)
    first, inverse = found if found is not None else (np.arange(len(xs)), None)
    xu, Tu = xs[first], Ts[first]
    total = np.zeros_like(xu)
    previous = np.zeros_like(xu)
    for k in range(1, months + 1):
        cumulative = alive_expectation_any_a(fit.r, fit.a, fit.b, xu, k * month / (fit.alpha + Tu))
        total += (cumulative - previous) / (1.0 + discount) ** k
        previous = cumulative
    return (total if inverse is None else total[inverse]).reshape(shape)


@dataclass(frozen=True)
class CustomerForecast:
    """Per-customer predictions, as :func:`forecast_customers` returns them."""

    p_alive: FloatArray
    expected_purchases: FloatArray
    expected_average_value: FloatArray
    predicted_value: FloatArray


def forecast_customers(
    bgnbd_fit: BGNBDFit,
    gg_fit: GammaGammaFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    horizon: float,
    months: int = 12,
    margin: float = 1.0,
    monthly_discount_rate: float = 0.01,
    time_unit_days: float = 7.0,
) -> CustomerForecast:
    """:func:`p_alive`, :func:`expected_purchases` over ``horizon`` (model time units),
    :func:`expected_average_value` and :func:`predicted_clv` for the same customers at once.

    Equal to calling the four, but the inputs are checked and P(alive) is computed once: at
    millions of customers that is most of the cost. A ``monetary_value`` that is NaN or <= 0
    (no usable repeat spend) counts as no repeat purchase for spend: the population mean.
    """
    _check_value_args(months, margin, monthly_discount_rate, time_unit_days)
    if not (np.isfinite(horizon) and horizon >= 0):
        raise ValueError(f"horizon must be finite and >= 0, got {horizon!r}")
    x, tx, T_, m = broadcast(
        frequency=frequency, recency=recency, T=T, monetary_value=monetary_value
    )
    check_rft(x, tx, T_)
    alive = p_alive_unchecked(bgnbd_fit, x, tx, T_)
    r, a, b = bgnbd_fit.r, bgnbd_fit.a, bgnbd_fit.b
    given_alive = alive_expectation_dedup(r, a, b, x, horizon / (bgnbd_fit.alpha + T_))
    usable = (x > 0) & np.isfinite(m) & (m > 0)
    value = expected_average_value(gg_fit, np.where(usable, x, 0.0), np.where(usable, m, 0.0))
    month = DAYS_PER_MONTH / time_unit_days
    discounted = _discounted_purchases(bgnbd_fit, x, T_, months, month, monthly_discount_rate)
    predicted = alive * discounted * value * margin
    return CustomerForecast(alive, alive * given_alive, value, predicted)
