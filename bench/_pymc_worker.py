"""Fit PyMC-Marketing by MAP on a customer summary written by bench/clv_vs_pymc.py; print JSON.

Run by that script under the PyMC venv (bench/pymc_venv.sh), not by hand:
  bench/.venvs/pymc/bin/python bench/_pymc_worker.py SUMMARY.npz REPEAT
It imports only numpy, pandas and PyMC's stack (never ltv_pipeline), so it runs in its own venv.

Fits `BetaGeoModel` on every customer and `GammaGammaModel` on the repeat customers, each under
PyMC-Marketing's default priors and under flat ones (HalfFlat on every parameter, so that the
MAP is the maximum-likelihood estimate). PyMC-Marketing has no per-row weights, so the grouped
arrays of the summary are not used. Timings, per model and priors:
  build_s   `Model(model_config=...)` + `.build_model(df)`, once (DataFrame already made)
  seconds   best-of-REPEAT wall time of `.fit(method="map", progressbar=False)`: pm.find_MAP,
            which compiles the PyTensor logp/dlogp graphs on every call (C modules come from
            PyTensor's on-disk cache after the first ever run), runs scipy L-BFGS-B with
            PyMC's defaults, then wraps the point in an InferenceData with the fit data
  first_s   the first of those calls in this process
  compile_s compiling logp + dlogp as find_MAP does, best-of-REPEAT (part of `seconds`)
"""

import importlib.metadata
import json
import platform
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")  # PyTensor's "no BLAS" note, pymc-marketing deprecations

import pandas as pd  # noqa: E402
import pymc.tuning.starting as starting  # noqa: E402
import pytensor  # noqa: E402
from pymc.model.transform.conditioning import remove_value_transforms  # noqa: E402
from pymc_extras.prior import Prior  # noqa: E402
from pymc_marketing.clv import BetaGeoModel, GammaGammaModel  # noqa: E402

MODELS = {  # key: (class, parameter names)
    "bgnbd": (BetaGeoModel, ("r", "alpha", "a", "b")),
    "gamma_gamma": (GammaGammaModel, ("p", "q", "v")),
}

# find_MAP returns only the point; keep scipy's result of the last call to report convergence
_last = {}
_minimize = starting.minimize


def _recording_minimize(*args, **kwargs):
    res = _minimize(*args, **kwargs)
    _last["res"] = res
    return res


starting.minimize = _recording_minimize


def own_log_likelihood(model, point):
    """The model's likelihood terms (no priors, no Jacobians) at `point` (constrained values)."""
    plain = remove_value_transforms(model)
    fn = plain.compile_logp(vars=plain.observed_RVs + plain.potentials, jacobian=False)
    return float(fn({rv.name: point[rv.name] for rv in plain.free_RVs}))


def describe(prior):
    """'Weibull(alpha=2, beta=10)' for Prior("Weibull", alpha=2, beta=10)."""
    args = ", ".join(f"{k}={v}" for k, v in prior.parameters.items())
    return f"{prior.distribution}({args})"


def run(cls, names, df, priors, repeat):
    config = {k: Prior("HalfFlat") for k in names} if priors == "flat" else None
    t0 = time.perf_counter()
    mod = cls(model_config=config)
    mod.build_model(df)
    build_s = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        idata = mod.fit(method="map", progressbar=False)
        times.append(time.perf_counter() - t0)
    res = _last["res"]
    compile_s = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        mod.model.compile_logp(jacobian=False)
        mod.model.compile_dlogp(jacobian=False)
        compile_s = min(compile_s, time.perf_counter() - t0)
    post = idata.posterior
    point = {k: np.asarray(post[k].values).squeeze() for k in post.data_vars}
    return {
        "seconds": min(times),
        "first_s": times[0],
        "build_s": build_s,
        "compile_s": compile_s,
        "params": {k: float(point[k]) for k in names},
        "free_params": sorted(v.name for v in mod.model.free_RVs),
        "own_log_likelihood": own_log_likelihood(mod.model, point),
        "optimizer": {
            "method": "L-BFGS-B",
            "success": bool(res.success),
            "message": str(res.message),
            "nit": int(res.nit),
            "nfev": int(res.nfev),
        },
    }


def main(path, repeat):
    d = np.load(path)
    x, tx, T, m = d["x"], d["tx"], d["T"], d["m"]
    rep = x > 0
    frames = {
        "bgnbd": pd.DataFrame(
            {"customer_id": np.arange(len(x)), "frequency": x, "recency": tx, "T": T}
        ),
        "gamma_gamma": pd.DataFrame(
            {"customer_id": np.flatnonzero(rep), "frequency": x[rep], "monetary_value": m[rep]}
        ),
    }
    versions = ("pymc-marketing", "pymc", "pytensor", "pymc-extras", "numpy", "scipy", "pandas")
    out = {
        "versions": {
            "python": platform.python_version(),
            **{k: importlib.metadata.version(k) for k in versions},
        },
        "floatX": pytensor.config.floatX,
        "cxx": bool(pytensor.config.cxx),
    }
    out["default_priors"] = {}
    for key, (cls, names) in MODELS.items():
        for priors in ("default", "flat"):
            try:
                out[f"{key}/{priors}"] = res = run(cls, names, frames[key], priors, repeat)
            except Exception as exc:  # report, go on with the other fits
                out[f"{key}/{priors}"] = {
                    "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                }
                continue
            if priors == "default":
                config = cls().model_config
                out["default_priors"][cls.__name__] = {
                    k: describe(config[k]) for k in res["free_params"]
                }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
