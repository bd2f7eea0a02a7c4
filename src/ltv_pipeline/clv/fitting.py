"""Maximum likelihood for both CLV models: L-BFGS-B over log-parameters, then Newton steps
whose Hessian certifies the optimum (:func:`maximise`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from ltv_pipeline.clv.data import FloatArray

# Log-parameters are boxed so that a line search can never evaluate exp(1000); a fit that ends
# on the box is reported as not converged (the model is then not identified by the data).
_LOG_BOUND = 30.0


# A fit is converged when the Newton decrement, scaled to the total log-likelihood, says the
# optimum is at most this far away: then every parameter is within sqrt(2 * gap) ~ 0.0014
# standard errors of the exact maximiser (Cauchy-Schwarz on the quadratic model).
_CONVERGENCE_GAP = 1e-6


class ConvergenceError(RuntimeError):
    """The likelihood maximisation did not reach a proper maximum."""


def maximise(
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
    """The objective in log-parameters and the Newton finish of :func:`maximise`."""

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
SUBSAMPLE_ROWS = 100_000


def warm_start(
    fit: Callable[[slice], FloatArray | None], rows: int, start: FloatArray
) -> tuple[FloatArray, bool]:
    """The optimum on every k-th row as the start of the full fit, when there are many rows."""
    if rows < 4 * SUBSAMPLE_ROWS:
        return start, False
    found = fit(slice(None, None, rows // SUBSAMPLE_ROWS))
    return (start, False) if found is None else (found, True)
