"""ltv_pipeline.clv vs PyMC-Marketing's MAP fits: fit time and agreement on the same customers.

Run (from the repo root; writes bench/results/clv_vs_pymc.md):
  bash bench/pymc_venv.sh      # once: bench/.venvs/pymc
  flock /tmp/bench.lock .venv/bin/python bench/clv_vs_pymc.py \\
      [--customers 1000000 100000] [--pymc-python PATH]

PyMC-Marketing lives in its own venv so that PyMC's stack can never pin or downgrade the
pipeline's; bench/_pymc_worker.py fits it there. The customer summaries are those of
bench/clv_vs_lifetimes.py (its `write_summary`: simulated as bench/clv_fit.py, times in weeks at
whole-day resolution, one .npz that both sides fit). PyMC-Marketing fits `BetaGeoModel` on every
customer and `GammaGammaModel` on the repeat customers by `fit(method="map")`, under its default
priors and under HalfFlat ones (MAP = maximum likelihood); ours are the maximum-likelihood fits.
Both sides' parameters are scored with OUR log-likelihood on the full data. Times are best-of-N
wall times of one fit call; PyMC-Marketing's model build is timed separately.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from clv_fit import GG, TRUTH  # noqa: E402
from clv_vs_lifetimes import MODELS, cpu_model, log_likelihood, ours, write_summary  # noqa: E402

KEYS = ("bgnbd", "gamma_gamma")  # PyMC-Marketing has no per-row weights: no grouped fit
PRIORS = ("default", "flat")


def theirs(python: str, path: Path, repeat: int) -> dict:
    worker = BENCH / "_pymc_worker.py"
    cmd = [python, str(worker), str(path), str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"`{shlex.join(cmd)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def fmt(params: dict) -> str:
    return ", ".join(f"{k} {v:.6g}" for k, v in params.items())


def describe_priors(defaults: dict) -> str:
    if not defaults:
        return "n/a"
    models = [", ".join(f"{k} ~ {v}" for k, v in d.items()) for d in defaults.values()]
    text = "; ".join(f"{m}: {p}" for m, p in zip(defaults, models, strict=True))
    if "phi_dropout" in defaults.get("BetaGeoModel", {}):
        text += " (a = phi_dropout * kappa_dropout, b = (1 - phi_dropout) * kappa_dropout)"
    return text


def bench(n: int, tmp: Path, python: str, repeat: int | None) -> tuple[list[list[str]], dict]:
    path, cols, grouped = write_summary(n, tmp)
    rep = repeat or (3 if n <= 200_000 else 2)
    mine, t_group = ours(path, rep)
    try:
        other, error = theirs(python, path, rep), None
    except (OSError, RuntimeError, ValueError) as exc:
        other, error = {}, str(exc)
    size = f"{n:,}"
    rows, prows, drows, own_gap = [], [], [], 0.0
    for key in KEYS:
        label, truth = MODELS[key]
        a = mine[key]
        ll_a = log_likelihood(key, a["params"], cols)
        for priors in PRIORS:
            b = other.get(f"{key}/{priors}")
            head = f"| {size} | {label} | {priors} | {a['seconds']:.2f} |"
            if b and "error" not in b:
                ll_b = log_likelihood(key, b["params"], cols)
                own_gap = max(own_gap, abs(b["own_log_likelihood"] / ll_b - 1))
                rel = max(abs(b["params"][k] / a["params"][k] - 1) for k in a["params"])
                net = b["seconds"] - b["compile_s"]
                rows.append(
                    f"{head} {b['seconds']:.2f} ({b['compile_s']:.2f}) "
                    f"| {b['seconds'] / a['seconds']:.1f}x ({net / a['seconds']:.1f}x) "
                    f"| {rel:.1e} | {ll_a:.3f} | {ll_b:.3f} | {ll_b - ll_a:+.1e} |"
                )
                opt = b["optimizer"]
                drows.append(
                    f"| {size} | {label} | {priors} | {', '.join(b['free_params'])} "
                    f"| {b['build_s']:.2f} | {b['first_s']:.2f} | {b['seconds']:.2f} "
                    f"| {opt['nit']} ({opt['nfev']}) | {opt['message']} |"
                )
                theirs_p = fmt(b["params"])
            else:
                why = f"failed: {b['error']}" if b else "n/a"
                rows.append(f"{head} {why} | | | {ll_a:.3f} | | |")
                theirs_p = "n/a"
            prows.append(
                f"| {size} | {label} | {priors} | {fmt(truth)} | {fmt(a['params'])} | {theirs_p} |"
            )
    g = mine["bgnbd_grouped"]
    grouped_note = (
        f"{size}: {len(grouped[3]):,} rows, grouping {t_group:.2f} s + fit {g['seconds']:.2f} s"
    )
    meta = {
        "error": error,
        "versions": other.get("versions", {}),
        "default_priors": other.get("default_priors", {}),
        "own_gap": own_gap,
        "rep": rep,
        "grouped": grouped_note,
    }
    return [rows, prows, drows], meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 100_000])
    ap.add_argument("--pymc-python", default=str(BENCH / ".venvs/pymc/bin/python"))
    ap.add_argument("--repeat", type=int, help="best-of-N (default 3 up to 200k customers, else 2)")
    ap.add_argument("--out", type=Path, default=BENCH / "results/clv_vs_pymc.md")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    tables, metas = [[], [], []], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.customers:
            parts, meta = bench(n, Path(tmp), args.pymc_python, args.repeat)
            for table, part in zip(tables, parts, strict=True):
                table += part
            metas.append(meta)
    rows, prows, drows = tables
    python = os.path.relpath(sys.executable, BENCH.parent) if sys.executable else "python"
    command = shlex.join([python, os.path.relpath(__file__, BENCH.parent), *sys.argv[1:]])
    pv = next((m["versions"] for m in metas if m["versions"]), {})
    defaults = next((m["default_priors"] for m in metas if m["default_priors"]), {})
    errors = [m["error"] for m in metas if m["error"]]
    sizes = ", ".join(f"{m['rep']} at {n:,}" for n, m in zip(args.customers, metas, strict=True))
    lines = [
        "# ltv_pipeline.clv vs PyMC-Marketing: BG/NBD and Gamma-Gamma MLE vs MAP fits",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- command: `flock /tmp/bench.lock {command}` (PyMC venv: `bash bench/pymc_venv.sh`)",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}; "
        f"1-min load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        f"- ours: python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, pandas {pd.__version__}",
        "- PyMC venv: "
        + (", ".join(f"{k} {v}" for k, v in pv.items()) if pv else "not run (see below)"),
        f"- truth: BG/NBD r, alpha (weeks), a, b = {TRUTH}; Gamma-Gamma p, q, v = {GG}; "
        "data simulated as bench/clv_fit.py `make(n, 42 + n)`, times in weeks at whole days",
        f"- PyMC-Marketing's default priors: {describe_priors(defaults)}",
        '- flat priors: `Prior("HalfFlat")` on r, alpha, a, b (BetaGeoModel) and on p, q, v '
        "(GammaGammaModel), so the MAP is the maximum-likelihood estimate"
        + (
            "; GammaGammaModel's defaults are already HalfFlat, so its two rows fit the same "
            "model twice (a measure of timing noise)"
            if set(defaults.get("GammaGammaModel", {}).values()) == {"HalfFlat()"}
            else ""
        ),
        "",
        f"Seconds are best-of-N wall times of one fit call on identical arrays (N = {sizes}). "
        "Ours: `clv.fit_bgnbd` / `clv.fit_gamma_gamma` (L-BFGS-B then Newton steps to a certified "
        'optimum). PyMC-Marketing: `model.fit(method="map", progressbar=False)` on a model '
        "already built with `build_model(df)` (its build time is in the details table); the "
        "call runs `pm.find_MAP`, which compiles the PyTensor logp and gradient graphs on every "
        "call, runs scipy L-BFGS-B with PyMC's default tolerances, and packs the point into an "
        "InferenceData. In parentheses: compiling those graphs alone (best of N, C modules "
        "already in PyTensor's on-disk cache), and the speed-up without it. Speed-up = PyMC / "
        "ours. Both log-likelihoods are evaluated with `clv.bgnbd_log_likelihood` / "
        "`clv.gamma_gamma_log_likelihood` on the full data (totals, time in weeks); "
        "dLL = PyMC - ours, so it is <= 0 up to rounding and measures how far from the maximum "
        "likelihood PyMC's optimum is (for default priors, mostly the prior's pull). "
        "PyMC-Marketing's own likelihood terms (no priors) at its optimum match ours at the same "
        "parameters to a relative "
        + (f"{max(m['own_gap'] for m in metas):.1e}." if pv else "n/a."),
        "",
        "| customers | model | priors | ours s | pymc s (compile) | speed-up (w/o compile) "
        "| max rel param diff | LL ours | LL pymc | dLL |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "PyMC-Marketing has no per-row weights, so our grouped BG/NBD fit (distinct (frequency, "
        "recency, T) rows with counts as weights, the same optimum) has no counterpart; for "
        "reference it takes " + "; ".join(m["grouped"] for m in metas) + ".",
        "",
        "## Parameters",
        "",
        "| customers | model | priors | truth | ours (MLE) | pymc (MAP) |",
        "|---:|---|---|---|---|---|",
        *prows,
        "",
        "## PyMC-Marketing details",
        "",
        "Build = `Model(model_config=...)` + `build_model(df)` on a ready DataFrame, once. "
        'First fit = the first `fit(method="map")` call in the worker process (more graph '
        "work and cache loading than the best-of-N; on a machine whose PyTensor cache, "
        "~/.pytensor, is still empty it also compiles C code). Iterations (logp evaluations) "
        "and the "
        "message are scipy's L-BFGS-B result of the last call.",
        "",
        "| customers | model | priors | free parameters | build s | first fit s | best fit s "
        "| iterations (evals) | scipy message |",
        "|---:|---|---|---|---:|---:|---:|---:|---|",
        *drows,
    ]
    if errors:
        lines += ["", "## PyMC-Marketing could not run", "", *(f"```\n{e}\n```" for e in errors)]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
