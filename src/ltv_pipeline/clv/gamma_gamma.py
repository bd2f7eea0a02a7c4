"""The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV" note; parametrised as
in the ``lifetimes`` package): likelihood, fit, expected spend and simulation.

It explains the mean value of a customer's repeat transactions; inputs follow the conventions
of :mod:`ltv_pipeline.clv.data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ltv_pipeline.clv.data import (
    ArrayLike,
    FloatArray,
    as_float,
    broadcast,
    check_frequency,
    check_params,
    factorize,
    fit_columns,
    row_weights,
)
from ltv_pipeline.clv.fitting import ConvergenceError, maximise, warm_start


@dataclass(frozen=True)
class GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma parameters (``lifetimes`` parametrisation).

    Transaction values are Gamma(shape ``p``, rate ``nu``) with ``nu ~ Gamma(q, v)``, so the
    population mean transaction value is ``p * v / (q - 1)`` (finite only for ``q > 1``).
    ``n_customers`` counts only the repeat customers the model is fitted on.
    """

    p: float
    q: float
    v: float
    log_likelihood: float
    n_customers: float
    iterations: int
    converged: bool

    def params(self) -> dict[str, float]:
        """The three model parameters by name."""
        return {"p": self.p, "q": self.q, "v": self.v}


class _GGData:
    """Repeat customers' columns with the parameter-free products computed once."""

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        keep = w > 0
        if not np.all(keep):
            x, m, w = x[keep], m[keep], w[keep]
        self.n = float(w.sum())
        self.xu, inv = factorize(x)
        self.wu = np.bincount(inv, weights=w, minlength=len(self.xu))
        self.m, self.w = m, w
        self.xm = x * m
        self.wx = w * x
        self.wx_log_xm = float(w @ (x * (np.log(x) + np.log(m))))
        self.w_log_m = float(w @ np.log(m))


def _gg_value_grad(theta: FloatArray, d: _GGData) -> tuple[float, FloatArray]:
    """Total Gamma-Gamma log-likelihood of the mean values and its gradient in (p, q, v).

    The per-row term ``-(p x + q) ln(x m + v)`` is split into two dot products with
    ``ln(x m + v)`` (one log per row per evaluation, nothing else).
    """
    p, q, v = theta
    xu, wu = d.xu, d.wu
    pxu = p * xu
    ll = wu @ (special.gammaln(pxu + q) - special.gammaln(pxu)) - d.n * special.gammaln(q)
    ll += d.n * q * np.log(v) + p * d.wx_log_xm - d.w_log_m
    dp = wu @ (xu * (special.digamma(pxu + q) - special.digamma(pxu))) + d.wx_log_xm
    dq = wu @ special.digamma(pxu + q) - d.n * special.digamma(q) + d.n * np.log(v)
    dv = d.n * q / v
    xm_v = d.xm + v
    log_xm_v = np.log(xm_v)
    inv_xm_v = 1.0 / xm_v
    wx_log, w_log = d.wx @ log_xm_v, d.w @ log_xm_v
    ll -= p * wx_log + q * w_log
    dp -= wx_log
    dq -= w_log
    dv -= p * (d.wx @ inv_xm_v) + q * (d.w @ inv_xm_v)
    return float(ll), np.array([dp, dq, dv])


