"""Fit-time benchmark for ltv_pipeline.clv (not a test: prints, asserts nothing).

Run: .venv/bin/python bench/clv_fit.py | tee bench/results/clv_fit.txt

Simulates customers from known BG/NBD / Gamma-Gamma parameters, with times as a warehouse
delivers them (whole days, expressed in weeks), and times ungrouped vs grouped fits.
Parameters are printed next to the truth.
"""

import time

import numpy as np
import pandas as pd

from ltv_pipeline import clv

TRUTH = (0.5, 8.0, 0.9, 3.5)
GG = (6.0, 4.0, 15.0)


def make(n, seed):
    rng = np.random.default_rng(seed)
    T_days = rng.integers(70, 729, n).astype(float)  # 10..104 weeks, whole days
    x, tx = clv.simulate_bgnbd(TRUTH[0], TRUTH[1] * 7, *TRUTH[2:], T_days, rng)  # alpha in days
    tx_days = np.where(x > 0, np.clip(np.ceil(tx), 1.0, T_days), 0.0)
    m = clv.simulate_gamma_gamma(*GG, x, rng)
    return pd.DataFrame(
        {"frequency": x, "recency": tx_days / 7, "T": T_days / 7, "monetary_value": m}
    )


def timed(fn, repeat=3):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(n: int, name: str) -> None:
    df = make(n, 42 + n)
    x, tx, T = (df[c].to_numpy() for c in ("frequency", "recency", "T"))
    m = df["monetary_value"].to_numpy()
    rep = 3 if n <= 50_000 else 2
    t_un, fit = timed(lambda: clv.fit_bgnbd(x, tx, T), rep)
    t_grp, grouped = timed(lambda: clv.group_customers(x, tx, T), rep)
    t_gfit, gfit = timed(lambda: clv.fit_bgnbd(*grouped[:3], grouped[3]), rep)
    t_gg, gg = timed(lambda: clv.fit_gamma_gamma(x, m), rep)
    # weeks, whole weeks: the coarser grid a weekly pipeline has
    Tw = np.ceil(T)
    txw = np.where(x > 0, np.clip(np.ceil(tx), 1.0, Tw), 0.0)
    t_wgrp, wgrouped = timed(lambda: clv.group_customers(x, txw, Tw), rep)
    t_wfit, wfit = timed(lambda: clv.fit_bgnbd(*wgrouped[:3], wgrouped[3]), rep)
    t_clv, _ = timed(lambda: clv.predicted_clv(fit, gg, x, tx, T, m), 1)
    print(f"== {name}: {n} customers (times in weeks at day resolution)")
    print(f"  BG/NBD ungrouped fit        {t_un:7.3f} s  iters {fit.iterations}  {fit.params()}")
    print(f"  group_customers (days)      {t_grp:7.3f} s  -> {len(grouped[3])} distinct rows")
    print(
        f"  BG/NBD grouped fit          {t_gfit:7.3f} s  "
        f"LL {gfit.log_likelihood:.4f} vs {fit.log_likelihood:.4f}"
    )
    rel = max(abs(gfit.params()[k] / fit.params()[k] - 1) for k in fit.params())
    print(f"     max rel param diff grouped vs ungrouped {rel:.2e}")
    print(f"  group_customers (weeks)     {t_wgrp:7.3f} s  -> {len(wgrouped[3])} distinct rows")
    print(f"  BG/NBD grouped fit (weeks)  {t_wfit:7.3f} s  {wfit.params()}")
    print(f"  Gamma-Gamma fit             {t_gg:7.3f} s  {gg.params()}  n={gg.n_customers:.0f}")
    print(f"  predicted_clv (12 months)   {t_clv:7.3f} s")


if __name__ == "__main__":
    print(f"truth: BG/NBD r, alpha (weeks), a, b = {TRUTH}; Gamma-Gamma p, q, v = {GG}")
    for size, label in [(50_000, "50k"), (1_000_000, "1m")]:
        bench(size, label)
