"""Probabilistic customer-lifetime value: BG/NBD purchase counts and Gamma-Gamma spend.

The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way") explains
each customer's repeat purchases as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``
that stops for good after any purchase with probability ``p ~ Beta(a, b)``. The Gamma-Gamma
model (Fader, Hardie & Lee 2005, "RFM and CLV" note; parametrised as in the ``lifetimes``
package) explains the mean value of a customer's repeat transactions. Together they turn an
RFM summary per customer into a predicted value over a horizon.

Conventions, all as in the papers and in ``lifetimes``:

* ``frequency`` x is the number of *repeat* purchases (the first purchase is not counted),
* ``recency`` t_x is the time of the last purchase measured from the first one (0 when x = 0),
* ``T`` is the time from the first purchase to the end of observation,
* ``monetary_value`` is the mean value of the repeat transactions (ignored when x = 0).

Recency and T must be in one time unit of the caller's choosing; the fitted ``alpha`` and every
time passed to a prediction are then in that unit too.

Everything here is plain numpy/scipy on arrays of any origin (pandas only factorizes columns),
so that it runs inside or outside an orchestrator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import integrate, optimize, special
from threadpoolctl import threadpool_limits

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

#: Days per calendar month on average (365.25 / 12), used to turn months into model time.
DAYS_PER_MONTH = 30.4375

# Log-parameters are boxed so that a line search can never evaluate exp(1000); a fit that ends
# on the box is reported as not converged (the model is then not identified by the data).
_LOG_BOUND = 30.0
# A fit is converged when the Newton decrement, scaled to the total log-likelihood, says the
# optimum is at most this far away: then every parameter is within sqrt(2 * gap) ~ 0.0014
# standard errors of the exact maximiser (Cauchy-Schwarz on the quadratic model).
_CONVERGENCE_GAP = 1e-6
# Within this distance of a = 1 the closed form for expected purchases divides by ~0 and is
# interpolated from values at a safe distance instead (the function is smooth there).
_A_NEAR_ONE = 1e-4


class ConvergenceError(RuntimeError):
    """The likelihood maximisation did not reach a proper maximum."""


@dataclass(frozen=True)
class BGNBDFit:
    """Maximum-likelihood BG/NBD parameters.

    ``r`` and ``alpha`` are the shape and rate of the purchase-rate distribution (so the mean
    rate is ``r / alpha`` purchases per time unit); ``a`` and ``b`` are the Beta parameters of
    the dropout probability (mean ``a / (a + b)``). ``log_likelihood`` is the weighted total,
    comparable with the papers' values; ``n_customers`` is the sum of the weights.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: float
    iterations: int
    converged: bool

    def params(self) -> dict[str, float]:
        """The four model parameters by name, the form other tools and reports expect."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


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


# --------------------------------------------------------------------------------------------
# input checks


# Spend is undefined without repeat purchases, so NaN is accepted there; rows where it is used
# are checked where it is used.
_NAN_ALLOWED = frozenset({"monetary_value"})


def _as_float(name: str, values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if name not in _NAN_ALLOWED and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    return arr


def _check_frequency(frequency: FloatArray) -> None:
    if np.any(frequency < 0):
        raise ValueError("frequency has negative values")
    if np.any(frequency != np.round(frequency)):
        raise ValueError("frequency must be whole numbers of repeat purchases")


def _check_rft(frequency: FloatArray, recency: FloatArray, T: FloatArray) -> None:
    """The constraints that make (x, t_x, T) a possible purchase history."""
    _check_frequency(frequency)
    if np.any(recency < 0):
        raise ValueError("recency has negative values")
    if np.any(T < 0):
        raise ValueError("T has negative values")
    if np.any(recency > T):
        raise ValueError("recency is larger than T for some customers")
    repeat = frequency > 0
    if np.any(recency[repeat] <= 0):
        raise ValueError("recency must be > 0 for customers with repeat purchases (frequency > 0)")
    if np.any(recency[~repeat] != 0):
        raise ValueError("recency must be 0 for customers without repeat purchases")


def _columns(**arrays: ArrayLike) -> list[FloatArray]:
    """1-D float columns of one length, as a fit needs (a prediction broadcasts instead)."""
    cols = [_as_float(name, values) for name, values in arrays.items()]
    for name, col in zip(arrays, cols, strict=True):
        if col.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {col.shape}")
    lengths = {name: len(col) for name, col in zip(arrays, cols, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs have different lengths: {lengths}")
    if not cols[0].size:
        raise ValueError("no customers given")
    return cols


def _broadcast(**arrays: ArrayLike) -> list[FloatArray]:
    cols = [_as_float(name, values) for name, values in arrays.items()]
    try:
        return [np.array(c) for c in np.broadcast_arrays(*cols)]
    except ValueError:
        shapes = {name: np.shape(c) for name, c in zip(arrays, cols, strict=True)}
        raise ValueError(f"input shapes do not broadcast together: {shapes}") from None


def _weights(weights: ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = _as_float("weights", weights)
    if w.shape != (n,):
        raise ValueError(f"weights must have one value per row ({n}), got shape {w.shape}")
    if np.any(w < 0):
        raise ValueError("weights has negative values")
    if not w.sum() > 0:
        raise ValueError("weights sum to zero")
    return w


def _factorize(col: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """The distinct values of a finite column (ascending) and each row's index into them.

    pandas' hash-based factorize: about 10 ns a row, where ``np.unique(...,
    return_inverse=True)`` argsorts (6x slower on millions of rows).
    """
    codes, values = pd.factorize(col, sort=True)
    return np.asarray(values, dtype=np.float64), codes.astype(np.intp, copy=False)


def _unique_rows(*columns: FloatArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index of one row per distinct tuple of ``columns`` (lexicographic order) and the map
    from each row to its distinct tuple.

    Each column is factorized on its own and the codes are combined into one integer key in
    mixed radix, whose order is the lexicographic order of the tuples; the key is compacted
    through a dense table when that is small, else by a sort.
    """
    found = _unique_rows_if_few(*columns, at_most=1.0)
    assert found is not None
    return found


