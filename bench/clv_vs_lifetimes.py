"""ltv_pipeline.clv vs the `lifetimes` package: fit time and agreement on the same customers.

Run (from the repo root; writes bench/results/clv_vs_lifetimes.md):
  bash bench/lifetimes_venv.sh      # once: bench/.venvs/lifetimes
  .venv/bin/python bench/clv_vs_lifetimes.py [--customers 1000000 100000] [--lifetimes-python PATH]

lifetimes (0.11.3, unmaintained since 2020) lives in its own venv so that it can never pin or
downgrade the pipeline's stack; bench/_lifetimes_worker.py fits it there. Customers are simulated
from known parameters exactly as in bench/clv_fit.py (times in weeks at whole-day resolution),
saved to one .npz, and both sides fit that file: BG/NBD on every customer, BG/NBD on the distinct
(frequency, recency, T) rows from clv.group_customers with their counts as weights, and
Gamma-Gamma on the repeat customers. Both sides' parameters are scored with OUR log-likelihood
on the full data. Times are best-of-N wall times of one fit call; grouping is timed separately.
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

from ltv_pipeline import clv

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from clv_fit import GG, TRUTH, make, timed  # noqa: E402

BG_TRUTH = dict(zip(("r", "alpha", "a", "b"), TRUTH, strict=True))
MODELS = {  # key: (label, truth)
    "bgnbd": ("BG/NBD, every customer", BG_TRUTH),
    "bgnbd_grouped": ("BG/NBD, grouped + weights", BG_TRUTH),
    "gamma_gamma": ("Gamma-Gamma, repeat customers", dict(zip(("p", "q", "v"), GG, strict=True))),
}


def ours(path: Path, repeat: int) -> tuple[dict, float]:
    d = np.load(path)
    x, tx, T, m = d["x"], d["tx"], d["T"], d["m"]
    gx, gtx, gT, gw = d["gx"], d["gtx"], d["gT"], d["gw"]
    t_group, _ = timed(lambda: clv.group_customers(x, tx, T), repeat)
    fits = {
        "bgnbd": timed(lambda: clv.fit_bgnbd(x, tx, T), repeat),
        "bgnbd_grouped": timed(lambda: clv.fit_bgnbd(gx, gtx, gT, gw), repeat),
        "gamma_gamma": timed(lambda: clv.fit_gamma_gamma(x, m), repeat),
    }
    return {k: {"seconds": s, "params": f.params()} for k, (s, f) in fits.items()}, t_group


#: lifetimes is timed as installed and with one BLAS thread (ours limits BLAS to one thread
#: inside its fits); each model keeps its faster time, so the ratio is against its best.
BLAS_SETTINGS = {"default threads": {}, "1 BLAS thread": {"OPENBLAS_NUM_THREADS": "1"}}


def theirs(python: str, path: Path, repeat: int) -> dict:
    worker = BENCH / "_lifetimes_worker.py"
    cmd = [python, str(worker), str(path), str(repeat)]
    runs = {}
    for setting, env in BLAS_SETTINGS.items():
        done = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env={**os.environ, **env}
        )
        if done.returncode:
            msg = f"`{shlex.join(cmd)}` exited {done.returncode}:\n{done.stderr[-3000:]}"
            raise RuntimeError(msg)
        runs[setting] = json.loads(done.stdout)
    first = next(iter(runs.values()))
    best = {"versions": first["versions"]}
    for key in MODELS:
        fits = {setting: run[key] for setting, run in runs.items()}
        if any("error" in fit for fit in fits.values()):
            best[key] = next(fit for fit in fits.values() if "error" in fit)
            continue
        setting = min(fits, key=lambda k: fits[k]["seconds"])
        best[key] = {**fits[setting], "blas": setting}
        best[key].update({f"seconds {k}": fit["seconds"] for k, fit in fits.items()})
    return best


def log_likelihood(key: str, params: dict, d) -> float:
    if key == "gamma_gamma":
        return clv.gamma_gamma_log_likelihood(list(params.values()), d["x"], d["m"])
    return clv.bgnbd_log_likelihood(list(params.values()), d["x"], d["tx"], d["T"])


def write_summary(n: int, tmp: Path) -> tuple[Path, dict, tuple]:
    """Simulate n customers, save x, tx, T, m and the grouped gx, gtx, gT, gw to one .npz."""
    df = make(n, 42 + n)  # the seeds of bench/clv_fit.py
    names = {"x": "frequency", "tx": "recency", "T": "T", "m": "monetary_value"}
    cols = {k: df[c].to_numpy() for k, c in names.items()}
    grouped = clv.group_customers(cols["x"], cols["tx"], cols["T"])
    path = tmp / f"summary_{n}.npz"
    np.savez(path, **cols, **dict(zip(("gx", "gtx", "gT", "gw"), grouped, strict=True)))
    return path, cols, grouped


def bench(n: int, tmp: Path, python: str, repeat: int | None) -> tuple[list[str], list[str], dict]:
    path, cols, grouped = write_summary(n, tmp)
    rep = repeat or (3 if n <= 200_000 else 2)
    mine, t_group = ours(path, rep)
    try:
        other, error = theirs(python, path, rep), None
    except (OSError, RuntimeError, ValueError) as exc:
        other, error = {}, str(exc)
    size = f"{n:,}"
    rows, prows, own_gap = [], [], 0.0
    for key, (label, truth) in MODELS.items():
        a, b = mine[key], other.get(key)
        ll_a = log_likelihood(key, a["params"], cols)
        if key == "bgnbd_grouped":
            label += f" ({len(grouped[3]):,} rows; grouping {t_group:.2f} s)"
        if b and "error" not in b:
            ll_b = log_likelihood(key, b["params"], cols)
            own_gap = max(own_gap, abs(b["own_log_likelihood"] / ll_b - 1))
            rel = max(abs(b["params"][k] / a["params"][k] - 1) for k in a["params"])
            both = " / ".join(f"{b.get(f'seconds {k}', float('nan')):.2f}" for k in BLAS_SETTINGS)
            rows.append(
                f"| {size} | {label} | {a['seconds']:.3f} | {b['seconds']:.2f} "
                f"({b['hessian_s']:.2f}) | {both} | {b['seconds'] / a['seconds']:.1f}x "
                f"({(b['seconds'] - b['hessian_s']) / a['seconds']:.1f}x) | {rel:.1e} "
                f"| {ll_a:.3f} | {ll_b:.3f} | {ll_b - ll_a:+.1e} |"
            )
        else:
            why = f"failed: {b['error']}" if b else "n/a"
            rows.append(f"| {size} | {label} | {a['seconds']:.3f} | {why} | | | | {ll_a:.3f} | | |")
            b = None
        fmt = lambda p: ", ".join(f"{k} {v:.6g}" for k, v in p.items())  # noqa: E731
        lt = fmt(b["params"]) if b else "n/a"
        prows.append(
            f"| {size} | {label.split(' (')[0]} | {fmt(truth)} | {fmt(a['params'])} | {lt} |"
        )
    meta = {"error": error, "versions": other.get("versions", {}), "own_gap": own_gap, "rep": rep}
    return rows, prows, meta


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return names[0] if names else platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 100_000])
    ap.add_argument("--lifetimes-python", default=str(BENCH / ".venvs/lifetimes/bin/python"))
    ap.add_argument("--repeat", type=int, help="best-of-N (default 3 up to 200k customers, else 2)")
    ap.add_argument("--out", type=Path, default=BENCH / "results/clv_vs_lifetimes.md")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows, prows, metas = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.customers:
            r, p, meta = bench(n, Path(tmp), args.lifetimes_python, args.repeat)
            rows += r
            prows += p
            metas.append(meta)
    python = os.path.relpath(sys.executable, BENCH.parent) if sys.executable else "python"
    command = shlex.join([python, os.path.relpath(__file__, BENCH.parent), *sys.argv[1:]])
    lt = next((m["versions"] for m in metas if m["versions"]), {})
    errors = [m["error"] for m in metas if m["error"]]
    lines = [
        "# ltv_pipeline.clv vs lifetimes: BG/NBD and Gamma-Gamma maximum-likelihood fits",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- command: `{command}` (lifetimes venv: `bash bench/lifetimes_venv.sh`)",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}; "
        f"1-min load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        f"- ours: python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, pandas {pd.__version__}",
        "- lifetimes venv: "
        + (", ".join(f"{k} {v}" for k, v in lt.items()) if lt else "not run (see below)"),
        f"- truth: BG/NBD r, alpha (weeks), a, b = {TRUTH}; Gamma-Gamma p, q, v = {GG}; "
        "data simulated as bench/clv_fit.py `make(n, 42 + n)`, times in weeks at whole days",
        "",
        "Seconds are best-of-N wall times of one fit call on identical arrays (N = "
        + ", ".join(f"{m['rep']} at {n:,}" for n, m in zip(args.customers, metas, strict=True))
        + "). lifetimes' `.fit` includes an autograd Hessian at the optimum (for "
        "standard errors), which ours does not compute; its cost is in parentheses. "
        "Speed-up = lifetimes / ours (in parentheses: without that Hessian). "
        "Both log-likelihoods are evaluated with "
        "`clv.bgnbd_log_likelihood` / `clv.gamma_gamma_log_likelihood` on the full data "
        "(totals, time in weeks); dLL = lifetimes - ours. lifetimes' own optimum value "
        "(a mean over customers on time rescaled to max T = 1), converted to a total in weeks, "
        "matches ours at its parameters to a relative "
        + (f"{max(m['own_gap'] for m in metas):.1e}." if lt else "n/a."),
        "",
        "lifetimes was timed twice, as installed (OpenBLAS's default threads) and with "
        "`OPENBLAS_NUM_THREADS=1` (ours runs its fits with one BLAS thread, through "
        "threadpoolctl); each model is compared with lifetimes' faster setting.",
        "",
        "| customers | model | ours s | lifetimes s (Hessian) | lifetimes s: "
        + " / ".join(BLAS_SETTINGS)
        + " | speed-up (w/o Hessian) | max rel param diff "
        "| LL ours | LL lifetimes | dLL |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "## Parameters",
        "",
        "| customers | model | truth | ours | lifetimes |",
        "|---:|---|---|---|---|",
        *prows,
    ]
    if errors:
        lines += ["", "## lifetimes could not run", "", *(f"```\n{e}\n```" for e in errors)]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