def _gg_columns(
    frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The repeat customers' frequency, spend and weight, checked."""
    x, m = fit_columns(frequency=frequency, monetary_value=monetary_value)
    check_frequency(x)
    w = row_weights(weights, len(x))
    repeat = (x > 0) & (w > 0)
    if not np.any(repeat):
        raise ValueError("no customer with repeat purchases (frequency > 0) to fit on")
    if not np.all((m[repeat] > 0) & np.isfinite(m[repeat])):
        raise ValueError("monetary_value must be finite and > 0 where frequency > 0")
    return x[repeat], m[repeat], w[repeat]


def _gg_data(frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None) -> _GGData:
    return _GGData(*_gg_columns(frequency, monetary_value, weights))


def gamma_gamma_log_likelihood(
    params: ArrayLike,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Total Gamma-Gamma log-likelihood at ``params = (p, q, v)``, repeat customers only."""
    theta = check_params("p q v", params)
    return _gg_value_grad(theta, _gg_data(frequency, monetary_value, weights))[0]


def gamma_gamma_gradient(
    params: ArrayLike,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Analytic gradient of :func:`gamma_gamma_log_likelihood` with respect to (p, q, v)."""
    theta = check_params("p q v", params)
    return _gg_value_grad(theta, _gg_data(frequency, monetary_value, weights))[1]


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    strict: bool = True,
    maxiter: int = 1000,
) -> GammaGammaFit:
    """Fit the Gamma-Gamma spend model by maximum likelihood on the repeat customers.

    Customers without repeat purchases carry no information about spend per repeat
    transaction and are dropped, whatever their ``monetary_value`` (0 or NaN is fine).
    The model assumes spend is independent of purchase frequency; check the correlation
    between ``frequency`` and ``monetary_value`` before relying on it.

    Parameters
    ----------
    frequency
        Repeat purchases per customer.
    monetary_value
        Mean value of those repeat transactions; must be > 0 where ``frequency > 0``.
    weights, strict, maxiter
        As in :func:`fit_bgnbd`.

    Notes
    -----
    ``q`` and ``v`` are strongly correlated (the data pin down mostly ``v / (q - 1)``, the mean
    of 1 / nu), which makes the likelihood a long narrow ridge; the Newton finish is what gets
    to the top of it reliably.
    """
    x, m, w = _gg_columns(frequency, monetary_value, weights)
    data = _GGData(x, m, w)
    mean_m = float(data.w @ data.m) / data.n
    start = np.array([1.0, 3.0, 2.0 * mean_m])  # population mean p v / (q - 1) = mean_m

    def on_rows(rows: slice) -> FloatArray | None:
        sub = _GGData(x[rows], m[rows], w[rows])
        found = maximise(lambda th: _gg_value_grad(th, sub), start, sub.n, maxiter)
        return found[0] if found[3] else None

    start, warm = warm_start(on_rows, len(x), start)
    theta, ll, iterations, ok, why = maximise(
        lambda th: _gg_value_grad(th, data), start, data.n, maxiter, warm=warm
    )
    if not ok and strict:
        raise ConvergenceError(f"Gamma-Gamma fit did not converge: {why}")
    p, q, v = (float(x) for x in theta)
    return GammaGammaFit(p, q, v, float(ll), data.n, iterations, ok)


def expected_average_value(
    gg_fit: GammaGammaFit, frequency: ArrayLike, monetary_value: ArrayLike
) -> FloatArray:
    """Expected value of a future transaction given the observed mean spend.

    A weighted average of the customer's own mean ``m`` and the population mean, the weight on
    ``m`` growing with the number of repeat purchases: few purchases are shrunk towards the
    population. Customers with no repeat purchase get the population mean ``p v / (q - 1)``
    (their ``monetary_value`` is ignored, so 0 or NaN is fine).
    """
    x, m = broadcast(frequency=frequency, monetary_value=monetary_value)
    check_frequency(x)
    rep = x > 0
    if not np.all((m[rep] > 0) & np.isfinite(m[rep])):
        raise ValueError("monetary_value must be finite and > 0 where frequency > 0")
    p, q, v = gg_fit.p, gg_fit.q, gg_fit.v
    if np.any(~rep) and q <= 1:
        raise ValueError(f"q = {q:.4g} <= 1: the population mean spend is infinite")
    xm = np.where(rep, x * np.where(rep, m, 0.0), 0.0)
    return p * (v + xm) / (p * x + q - 1.0)


def simulate_gamma_gamma(
    p: float, q: float, v: float, frequency: ArrayLike, rng: np.random.Generator
) -> FloatArray:
    """Draw each customer's mean repeat-transaction value from the Gamma-Gamma model.

    nu ~ Gamma(q, rate v) per customer, and the sum of x Gamma(p, rate nu) values is
    Gamma(p x, rate nu), so one draw per customer suffices. Customers with x = 0 get 0, the
    convention of ``lifetimes``' RFM summaries.
    """
    check_params("p q v", [p, q, v])
    x = as_float("frequency", frequency)
    check_frequency(x)
    nu = rng.gamma(q, 1.0 / v, x.shape)
    rep = x > 0
    out = np.zeros(x.shape)
    out[rep] = rng.gamma(p * x[rep], 1.0 / nu[rep]) / x[rep]
    return out
