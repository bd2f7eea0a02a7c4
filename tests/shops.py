"""Shops shaped unlike the generator's, written by code independent of the pipeline.

Each customer follows the BG/NBD story in days: a first purchase on the acquisition day, then
repeat purchases at a gamma-distributed Poisson rate, dying after each repeat purchase with a
beta-distributed probability. What varies is the acquisition calendar (``steady``: spread over
the whole history; ``bursty``: all in its first quarter), so the same behaviour can be read
through calendars that a pooled calendar-month churn rate confuses with behaviour.

:func:`true_active_months` is the expected lifespan of that process under the pipeline's churn
definition, worked out in closed form (and checked against a brute-force simulation in
``tests/test_lifespan.py``), never by the pipeline's code.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEAN_MONTH_DAYS = 365.25 / 12


@dataclass(frozen=True)
class Behaviour:
    """BG/NBD in days: rate ~ Gamma(r, rate alpha) per day, dropout ~ Beta(a, b)."""

    r: float = 2.0
    alpha: float = 80.0
    a: float = 3.0
    b: float = 12.0


def true_active_months(behaviour: Behaviour, churn_inactivity_days: int) -> float:
    """Expected months a customer is active (last purchase at most ``churn_inactivity_days``
    before the day) over their whole life: E[active days] / the mean month length.

    A purchase keeps the customer active for c = churn_inactivity_days + 1 days (the day itself
    and the c - 1 after); consecutive purchases overlap. With J repeat purchases (J >= 1,
    geometric in p: E[J | p] = 1 / p) and gaps G ~ Exp(lambda), active days = c + sum of
    min(G_i, c), so E = c + E[1 / p] E[(1 - exp(-c lambda)) / lambda], with
    E[1 / p] = (a + b - 1) / (a - 1) and
    E[(1 - exp(-c lambda)) / lambda] = integral_0^c (alpha / (alpha + s))^r ds.
    """
    c = churn_inactivity_days + 1
    r, alpha, a, b = behaviour.r, behaviour.alpha, behaviour.a, behaviour.b
    if a <= 1:
        raise ValueError("E[1/p] is infinite for a <= 1")
    mean_repeats = (a + b - 1) / (a - 1)
    if r == 1:
        covered = alpha * np.log((alpha + c) / alpha)
    else:
        covered = alpha**r * ((alpha + c) ** (1 - r) - alpha ** (1 - r)) / (1 - r)
    return (c + mean_repeats * covered) / MEAN_MONTH_DAYS


def simulate_purchase_days(
    behaviour: Behaviour, first_days: np.ndarray, horizon_days: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Purchase times (days, fractional) per customer, from ``first_days`` to the horizon."""
    n = len(first_days)
    rates = rng.gamma(behaviour.r, 1 / behaviour.alpha, n)
    dropout = rng.beta(behaviour.a, behaviour.b, n)
    out = []
    for start, rate, p in zip(first_days, rates, dropout, strict=True):
        times = [start]
        t = start
        while True:
            t += rng.exponential(1 / rate)
            if t > horizon_days:
                break
            times.append(t)
            if rng.random() < p:
                break
        out.append(np.array(times))
    return out


def simulated_active_months(
    behaviour: Behaviour, churn_inactivity_days: int, customers: int, seed: int
) -> float:
    """Brute force of :func:`true_active_months`: whole lives on a day grid, averaged."""
    rng = np.random.default_rng(seed)
    lives = simulate_purchase_days(behaviour, np.zeros(customers), np.inf, rng)
    c = churn_inactivity_days + 1
    total = 0
    for times in lives:
        days = np.unique(np.floor(times))
        total += c + np.minimum(np.diff(days), c).sum()
    return total / customers / MEAN_MONTH_DAYS


def write_shop(
    out: Path,
    *,
    customers: int,
    acquisition: str,
    start: dt.date,
    months: int,
    seed: int,
    behaviour: Behaviour = Behaviour(),
    date_format: str = "iso",
) -> dt.date:
    """Write customers.csv, orders.csv and marketing_spend.csv; return the last day.

    ``acquisition`` is ``steady`` (first purchases uniform over the history) or ``bursty``
    (all in its first 90 days). ``date_format`` ``iso`` or ``yyyymmdd`` for the order dates.
    Order values are gamma-distributed (mean 50), cost 60% of the amount; two channels split
    customers at random, with spend on one of them only.
    """
    rng = np.random.default_rng(seed)
    end = _add_months(start, months) - dt.timedelta(days=1)
    horizon = (end - start).days + 1
    window = 90 if acquisition == "bursty" else horizon
    if acquisition not in {"bursty", "steady"}:
        raise ValueError(acquisition)
    first = rng.uniform(0, window, customers)
    lives = simulate_purchase_days(behaviour, first, horizon, rng)
    out.mkdir(parents=True, exist_ok=True)
    channels = rng.choice(["paid_search", "organic_search"], customers, p=[0.6, 0.4])
    epoch = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    with open(out / "customers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "email", "signup_date", "acquisition_channel", "country"])
        for i in range(customers):
            signup = (epoch + dt.timedelta(days=float(first[i]))).date()
            w.writerow([i + 1, f"c{i + 1}@example.com", signup.isoformat(), channels[i], "US"])
    order_id = 0
    with open(out / "orders.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["order_id", "customer_id", "ordered_at", "status", "amount", "cost", "currency"]
        )
        for i, times in enumerate(lives):
            for t in times:
                order_id += 1
                at = epoch + dt.timedelta(days=float(t))
                stamp = at.strftime("%Y%m%d") if date_format == "yyyymmdd" else at.isoformat()
                amount = round(float(rng.gamma(4.0, 12.5)) + 1, 2)
                w.writerow(
                    [order_id, i + 1, stamp, "completed", amount, round(amount * 0.6, 2), "USD"]
                )
    with open(out / "marketing_spend.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "channel", "spend"])
        for day in range(horizon):
            w.writerow([(start + dt.timedelta(days=day)).isoformat(), "paid_search", "40.00"])
    return end


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)
