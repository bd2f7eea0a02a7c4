"""Fit `lifetimes` on a customer summary written by bench/clv_vs_lifetimes.py; print JSON.

Run by that script under the lifetimes venv (bench/lifetimes_venv.sh), not by hand:
  bench/.venvs/lifetimes/bin/python bench/_lifetimes_worker.py SUMMARY.npz REPEAT
It imports only numpy and lifetimes (never ltv_pipeline), so it runs in lifetimes' own venv.
Times are best-of-REPEAT wall times of `.fit(...)`, which in lifetimes includes input checks,
scipy BFGS on the mean negative log-likelihood and an autograd Hessian at the optimum (for
standard errors); `hessian_s` times that Hessian alone, once, so it can be subtracted.
"""

import contextlib
import importlib.metadata
import json
import platform
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")  # pandas 3 deprecation noise from lifetimes' utils

import lifetimes  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402
from autograd import hessian  # noqa: E402
from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402


def timed(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def hessian_seconds(fitter, args):
    log_params = np.log(fitter.params_.to_numpy(dtype=float))
    if isinstance(fitter, BetaGeoFitter):
        log_params[1] += np.log(fitter._scale)  # the optimiser's alpha is in scaled time
    t0 = time.perf_counter()
    hessian(fitter._negative_log_likelihood)(log_params, *args)
    return time.perf_counter() - t0


def run(cls, cols, w, repeat):
    with contextlib.redirect_stdout(sys.stderr):  # lifetimes prints scipy's result on failure
        secs, f = timed(lambda: cls(penalizer_coef=0.0).fit(*cols, weights=w), repeat)
    ww = np.ones(len(cols[0])) if w is None else w
    if cls is BetaGeoFitter:
        # scaled-time mean NLL -> total log-likelihood in the data's time unit
        args = (cols[0], cols[1] * f._scale, cols[2] * f._scale, ww, 0.0)
        own_ll = -f._negative_log_likelihood_ * ww.sum() + (ww @ cols[0]) * np.log(f._scale)
    else:
        args = (*cols, ww, 0.0)
        own_ll = -f._negative_log_likelihood_ * ww.sum()
    return {
        "seconds": secs,
        "hessian_s": hessian_seconds(f, args),
        "params": {k: float(v) for k, v in f.params_.items()},
        "own_log_likelihood": float(own_ll),
    }


def main(path, repeat):
    d = np.load(path)
    x, tx, T, m = d["x"], d["tx"], d["T"], d["m"]
    gx, gtx, gT, gw = d["gx"], d["gtx"], d["gT"], d["gw"]
    rep = x > 0
    out = {
        "versions": {
            "python": platform.python_version(),
            "lifetimes": lifetimes.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pd.__version__,
            "autograd": importlib.metadata.version("autograd"),
        }
    }
    runs = {
        "bgnbd": (BetaGeoFitter, (x, tx, T), None),
        "bgnbd_grouped": (BetaGeoFitter, (gx, gtx, gT), gw),
        "gamma_gamma": (GammaGammaFitter, (x[rep], m[rep]), None),
    }
    for name, (cls, cols, w) in runs.items():
        try:
            out[name] = run(cls, cols, w, repeat)
        except Exception as exc:  # e.g. lifetimes.utils.ConvergenceError: report, go on
            out[name] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