#: The mixed-radix key of :func:`_unique_rows` stays below this, so it never overflows int64.
_KEY_LIMIT = 2**62


def _unique_rows_if_few(
    *columns: FloatArray, at_most: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None:
    """:func:`_unique_rows`, or None as soon as one column alone has more than ``at_most``
    times as many distinct values as rows: then grouping would not pay for itself (times
    from timestamps are all distinct)."""
    n = len(columns[0])
    if at_most < 1.0:  # counted on a sorted copy first: numpy's SIMD sort beats hashing
        for col in columns:
            ordered = np.sort(col)
            if np.count_nonzero(ordered[1:] != ordered[:-1]) + 1 > at_most * n:
                return None
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for col in columns:
        values, codes = _factorize(col)
        if size * len(values) > _KEY_LIMIT:  # renumber the tuples so far (at most n) first
            prefixes, key = np.unique(key, return_inverse=True)
            size = len(prefixes)
        size *= len(values)
        key = key * len(values) + codes
    if size <= 4 * n + 1024:
        present = np.zeros(size, dtype=bool)
        present[key] = True
        slot = np.cumsum(present) - 1
        inverse = slot[key]
        first = np.empty(int(slot[-1]) + 1 if size else 0, dtype=np.intp)
        first[inverse] = np.arange(n)
        return first, inverse
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse


def group_customers(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Collapse customers with identical (frequency, recency, T) into weighted rows.

    The likelihood depends on a customer only through these three numbers, so a fit on the
    distinct rows with their counts as ``weights`` is the same fit at a fraction of the cost
    once recency and T are on a coarse grid (whole days or weeks, as a warehouse delivers them).

    Returns
    -------
    frequency, recency, T, weights
        The distinct rows in lexicographic order and how many customers share each.
    """
    x, tx, t = _columns(frequency=frequency, recency=recency, T=T)
    _check_rft(x, tx, t)
    first, inverse = _unique_rows(x, tx, t)
    counts = np.bincount(inverse, minlength=len(first)).astype(np.int64)
    return x[first], tx[first], t[first], counts


# --------------------------------------------------------------------------------------------
# likelihoods


class _BGNBDData:
    """Customer columns pre-aggregated so one likelihood evaluation does the least work.

    A fit evaluates the likelihood some 30 times on the same customers, so everything that
    does not depend on the parameters is done once here:

    * terms that depend on a customer only through x (Gamma and Beta functions and their
      derivatives, the costly part) are evaluated per distinct x, weighted by its total weight;
    * ``-(r + x) ln(alpha + T)`` is summed per distinct T (a warehouse's T is on a grid of
      days, so a few hundred values stand for millions of customers);
    * only the softplus term of repeat customers stays per row, and its logs are looked up
      from per-distinct-value tables of T and t_x instead of computed per row.
    """

    def __init__(self, x: FloatArray, tx: FloatArray, T: FloatArray, w: FloatArray) -> None:
        keep = w > 0
        if not np.all(keep):
            x, tx, T, w = x[keep], tx[keep], T[keep], w[keep]
        self.n = float(w.sum())
        self.wx = float(w @ x)
        self.mean_T = float(w @ T) / self.n
        self.xu, ix = _factorize(x)
        self.wu = np.bincount(ix, weights=w, minlength=len(self.xu))
        self.Tu, iT = _factorize(T)
        self.w_T = np.bincount(iT, weights=w, minlength=len(self.Tu))
        self.wx_T = np.bincount(iT, weights=w * x, minlength=len(self.Tu))
        rep = x > 0
        self.rep_w = w[rep]
        self.rep_x = x[rep]
        self.rep_iT = iT[rep]
        self.txu, self.rep_itx = _factorize(tx[rep])
        # repeat customers' distinct x are the distinct x without 0 (xu is sorted)
        first = int(self.xu.size > 0 and self.xu[0] == 0)
        self.rep_xu = self.xu[first:]
        self.rep_ix = ix[rep] - first


def _softplus_expit(D: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``log(1 + e^D)`` and ``1 / (1 + e^-D)``, overflow-free, from one exp and one log.

    This is the hot loop of a fit: numpy's logaddexp and scipy's expit each cost several
    times an exp. ``expit(D) = exp(D - softplus(D))`` with a non-positive exponent.
    """
    softplus = np.maximum(D, 0.0) + np.log(1.0 + np.exp(-np.abs(D)))
    return softplus, np.exp(D - softplus)


def _bgnbd_value_grad(theta: FloatArray, d: _BGNBDData) -> tuple[float, FloatArray]:
    """Total log-likelihood and its gradient with respect to (r, alpha, a, b).

    With ``D = ln a - ln(b + x - 1) + (r + x) ln((alpha + T) / (alpha + t_x))`` a customer's
    log-likelihood is ``A(x) + r ln alpha - (r + x) ln(alpha + T) + softplus(D) [x > 0]``,
    where ``A(x) = lnG(r + x) - lnG(r) + lnB(a, b + x) - lnB(a, b)``: the sum of the paper's two
    terms written so that neither can overflow (softplus is log(1 + e^D) = -log P(alive)).
    """
    r, alpha, a, b = theta
    xu, wu = d.xu, d.wu
    # per distinct x
    ll = wu @ (special.gammaln(r + xu) - special.gammaln(r))
    ll += wu @ (special.betaln(a, b + xu) - special.betaln(a, b))
    dr = wu @ (special.digamma(r + xu) - special.digamma(r))
    da = wu @ (special.digamma(a + b) - special.digamma(a + b + xu))
    db = wu @ (
        special.digamma(b + xu)
        - special.digamma(a + b + xu)
        - special.digamma(b)
        + special.digamma(a + b)
    )
    ll += d.n * r * np.log(alpha)
    dr += d.n * np.log(alpha)
    dalpha = d.n * r / alpha
    # per distinct T, everyone: -(r + x) ln(alpha + T)
    log_aT = np.log(alpha + d.Tu)
    inv_aT = 1.0 / (alpha + d.Tu)
    rx_T = r * d.w_T + d.wx_T
    ll -= rx_T @ log_aT
    dr -= d.w_T @ log_aT
    dalpha -= rx_T @ inv_aT
    # per row, repeat customers: softplus(D)
    if d.rep_x.size:
        log_atx = np.log(alpha + d.txu)
        ratio = log_aT[d.rep_iT] - log_atx[d.rep_itx]
        rx = r + d.rep_x
        log_bx1 = np.log(b + d.rep_xu - 1.0)
        D = (np.log(a) - log_bx1)[d.rep_ix] + rx * ratio
        softplus, s = _softplus_expit(D)  # s = 1 - P(alive), the derivative of softplus
        ws = d.rep_w * s
        ll += d.rep_w @ softplus
        dr += ws @ ratio
        wsrx = ws * rx
        dalpha += np.bincount(d.rep_iT, weights=wsrx, minlength=len(d.Tu)) @ inv_aT
        dalpha -= np.bincount(d.rep_itx, weights=wsrx, minlength=len(d.txu)) @ (
            1.0 / (alpha + d.txu)
        )
        da += ws.sum() / a
        db -= np.bincount(d.rep_ix, weights=ws, minlength=len(d.rep_xu)) @ np.exp(-log_bx1)
    return float(ll), np.array([dr, dalpha, da, db])


class _GGData:
    """Repeat customers' columns with the parameter-free products computed once."""

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        keep = w > 0
        if not np.all(keep):
            x, m, w = x[keep], m[keep], w[keep]
        self.n = float(w.sum())
        self.xu, inv = _factorize(x)
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


def _bgnbd_columns(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    x, tx, t = _columns(frequency=frequency, recency=recency, T=T)
    _check_rft(x, tx, t)
    return x, tx, t, _weights(weights, len(x))


def _bgnbd_data(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None
) -> _BGNBDData:
    return _BGNBDData(*_bgnbd_columns(frequency, recency, T, weights))


def _gg_columns(
    frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The repeat customers' frequency, spend and weight, checked."""
    x, m = _columns(frequency=frequency, monetary_value=monetary_value)
    _check_frequency(x)
    w = _weights(weights, len(x))
    repeat = (x > 0) & (w > 0)
    if not np.any(repeat):
        raise ValueError("no customer with repeat purchases (frequency > 0) to fit on")
    if not np.all((m[repeat] > 0) & np.isfinite(m[repeat])):
        raise ValueError("monetary_value must be finite and > 0 where frequency > 0")
    return x[repeat], m[repeat], w[repeat]


def _gg_data(frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None) -> _GGData:
    return _GGData(*_gg_columns(frequency, monetary_value, weights))


def _check_params(names: str, theta: ArrayLike) -> FloatArray:
    values = np.asarray(theta, dtype=float)
    k = len(names.split())
    if values.shape != (k,) or not np.all((values > 0) & np.isfinite(values)):
        raise ValueError(f"parameters ({names}) must be {k} finite positive numbers")
    return values


def bgnbd_log_likelihood(
    params: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Total (weighted) BG/NBD log-likelihood at ``params = (r, alpha, a, b)``.

    Public so that callers can compare models, profile a parameter or compute standard errors
    without refitting.
    """
    theta = _check_params("r alpha a b", params)
    return _bgnbd_value_grad(theta, _bgnbd_data(frequency, recency, T, weights))[0]


def bgnbd_gradient(
    params: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Analytic gradient of :func:`bgnbd_log_likelihood` with respect to (r, alpha, a, b).

    Differencing it gives the observed information, hence standard errors.
    """
    theta = _check_params("r alpha a b", params)
    return _bgnbd_value_grad(theta, _bgnbd_data(frequency, recency, T, weights))[1]


def gamma_gamma_log_likelihood(
    params: ArrayLike,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Total Gamma-Gamma log-likelihood at ``params = (p, q, v)``, repeat customers only."""
    theta = _check_params("p q v", params)
    return _gg_value_grad(theta, _gg_data(frequency, monetary_value, weights))[0]


def gamma_gamma_gradient(
    params: ArrayLike,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Analytic gradient of :func:`gamma_gamma_log_likelihood` with respect to (p, q, v)."""
    theta = _check_params("p q v", params)
    return _gg_value_grad(theta, _gg_data(frequency, monetary_value, weights))[1]


# --------------------------------------------------------------------------------------------
# maximisation


def _maximise(
    value_grad: Callable[[FloatArray], tuple[float, FloatArray]],
    start: FloatArray,
    n: float,
    maxiter: int,
    *,
    warm: bool = False,
) -> tuple[FloatArray, float, int, bool, str]:
    """Maximise a log-likelihood over log-parameters; return (params, ll, iters, ok, why).

    L-BFGS-B on the mean negative log-likelihood does the global work (the mean keeps the
    gradient O(1) whatever the number of customers, so its tolerances mean the same thing for
    100 or 10^6 customers). Newton steps with a Hessian differenced from the analytic gradient
    then finish the job: they converge quadratically, so grouped and ungrouped data, which
    differ only in rounding, land on the same optimum to ~1e-10, and the Hessian they leave
    behind certifies the result (positive definite, Newton decrement below
    :data:`_CONVERGENCE_GAP`). A ``warm`` start (the optimum on a subsample) goes straight
    to the Newton steps, and falls back to the whole search if they do not converge.
    """
    # One BLAS thread: the dot products and L-BFGS-B's 4x4 algebra are too small to gain from
    # OpenBLAS's threads, and waking them costs more than the work (fits were 1.3-1.6x slower
    # on 2 cores with them). Limited only for the fit, never process-wide.
    with threadpool_limits(limits=1, user_api="blas"):
        search = _Search(value_grad, n)
        u = np.log(start)
        if warm:
            found = search.newton(u, iterations=0)
            if found[3]:
                return found
        res = optimize.minimize(
            search.fun,
            u,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start),
            options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-8},
        )
        return search.newton(np.clip(res.x, -_LOG_BOUND, _LOG_BOUND), iterations=int(res.nit))


class _Search:
    """The objective in log-parameters and the Newton finish of :func:`_maximise`."""

    def __init__(self, value_grad: Callable[[FloatArray], tuple[float, FloatArray]], n: float):
        self.value_grad, self.n = value_grad, n

    def fun(self, u: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient (inf where not finite)."""
        theta = np.exp(u)
        ll, grad = self.value_grad(theta)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(u)
        return -ll / self.n, -grad * theta / self.n

    def factor(self, u: FloatArray, g: FloatArray) -> FloatArray | None:
        """Cholesky factor of the Hessian at ``u``, or None if it is not positive definite."""
        # forward differences: half the cost of central ones, and a Hessian good to ~1e-6 is
        # plenty for Newton steps and for the decrement that judges convergence
        h = 1e-6
        H = np.array([(self.fun(u + h * e)[1] - g) / h for e in np.eye(len(u))])
        try:
            return np.linalg.cholesky((H + H.T) / 2)
        except np.linalg.LinAlgError:
            return None

    def step(self, chol: FloatArray, g: FloatArray) -> tuple[FloatArray, float]:
        """Newton step and the total log-likelihood it predicts is still to gain."""
        step = -np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        return step, float(-(g @ step) / 2 * self.n)

    def newton(self, u: FloatArray, iterations: int) -> tuple[FloatArray, float, int, bool, str]:
        """Damped Newton steps from ``u`` to the maximum, certified by the Hessian.

        The Hessian is factored once and re-used while the gap keeps shrinking tenfold a step
        (near the maximum it barely changes: one evaluation a step instead of five); it is
        factored anew when the gap stalls above 1e-12, and a stall after that is the rounding
        floor. A step may lose likelihood only at the rounding level of the sums (1e-12).
        """
        n = self.n
        f, g = self.fun(u)
        if not np.isfinite(f):
            return np.exp(u), -np.inf, iterations, False, "log-likelihood is not finite at the end"
        if np.any(np.abs(u) >= _LOG_BOUND - 1e-6):
            why = "a parameter ran to the edge of its range (the data do not identify it)"
            return np.exp(u), -f * n, iterations, False, why
        not_pd = "the Hessian is not positive definite (no proper maximum)"
        chol = self.factor(u, g)
        if chol is None:
            return np.exp(u), -f * n, iterations, False, not_pd
        step, gap = self.step(chol, g)
        fresh = True
        for _ in range(40):
            if gap <= 1e-14:
                break
            # damped step: halve it until it does not lose likelihood beyond rounding
            for _ in range(30):
                f_new, g_new = self.fun(u + step)
                if np.isfinite(f_new) and f_new <= f + 1e-12 * max(1.0, abs(f)):
                    break
                step = step / 2
            else:
                break
            u, f, g = u + step, f_new, g_new
            iterations += 1
            previous, (step, gap) = gap, self.step(chol, g)
            if gap <= previous / 10:
                fresh = False
                continue
            if fresh or gap <= 1e-12:  # stalled at the rounding floor of the sums
                break
            chol, fresh = self.factor(u, g), True
            if chol is None:
                return np.exp(u), -f * n, iterations, False, not_pd
            step, gap = self.step(chol, g)
        if np.any(np.abs(u) >= _LOG_BOUND - 1e-6):
            why = "a parameter ran to the edge of its range (the data do not identify it)"
            return np.exp(u), -f * n, iterations, False, why
        ok = bool(gap <= _CONVERGENCE_GAP)
        why = "converged" if ok else f"stopped {gap:.3g} log-likelihood units short of the optimum"
        return np.exp(u), -f * n, iterations, ok, why


#: Above this many rows a fit first finds the optimum on an evenly strided subsample of about
#: this many rows, then needs only a few Newton steps on all of them (2-3x fewer evaluations).
_SUBSAMPLE_ROWS = 100_000


def _warm_start(
    fit: Callable[[slice], FloatArray | None], rows: int, start: FloatArray
) -> tuple[FloatArray, bool]:
    """The optimum on every k-th row as the start of the full fit, when there are many rows."""
    if rows < 4 * _SUBSAMPLE_ROWS:
        return start, False
    found = fit(slice(None, None, rows // _SUBSAMPLE_ROWS))
    return (start, False) if found is None else (found, True)


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    strict: bool = True,
    maxiter: int = 1000,
) -> BGNBDFit:
    """Fit the BG/NBD model by maximum likelihood.

    Parameters
    ----------
    frequency, recency, T
        One value per customer (or per group, see ``weights``), recency and T in one time
        unit; see the module docstring for the conventions.
    weights
        Non-negative number of customers behind each row, as :func:`group_customers` returns:
        the log-likelihood is the weighted sum, so a grouped fit equals the ungrouped one.
    strict
        Raise :class:`ConvergenceError` when the maximisation fails (the default, because a
        half-fitted model silently mis-prices every customer). With ``strict=False`` the
        last iterate is returned with ``converged=False`` for diagnosis.
    maxiter
        Iteration cap for the quasi-Newton phase.

    Notes
    -----
    The search runs over the logs of the four parameters, so they stay positive without
    constraints, from a start scaled to the data (``alpha`` follows the time unit: a start
    of 1 would be weeks away from the optimum for data in days). The time unit only rescales
    ``alpha`` (and shifts the log-likelihood by ``sum(x) * ln(scale)``, the likelihood being a
    density in time); r, a, b and the predictions do not depend on it.
    """
    x, tx, t, w = _bgnbd_columns(frequency, recency, T, weights)
    data = _BGNBDData(x, tx, t, w)
    rate = max(data.wx / data.n, 1e-3) / max(data.mean_T, 1e-12)
    start = np.array([1.0, 1.0 / rate, 1.0, 3.0])

    def on_rows(rows: slice) -> FloatArray | None:
        sub = _BGNBDData(x[rows], tx[rows], t[rows], w[rows])
        found = _maximise(lambda th: _bgnbd_value_grad(th, sub), start, sub.n, maxiter)
        return found[0] if found[3] else None

    start, warm = _warm_start(on_rows, len(x), start)
    theta, ll, iterations, ok, why = _maximise(
        lambda th: _bgnbd_value_grad(th, data), start, data.n, maxiter, warm=warm
    )
    if not ok and strict:
        raise ConvergenceError(f"BG/NBD fit did not converge: {why}")
    r, alpha, a, b = (float(v) for v in theta)
    return BGNBDFit(r, alpha, a, b, float(ll), data.n, iterations, ok)


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
        found = _maximise(lambda th: _gg_value_grad(th, sub), start, sub.n, maxiter)
        return found[0] if found[3] else None

    start, warm = _warm_start(on_rows, len(x), start)
    theta, ll, iterations, ok, why = _maximise(
        lambda th: _gg_value_grad(th, data), start, data.n, maxiter, warm=warm
    )
    if not ok and strict:
        raise ConvergenceError(f"Gamma-Gamma fit did not converge: {why}")
    p, q, v = (float(x) for x in theta)
    return GammaGammaFit(p, q, v, float(ll), data.n, iterations, ok)


# --------------------------------------------------------------------------------------------
# predictions


def p_alive(fit: BGNBDFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
    """Probability that each customer has not dropped out by T.

    In the BG/NBD model a customer can only drop out right after a repeat purchase, so a
    customer with none is alive with certainty (the model's well-known optimism about one-off
    buyers). Evaluated as ``expit(-D)`` so that long silences give a tiny probability rather
    than an overflow.
    """
    x, tx, t = _broadcast(frequency=frequency, recency=recency, T=T)
    _check_rft(x, tx, t)
    return _p_alive(fit, x, tx, t)


def _p_alive(fit: BGNBDFit, x: FloatArray, tx: FloatArray, t: FloatArray) -> FloatArray:
    rep = x > 0
    out = np.ones_like(x)
    xr = x[rep]
    D = (
        np.log(fit.a)
        - np.log(fit.b + xr - 1.0)
        + (fit.r + xr) * (np.log(fit.alpha + t[rep]) - np.log(fit.alpha + tx[rep]))
    )
    out[rep] = special.expit(-D)
    return out


def _alive_expectation_quad(r: float, a: float, b: float, x: float, s: float) -> float:
    """E[purchases in the next t | alive] by integrating over the dropout probability p.

    Given alive, lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x) a posteriori, and a
    customer with (lambda, p) makes ``(1 - exp(-lambda p t)) / p`` purchases on average, so the
    expectation is ``E_p[(1 - (1 + p s)^-(r + x)) / p]`` with ``s = t / (alpha + T)``. The
    integral runs over ``y = -ln p`` with the integrand built in logs, so neither a narrow
    Beta density (large a or b) nor a tiny a (a heavy tail in y) over- or underflows, and quad
    is told where the integrand turns: the bulk of the Beta density and p = 1 / s.
    """
    if s == 0:
        return 0.0
    A, bx = r + x, b + x
    log_norm = special.betaln(a, bx)
    log_as = np.log(A) + np.log(s)

    def integrand(y: float) -> float:
        if y <= 0:  # p = 1: a single point, where the density may be infinite (b + x < 1)
            return 0.0
        if log_as - y < -30:  # 1 - (1 + p s)^-A = A p s to 1e-13 here, and p may underflow
            log_head = log_as - y
        else:
            log_head = np.log(-np.expm1(-A * np.log1p(np.exp(-y) * s)))
        log_tail = (bx - 1.0) * np.log(-np.expm1(-y))
        return float(np.exp(log_head - (a - 1.0) * y + log_tail - log_norm))

    quantiles = special.betaincinv(a, bx, np.array([1e-14, 0.01, 0.5, 0.99, 1 - 1e-14]))
    with np.errstate(divide="ignore"):
        turns = np.append(-np.log(quantiles), np.log(s))
    turns = np.unique(turns[np.isfinite(turns) & (turns > 0)])
    end = max(turns.max(initial=0.0), log_as) + 40.0 / a + 40.0  # the tail is ~e^(-a y)
    # pieces at most a decade wide: over wider ones QUADPACK's extrapolation can be fooled by
    # the y^(b + x - 1) behaviour near y = 0 and report a wrong value with a tiny error estimate
    first = max(turns.min(initial=1.0), 1e-300)
    decades = np.geomspace(first, end, int(np.ceil(np.log10(end / first))) + 1)
    edges = [0.0, *np.unique(np.concatenate([turns[turns < end], decades]))]
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        total += integrate.quad(integrand, lo, hi, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    return total


def _alive_expectation(r: float, a: float, b: float, x: FloatArray, s: FloatArray) -> FloatArray:
    """Expected purchases in the next t for customers known to be alive (paper eq. 10 / P(alive)).

    The paper writes ``(a+b+x-1)/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]`` with
    ``z = t / (alpha + T + t)``. That 2F1 diverges as z -> 1 (long horizons, young customers),
    so the difference of two huge numbers loses every digit. Euler's transformation
    ``2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)`` turns the bracket into
    ``1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, whose series converges at z = 1
    whenever r + x + 1 > a (all repeat customers in practice) and whose prefactor tames it
    otherwise. Any result outside the bounds the model guarantees,
    ``1 - (1 + s)^-(r+x) <= E <= (r + x) s`` with ``s = t / (alpha + T)``, or not finite (2F1
    overflows for large b + x with long horizons) is recomputed by quadrature.

    Checked against 80-digit arithmetic (mpmath) at random points: worst relative error 1.5e-11
    for r in [0.03, 10], a, b in [0.1, 20], x <= 500, s in [1e-3, 1e4]; 7e-9 over
    r in [1e-3, 100], a, b in [0.01, 1000], x <= 3000, s in [1e-6, 1e8].
    """
    shape = np.shape(s)
    x, s = np.ravel(x), np.ravel(s)
    A = r + x
    C = a + b + x - 1.0
    z = s / (1.0 + s)
    log1mz = -np.log1p(s)
    F = special.hyp2f1(a + b - 1.0 - r, a - 1.0, C, z)
    with np.errstate(all="ignore"):
        pos = F > 0
        expo = (a - 1.0) * log1mz
        bracket = np.where(
            pos, -np.expm1(expo + np.log(np.where(pos, F, 1.0))), 1.0 - np.exp(expo) * F
        )
        val = C / (a - 1.0) * bracket
    lower = -np.expm1(-A * np.log1p(s))
    upper = A * s
    slack = 1e-9 * upper
    bad = ~np.isfinite(val) | (val < lower - slack) | (val > upper + slack)
    for i in np.flatnonzero(bad):
        val[i] = _alive_expectation_quad(r, a, b, float(x[i]), float(s[i]))
    return np.where(s == 0, 0.0, val).reshape(shape)


def _alive_expectation_any_a(
    r: float, a: float, b: float, x: FloatArray, s: FloatArray
) -> FloatArray:
    """:func:`_alive_expectation`, also at and near a = 1 where its closed form is 0/0.

    The closed form divides a difference that vanishes at a = 1 by a - 1, losing about
    ``eps / (|a - 1| s)`` of relative accuracy. The function is smooth in a, so within
    :data:`_A_NEAR_ONE` of 1 it is the cubic through its values at a = 1 -/+ h, 1 -/+ 2h,
    h = 10 * _A_NEAR_ONE. Measured against 80-digit arithmetic for |a - 1| < 0.01: worst
    relative error 2e-9, at the shortest horizons (s ~ 1e-3).
    """
    if abs(a - 1.0) >= _A_NEAR_ONE:
        return _alive_expectation(r, a, b, x, s)
    h = 10 * _A_NEAR_ONE
    nodes = 1.0 + h * np.array([-2.0, -1.0, 1.0, 2.0])
    out = np.zeros(np.shape(s))
    for j, node in enumerate(nodes):
        others = np.delete(nodes, j)
        weight = np.prod((a - others) / (node - others))
        out = out + weight * _alive_expectation(r, float(node), b, x, s)
    return out


def _alive_expectation_dedup(
    r: float, a: float, b: float, x: FloatArray, s: FloatArray
) -> FloatArray:
    """:func:`_alive_expectation_any_a` evaluated once per distinct (x, s) pair.

    It depends on a customer only through (x, s); with times on a day or week grid a million
    customers share a few tens of thousands of pairs, and 2F1 is the costly part.
    """
    if np.size(s) > 1000:
        xs, ss = np.ravel(x), np.ravel(s)
        found = _unique_rows_if_few(ss, xs, at_most=0.5)
        if found is not None and len(found[0]) < len(xs) // 2:
            first, inverse = found
            values = _alive_expectation_any_a(r, a, b, xs[first], ss[first])
            return values[inverse].reshape(np.shape(s))
    return _alive_expectation_any_a(r, a, b, x, s)


def expected_purchases(
    fit: BGNBDFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Expected repeat purchases in (T, T + t] given each customer's history (paper eq. 10).

    It is ``P(alive) * E[purchases | alive]``; the second factor is computed in a form that
    stays accurate for long horizons (see :func:`_alive_expectation`). All inputs broadcast,
    so one customer can be asked about many horizons or many customers about one.
    """
    t_, x, tx, T_ = _broadcast(t=t, frequency=frequency, recency=recency, T=T)
    if np.any(t_ < 0):
        raise ValueError("t has negative values")
    alive = p_alive(fit, x, tx, T_)
    s = t_ / (fit.alpha + T_)
    return alive * _alive_expectation_dedup(fit.r, fit.a, fit.b, x, s)


def expected_purchases_new(fit: BGNBDFit, t: ArrayLike) -> FloatArray:
    """Expected repeat purchases in (0, t] for a customer just acquired (paper eq. 7).

    This is eq. 10 with no history (x = 0, T = 0), so it shares that formula's accurate form.
    """
    t_ = _as_float("t", t)
    if np.any(t_ < 0):
        raise ValueError("t has negative values")
    return _alive_expectation_any_a(fit.r, fit.a, fit.b, np.zeros_like(t_), t_ / fit.alpha)


def expected_average_value(
    gg_fit: GammaGammaFit, frequency: ArrayLike, monetary_value: ArrayLike
) -> FloatArray:
    """Expected value of a future transaction given the observed mean spend.

    A weighted average of the customer's own mean ``m`` and the population mean, the weight on
    ``m`` growing with the number of repeat purchases: few purchases are shrunk towards the
    population. Customers with no repeat purchase get the population mean ``p v / (q - 1)``
    (their ``monetary_value`` is ignored, so 0 or NaN is fine).
    """
    x, m = _broadcast(frequency=frequency, monetary_value=monetary_value)
    _check_frequency(x)
    rep = x > 0
    if not np.all((m[rep] > 0) & np.isfinite(m[rep])):
        raise ValueError("monetary_value must be finite and > 0 where frequency > 0")
    p, q, v = gg_fit.p, gg_fit.q, gg_fit.v
    if np.any(~rep) and q <= 1:
        raise ValueError(f"q = {q:.4g} <= 1: the population mean spend is infinite")
    xm = np.where(rep, x * np.where(rep, m, 0.0), 0.0)
    return p * (v + xm) / (p * x + q - 1.0)


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
    x, tx, T_, m = _broadcast(
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
    found = _unique_rows_if_few(Ts, xs, at_most=0.5)
    first, inverse = found if found is not None else (np.arange(len(xs)), None)
    xu, Tu = xs[first], Ts[first]
    total = np.zeros_like(xu)
    previous = np.zeros_like(xu)
    for k in range(1, months + 1):
        cumulative = _alive_expectation_any_a(fit.r, fit.a, fit.b, xu, k * month / (fit.alpha + Tu))
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
    x, tx, T_, m = _broadcast(
        frequency=frequency, recency=recency, T=T, monetary_value=monetary_value
    )
    _check_rft(x, tx, T_)
    alive = _p_alive(bgnbd_fit, x, tx, T_)
    r, a, b = bgnbd_fit.r, bgnbd_fit.a, bgnbd_fit.b
    given_alive = _alive_expectation_dedup(r, a, b, x, horizon / (bgnbd_fit.alpha + T_))
    usable = (x > 0) & np.isfinite(m) & (m > 0)
    value = expected_average_value(gg_fit, np.where(usable, x, 0.0), np.where(usable, m, 0.0))
    month = DAYS_PER_MONTH / time_unit_days
    discounted = _discounted_purchases(bgnbd_fit, x, T_, months, month, monthly_discount_rate)
    predicted = alive * discounted * value * margin
    return CustomerForecast(alive, alive * given_alive, value, predicted)


# --------------------------------------------------------------------------------------------
# simulation


def simulate_bgnbd(
    r: float, alpha: float, a: float, b: float, T: ArrayLike, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Draw (frequency, recency) from the BG/NBD model for customers observed for ``T``.

    Exact and vectorised: with N ~ Poisson(lambda T) purchases of the undying process and J ~
    Geometric(p) the purchase after which the customer drops out, x = min(N, J); given N = n
    the purchase times are n sorted uniforms on (0, T], so t_x = T * Beta(x, n - x + 1).
    For checking a fit (recovery of known parameters) or a pipeline end to end.
    """
    T_ = _as_float("T", T)
    if T_.ndim != 1 or np.any(T_ < 0):
        raise ValueError("T must be a one-dimensional array of non-negative times")
    _check_params("r alpha a b", [r, alpha, a, b])
    n = len(T_)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    purchases = rng.poisson(lam * T_)
    dropout_at = rng.geometric(np.clip(p, 1e-300, 1.0))
    x = np.minimum(purchases, dropout_at)
    recency = np.zeros(n)
    rep = x > 0
    recency[rep] = T_[rep] * rng.beta(x[rep], purchases[rep] - x[rep] + 1)
    # a Beta draw can round to exactly 0 for tiny T; recency must stay > 0 when x > 0
    recency[rep] = np.maximum(recency[rep], np.finfo(float).tiny)
    return x.astype(np.float64), recency


def simulate_gamma_gamma(
    p: float, q: float, v: float, frequency: ArrayLike, rng: np.random.Generator
) -> FloatArray:
    """Draw each customer's mean repeat-transaction value from the Gamma-Gamma model.

    nu ~ Gamma(q, rate v) per customer, and the sum of x Gamma(p, rate nu) values is
    Gamma(p x, rate nu), so one draw per customer suffices. Customers with x = 0 get 0, the
    convention of ``lifetimes``' RFM summaries.
    """
    _check_params("p q v", [p, q, v])
    x = _as_float("frequency", frequency)
    _check_frequency(x)
    nu = rng.gamma(q, 1.0 / v, x.shape)
    rep = x > 0
    out = np.zeros(x.shape)
    out[rep] = rng.gamma(p * x[rep], 1.0 / nu[rep]) / x[rep]
    return out
