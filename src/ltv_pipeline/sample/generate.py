"""Seeded synthetic e-commerce shop whose generative truth is known exactly.

Why this exists
---------------
An LTV pipeline is hard to test against real data because nobody knows the right answer. This
module writes a shop (``customers``, ``orders``, ``marketing_spend``) from a documented
stochastic process and stores the true parameters in ``truth.json``, so fitted BG/NBD and
Gamma-Gamma models, margins and CAC can be checked against the values that produced the data.
Optional injected bad rows (``bad_share``) exercise the loader's quarantine without touching
any clean row, so the truth stays exact with and without them.

The generative process (what a likelihood test can rely on)
------------------------------------------------------------
Time origin is ``start_date`` 00:00:00 UTC; the window ends (exclusive) at ``end_date + 1 day``
00:00:00 UTC. BG/NBD time is measured in WEEKS (604,800 s). Each customer ``i`` (ids ``1..N``):

1. Signup day: ``u_i = (i - 1 + U_i) / N`` with ``U_i ~ Uniform(0, 1)``, pushed through the
   inverse CDF of the density ``f(x) ~ 1 + g x`` on ``[0, 1)`` (``g = SIGNUP_GROWTH``; mild
   growth) and mapped to a day of the window. The stratification makes signup dates
   non-decreasing in customer id, like an auto-increment key.
2. Acquisition channel ~ Categorical(channel shares), country ~ Categorical(country weights).
3. Buyer ~ Bernoulli(channel conversion). Non-buyers have a customer row and no orders.
4. A buyer's first order is on the signup day at a uniform whole second ``t0``; it is completed.
   ``T = (window_end - t0) / 1 week`` is exact because ``t0`` is a whole second.
5. Completed repeat orders follow BG/NBD (Fader, Hardie & Lee 2005) with the channel's
   ``(r, alpha, a, b)``: ``lambda ~ Gamma(shape=r, rate=alpha)`` per week,
   ``p ~ Beta(a, b)``; repeat purchases form a Poisson(lambda) process on ``(t0, window_end)``
   and after every REPEAT purchase the customer drops out with probability ``p``. Vectorised:
   ``n ~ Poisson(lambda T)``, ``J ~ Geometric(p)`` (support 1, 2, ...), and the repeat times
   are the first ``k = min(n, J)`` order statistics of ``n`` uniforms on ``[0, T)``. Those are
   drawn exactly through exponential spacings (``E_1..E_k`` and a ``Gamma(n - k + 1)``
   remainder) so no customer ever materialises more than ``k`` times. Times are floored to
   whole seconds (a 1.7e-6 week resolution, negligible for any likelihood).
   So for buyer ``i``: ``x = completed orders - 1``, ``t_x`` = last completed order minus
   ``t0`` (weeks, 0 when ``x = 0``), and ``T`` as above are the BG/NBD sufficient statistics.
6. Order values (Gamma-Gamma, Fader/Hardie parametrisation): ``nu ~ Gamma(shape=q, rate=v)``
   per buyer; every order value ``z ~ Gamma(shape=p, rate=nu)``, written in cents rounded to
   nearest (at least 0.01). The mean spend per order is ``p v / (q - 1)``.
7. Refunded and cancelled orders are EXTRA rows, not part of BG/NBD: per buyer
   ``Binomial(completed count, REFUND_SHARE)`` refunds and ``Binomial(completed count,
   CANCEL_SHARE)`` cancellations at uniform whole seconds in ``[t0, window_end)``, with values
   from the same buyer's Gamma(p, nu). Use ``status = 'completed'`` rows for model checks.
8. Margin: per buyer ``m ~ Beta(margin_a, margin_b)``; ``cost = round(amount * (1 - m))``
   in cents. Each order (any status) has its cost blanked with probability
   ``MISSING_COST_SHARE``.
9. Marketing spend, for each paid channel (``cac > 0``) and every day of the window:
   ``base_daily_spend + cac * buyers acquired that day in that channel * exp(s e - s^2/2)``,
   ``e ~ N(0, 1)``, ``s = SPEND_NOISE_SIGMA``; the noise has mean 1, so the expected spend per
   acquired buyer beyond the base is exactly ``cac``. ``organic_search`` and ``referral`` are
   unpaid and have no spend rows.

Orders are written per customer in time order (customer ids ascending); ``order_id`` is the
1-based row number of the clean order in that file order.

Bad rows (CSV only, ``bad_share > 0``)
--------------------------------------
Per file, about ``bad_share`` times its clean row count of extra lines is inserted at seeded
random positions, cycling through ``BAD_ROW_REASONS[table]`` so every reason occurs at least
once. Clean lines are never altered, moved relative to each other or removed, and
``truth.json`` is identical with and without bad rows. Every bad line is a real clean line with
exactly one defect: a fresh key (order ids above the largest clean id, customer ids above
``N`` that no order references, spend dates before the window) so it collides with nothing,
except ``exact_duplicate`` (a verbatim copy right after its original; 1 row) and
``conflicting_duplicate`` (a fresh key written twice with different amount/email/spend;
2 rows). ``unknown_customer_id`` uses ids no customer line uses. ``bad_rows.json`` holds the
rows per table and reason a strict loader quarantines.

Determinism and streaming
-------------------------
Customers are simulated in fixed blocks of ``RNG_BLOCK_CUSTOMERS``; block ``b`` draws from
``default_rng(SeedSequence(seed, spawn_key=(0, b)))``. The data therefore depends only on the
seed, the number of customers and the window: ``chunk_customers`` only controls how many blocks
are held in memory and written together (one Parquet row group per chunk), so a benchmark can
trade memory for row-group size without changing a single value. CSV and Parquet hold the same
values.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ltv_pipeline import clv
from ltv_pipeline.ingest.files import COMPANION_FILES

__all__ = [
    "BAD_ROW_REASONS",
    "CHANNELS",
    "COMPANION_FILES",
    "COUNTRIES",
    "BGNBDParams",
    "Channel",
    "CustomerSimulation",
    "GammaGammaParams",
    "ShopSummary",
    "expected_orders_per_customer",
    "expected_repeat_purchases",
    "generate_shop",
    "simulate_customers",
]

SECONDS_PER_DAY = 86_400
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
RNG_BLOCK_CUSTOMERS = 10_000
DEFAULT_CUSTOMERS = 5_000

SIGNUP_GROWTH = 0.5
REFUND_SHARE = 0.04
CANCEL_SHARE = 0.03
MISSING_COST_SHARE = 0.01
SPEND_NOISE_SIGMA = 0.15
CURRENCY = "USD"
STATUSES = ("completed", "refunded", "cancelled")

# Independent random streams: spawn_key[0] says what the stream is for, so adding a stream
# never shifts the draws of an existing one.
_STREAM_CUSTOMERS = 0
_STREAM_SPEND = 1
_STREAM_BAD_ROWS = 2


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD purchase-process parameters, time unit = week.

    Kept as a named record so ``truth.json`` and a fitted model can be compared field by field.
    """

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma spend parameters (Fader/Hardie): ``z ~ Gamma(p, nu)``, ``nu ~ Gamma(q, v)``."""

    p: float
    q: float
    v: float

    @property
    def mean_spend(self) -> float:
        """Population mean order value ``p v / (q - 1)``; what a fitted model should recover."""
        return self.p * self.v / (self.q - 1.0)


@dataclass(frozen=True)
class Channel:
    """One acquisition channel; channels differ so per-channel LTV/CAC has something to find.

    ``cac`` is the expected marketing spend per acquired BUYER (0 = unpaid channel) and
    ``base_daily_spend`` the always-on spend that is not tied to acquisitions.
    """

    name: str
    share: float
    conversion: float
    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams
    margin_a: float
    margin_b: float
    cac: float
    base_daily_spend: float

    @property
    def paid(self) -> bool:
        """Whether the channel has marketing_spend rows."""
        return self.cac > 0.0

    @property
    def mean_margin(self) -> float:
        """Mean of the per-customer Beta margin rate."""
        return self.margin_a / (self.margin_a + self.margin_b)


# Shape of the shop. paid_social is cheap but churny and low-value, email is loyal, affiliate is
# expensive with high order values, referral/organic are free. All q > 2 so spend has a variance
# and all a > 1 so E[X(t)] has its closed form.
CHANNELS: tuple[Channel, ...] = (
    Channel(
        "organic_search",
        0.30,
        0.70,
        BGNBDParams(0.80, 10.0, 1.6, 6.0),
        GammaGammaParams(6.0, 4.0, 40.0),
        40.0,
        60.0,
        0.0,
        0.0,
    ),
    Channel(
        "paid_search",
        0.22,
        0.72,
        BGNBDParams(0.70, 9.0, 2.0, 5.5),
        GammaGammaParams(5.0, 5.0, 76.0),
        38.0,
        62.0,
        45.0,
        120.0,
    ),
    Channel(
        "paid_social",
        0.18,
        0.60,
        BGNBDParams(0.50, 8.0, 3.0, 2.5),
        GammaGammaParams(4.0, 5.0, 42.5),
        35.0,
        65.0,
        18.0,
        80.0,
    ),
    Channel(
        "email",
        0.12,
        0.88,
        BGNBDParams(1.40, 11.0, 1.4, 10.0),
        GammaGammaParams(6.0, 5.0, 40.0),
        48.0,
        52.0,
        6.0,
        15.0,
    ),
    Channel(
        "referral",
        0.10,
        0.82,
        BGNBDParams(1.00, 10.0, 1.5, 7.0),
        GammaGammaParams(7.0, 6.0, 62.5),
        45.0,
        55.0,
        0.0,
        0.0,
    ),
    Channel(
        "affiliate",
        0.08,
        0.65,
        BGNBDParams(0.60, 7.5, 2.2, 4.0),
        GammaGammaParams(5.0, 4.5, 98.0),
        36.0,
        64.0,
        85.0,
        60.0,
    ),
)

COUNTRIES: tuple[tuple[str, float], ...] = (
    ("US", 0.36),
    ("GB", 0.13),
    ("DE", 0.12),
    ("FR", 0.09),
    ("CA", 0.09),
    ("AU", 0.08),
    ("NL", 0.07),
    ("SE", 0.06),
)

BAD_ROW_REASONS: dict[str, tuple[str, ...]] = {
    "orders": (
        "missing_order_id",
        "invalid_order_id",
        "missing_customer_id",
        "invalid_customer_id",
        "unknown_customer_id",
        "unparseable_ordered_at",
        "future_ordered_at",
        "unknown_status",
        "missing_amount",
        "non_numeric_amount",
        "negative_amount",
        "non_numeric_cost",
        "negative_cost",
        "unknown_currency",
        "exact_duplicate",
        "conflicting_duplicate",
        "malformed_line",
    ),
    "customers": (
        "missing_customer_id",
        "invalid_customer_id",
        "unparseable_signup_date",
        "missing_acquisition_channel",
        "invalid_email",
        "invalid_country",
        "exact_duplicate",
        "conflicting_duplicate",
        "malformed_line",
    ),
    "marketing_spend": (
        "unparseable_date",
        "missing_channel",
        "missing_spend",
        "non_numeric_spend",
        "negative_spend",
        "exact_duplicate",
        "conflicting_duplicate",
        "malformed_line",
    ),
}

_COLUMNS = {
    "customers": ("customer_id", "email", "signup_date", "acquisition_channel", "country"),
    "orders": ("order_id", "customer_id", "ordered_at", "status", "amount", "cost", "currency"),
    "marketing_spend": ("date", "channel", "spend"),
}

_SCHEMAS = {
    "customers": pa.schema(
        [
            ("customer_id", pa.int64()),
            ("email", pa.string()),
            ("signup_date", pa.date32()),
            ("acquisition_channel", pa.string()),
            ("country", pa.string()),
        ]
    ),
    "orders": pa.schema(
        [
            ("order_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("ordered_at", pa.timestamp("us", tz="UTC")),
            ("status", pa.string()),
            ("amount", pa.float64()),
            ("cost", pa.float64()),
            ("currency", pa.string()),
        ]
    ),
    "marketing_spend": pa.schema(
        [
            ("date", pa.date32()),
            ("channel", pa.string()),
            ("spend", pa.float64()),
        ]
    ),
}

# Dictionary-encode only the low-cardinality strings: trying it on ids and amounts costs time
# and the writer falls back to plain encoding anyway.
_PARQUET_DICTIONARY = {
    "customers": ["acquisition_channel", "country"],
    "orders": ["status", "currency"],
    "marketing_spend": ["channel"],
}


@dataclass(frozen=True)
class ShopSummary:
    """What was written, for logs and assertions.

    ``customers`` counts clean customers (ids ``1..customers``); ``orders`` counts every row of
    the orders file including injected bad rows; ``orders_by_status`` counts clean orders only.
    """

    out_dir: Path
    files: dict[str, Path]
    customers: int
    orders: int
    orders_by_status: dict[str, int]
    bad_rows: dict[str, dict[str, int]]
    seconds: float


@dataclass(frozen=True)
class CustomerSimulation:
    """In-memory output of the exact code path ``generate_shop`` writes, for model checks.

    Customer arrays have one entry per customer; ``t0_seconds``, ``t_weeks`` and
    ``repeat_purchases`` are -1 / nan / -1 for non-buyers. Order arrays are in file order.
    Times are seconds since the window start.
    """

    channels: tuple[Channel, ...]
    customer_id: np.ndarray
    channel: np.ndarray
    signup_day: np.ndarray
    buyer: np.ndarray
    t0_seconds: np.ndarray
    t_weeks: np.ndarray
    repeat_purchases: np.ndarray
    order_customer_id: np.ndarray
    order_seconds: np.ndarray
    order_status: np.ndarray
    order_amount_cents: np.ndarray
    order_cost_cents: np.ndarray
    order_cost_missing: np.ndarray


# --------------------------------------------------------------------------------------------
# Expectations (used to size the shop from an order target and by tests)
# --------------------------------------------------------------------------------------------


def expected_repeat_purchases(t: np.ndarray | float, params: BGNBDParams) -> np.ndarray:
    """BG/NBD ``E[X(t)]``: expected repeat purchases within ``t`` weeks of the first purchase.

    The closed form of Fader, Hardie & Lee (2005, eq. 9), as the models compute it
    (:func:`ltv_pipeline.clv.expected_purchases_new`): needed both to size a shop for an order
    target and to check that the simulation matches the model it claims to follow.
    """
    fit = clv.BGNBDFit(
        r=params.r,
        alpha=params.alpha,
        a=params.a,
        b=params.b,
        log_likelihood=math.nan,
        n_customers=0.0,
        iterations=0,
        converged=True,
    )
    t_arr = np.asarray(t, dtype=np.float64)
    return clv.expected_purchases_new(fit, t_arr.reshape(-1)).reshape(t_arr.shape)


def _signup_day_probabilities(n_days: int) -> np.ndarray:
    edges = np.arange(n_days + 1, dtype=np.float64) / n_days
    cdf = (edges + SIGNUP_GROWTH * edges**2 / 2.0) / (1.0 + SIGNUP_GROWTH / 2.0)
    return np.diff(cdf)


def expected_orders_per_customer(
    channels: Sequence[Channel] = CHANNELS,
    *,
    start_date: date = date(2024, 7, 1),
    end_date: date = date(2026, 6, 30),
) -> float:
    """Expected clean orders (all statuses) per customer, averaged over signup day and channel.

    Lets ``generate_shop(orders=N)`` pick the customer count analytically, so the target needs
    no pilot run and does not depend on the seed.
    """
    n_days = (end_date - start_date).days + 1
    day_prob = _signup_day_probabilities(n_days)
    # First purchase at a uniform second of the signup day: average T over the day with
    # 2-point Gauss-Legendre (E[X(t)] is smooth in t, so that is exact to ~1e-9).
    offsets = np.array([0.5 - 0.5 / 3**0.5, 0.5 + 0.5 / 3**0.5])
    t_weeks = (n_days - np.arange(n_days)[:, None] - offsets[None, :]) / 7.0
    shares = np.array([c.share for c in channels], dtype=np.float64)
    shares = shares / shares.sum()
    total = 0.0
    for share, channel in zip(shares, channels, strict=True):
        repeats = expected_repeat_purchases(t_weeks, channel.bgnbd).mean(axis=1)
        completed = 1.0 + float(day_prob @ repeats)
        total += share * channel.conversion * completed * (1.0 + REFUND_SHARE + CANCEL_SHARE)
    return total


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """Everything a block needs, precomputed once so blocks stay cheap."""

    seed: int
    n_customers: int
    start_date: date
    n_days: int
    channels: tuple[Channel, ...]
    share_cdf: np.ndarray
    country_cdf: np.ndarray
    conversion: np.ndarray
    r: np.ndarray
    alpha: np.ndarray
    a: np.ndarray
    b: np.ndarray
    p: np.ndarray
    q: np.ndarray
    v: np.ndarray
    margin_a: np.ndarray
    margin_b: np.ndarray

    @property
    def window_seconds(self) -> int:
        return self.n_days * SECONDS_PER_DAY

    @property
    def n_blocks(self) -> int:
        return -(-self.n_customers // RNG_BLOCK_CUSTOMERS)


def _make_context(
    seed: int, n_customers: int, start_date: date, end_date: date, channels: Sequence[Channel]
) -> _Context:
    channels = tuple(channels)
    shares = np.array([c.share for c in channels], dtype=np.float64)
    share_cdf = np.cumsum(shares / shares.sum())
    share_cdf[-1] = 1.0
    weights = np.array([w for _, w in COUNTRIES], dtype=np.float64)
    country_cdf = np.cumsum(weights / weights.sum())
    country_cdf[-1] = 1.0

    def arr(values: Iterator[float]) -> np.ndarray:
        return np.fromiter(values, dtype=np.float64)

    return _Context(
        seed=seed,
        n_customers=n_customers,
        start_date=start_date,
        n_days=(end_date - start_date).days + 1,
        channels=channels,
        share_cdf=share_cdf,
        country_cdf=country_cdf,
        conversion=arr(c.conversion for c in channels),
        r=arr(c.bgnbd.r for c in channels),
        alpha=arr(c.bgnbd.alpha for c in channels),
        a=arr(c.bgnbd.a for c in channels),
        b=arr(c.bgnbd.b for c in channels),
        p=arr(c.gamma_gamma.p for c in channels),
        q=arr(c.gamma_gamma.q for c in channels),
        v=arr(c.gamma_gamma.v for c in channels),
        margin_a=arr(c.margin_a for c in channels),
        margin_b=arr(c.margin_b for c in channels),
    )


@dataclass
class _Counts:
    """Stage 1 of a block: who buys and how many orders, without any order detail.

    Split out so the bad-row planner can learn the exact clean order count (fresh bad order ids
    must exceed every clean id) by replaying only this cheap stage.
    """

    first_id: int
    signup_day: np.ndarray
    channel: np.ndarray
    country: np.ndarray
    buyer_idx: np.ndarray
    t0: np.ndarray
    n_poisson: np.ndarray
    repeats: np.ndarray
    refunds: np.ndarray
    cancels: np.ndarray

    @property
    def n_orders(self) -> int:
        return int(
            self.buyer_idx.size + self.repeats.sum() + self.refunds.sum() + self.cancels.sum()
        )


@dataclass
class _Block:
    """Stage 2 of a block: its clean orders in file order (customer, then time)."""

    counts: _Counts
    order_customer: np.ndarray
    order_seconds: np.ndarray
    order_status: np.ndarray
    order_amount: np.ndarray
    order_cost: np.ndarray
    order_cost_missing: np.ndarray


def _block_rng(ctx: _Context, block: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence(ctx.seed, spawn_key=(_STREAM_CUSTOMERS, block))
    )


def _signup_quantile(u: np.ndarray) -> np.ndarray:
    g = SIGNUP_GROWTH
    return (np.sqrt(1.0 + 2.0 * g * u * (1.0 + g / 2.0)) - 1.0) / g


def _stage_counts(ctx: _Context, block: int, rng: np.random.Generator) -> _Counts:
    first = block * RNG_BLOCK_CUSTOMERS
    n = min(RNG_BLOCK_CUSTOMERS, ctx.n_customers - first)
    u = (np.arange(first, first + n, dtype=np.float64) + rng.random(n)) / ctx.n_customers
    day = np.minimum((_signup_quantile(u) * ctx.n_days).astype(np.int64), ctx.n_days - 1)
    channel = np.minimum(
        np.searchsorted(ctx.share_cdf, rng.random(n), side="right"), len(ctx.channels) - 1
    ).astype(np.int8)
    country = np.minimum(
        np.searchsorted(ctx.country_cdf, rng.random(n), side="right"), len(COUNTRIES) - 1
    ).astype(np.int8)
    buyer_idx = np.flatnonzero(rng.random(n) < ctx.conversion[channel])
    ch = channel[buyer_idx]
    nb = buyer_idx.size
    t0 = day[buyer_idx] * SECONDS_PER_DAY + rng.integers(0, SECONDS_PER_DAY, nb)
    t_weeks = (ctx.window_seconds - t0) / SECONDS_PER_WEEK
    lam = rng.standard_gamma(ctx.r[ch]) / ctx.alpha[ch]
    pdrop = np.maximum(rng.beta(ctx.a[ch], ctx.b[ch]), 1e-12)
    n_poisson = rng.poisson(lam * t_weeks)
    dropout_after = rng.geometric(pdrop)
    repeats = np.minimum(n_poisson, dropout_after)
    refunds = rng.binomial(repeats + 1, REFUND_SHARE)
    cancels = rng.binomial(repeats + 1, CANCEL_SHARE)
    return _Counts(
        first + 1, day, channel, country, buyer_idx, t0, n_poisson, repeats, refunds, cancels
    )


def _stage_orders(ctx: _Context, counts: _Counts, rng: np.random.Generator) -> _Block:
    nb = counts.buyer_idx.size
    ch = counts.channel[counts.buyer_idx]
    t0 = counts.t0
    span = ctx.window_seconds - t0
    k = counts.repeats
    buyers = np.arange(nb)

    # First k order statistics of n uniforms via exponential spacings: U_(j) = S_j / S_(n+1).
    n_rep = int(k.sum())
    cum = np.concatenate(([0.0], np.cumsum(rng.standard_exponential(n_rep))))
    end = np.cumsum(k)
    start = end - k
    rep_buyer = np.repeat(buyers, k)
    spacing_sum = cum[end] - cum[start]
    remainder = rng.standard_gamma(counts.n_poisson - k + 1.0)
    frac = (cum[1:] - np.repeat(cum[start], k)) / np.repeat(spacing_sum + remainder, k)
    rep_seconds = t0[rep_buyer] + np.floor(frac * span[rep_buyer]).astype(np.int64)

    nu = rng.standard_gamma(ctx.q[ch]) / ctx.v[ch]
    margin = rng.beta(ctx.margin_a[ch], ctx.margin_b[ch])

    extra_buyer = np.concatenate(
        (np.repeat(buyers, counts.refunds), np.repeat(buyers, counts.cancels))
    )
    extra_seconds = t0[extra_buyer] + np.floor(
        rng.random(extra_buyer.size) * span[extra_buyer]
    ).astype(np.int64)

    order_buyer = np.concatenate((buyers, rep_buyer, extra_buyer))
    seconds = np.concatenate((t0, rep_seconds, extra_seconds))
    status = np.concatenate(
        (
            np.zeros(nb + n_rep, np.int8),
            np.ones(int(counts.refunds.sum()), np.int8),
            np.full(int(counts.cancels.sum()), 2, np.int8),
        )
    )
    value = rng.standard_gamma(ctx.p[ch][order_buyer]) / nu[order_buyer]
    amount = np.maximum(np.rint(value * 100.0), 1.0).astype(np.int64)
    cost = np.rint(amount * (1.0 - margin[order_buyer])).astype(np.int64)
    cost_missing = rng.random(order_buyer.size) < MISSING_COST_SHARE

    order = np.argsort(order_buyer * (ctx.window_seconds + 1) + seconds, kind="stable")
    return _Block(
        counts=counts,
        order_customer=counts.first_id + counts.buyer_idx[order_buyer[order]],
        order_seconds=seconds[order],
        order_status=status[order],
        order_amount=amount[order],
        order_cost=cost[order],
        order_cost_missing=cost_missing[order],
    )


def _simulate_block(ctx: _Context, block: int) -> _Block:
    rng = _block_rng(ctx, block)
    return _stage_orders(ctx, _stage_counts(ctx, block, rng), rng)


def simulate_customers(
    n_customers: int,
    *,
    seed: int = 42,
    channels: Sequence[Channel] = CHANNELS,
    start_date: date = date(2024, 7, 1),
    end_date: date = date(2026, 6, 30),
) -> CustomerSimulation:
    """Run the shop's simulation in memory, optionally for a custom channel list.

    Exists so model checks can draw a large sample of ONE channel (pass a single channel) from
    exactly the code that ``generate_shop`` writes, without parsing files. With the default
    channels, the same seed and the same window it reproduces ``generate_shop`` row for row.
    """
    _check_size("n_customers", n_customers)
    if end_date <= start_date:
        raise ValueError(f"end_date {end_date} must be after start_date {start_date}")
    ctx = _make_context(seed, n_customers, start_date, end_date, channels)
    blocks = [_simulate_block(ctx, b) for b in range(ctx.n_blocks)]

    def cat(get: Callable[[_Block], np.ndarray]) -> np.ndarray:
        return np.concatenate([get(blk) for blk in blocks])

    buyer = np.zeros(n_customers, bool)
    t0 = np.full(n_customers, -1, np.int64)
    repeats = np.full(n_customers, -1, np.int64)
    for blk in blocks:
        ids = blk.counts.first_id - 1 + blk.counts.buyer_idx
        buyer[ids] = True
        t0[ids] = blk.counts.t0
        repeats[ids] = blk.counts.repeats
    t_weeks = np.where(buyer, (ctx.window_seconds - t0) / SECONDS_PER_WEEK, np.nan)
    return CustomerSimulation(
        channels=ctx.channels,
        customer_id=np.arange(1, n_customers + 1, dtype=np.int64),
        channel=cat(lambda blk: blk.counts.channel),
        signup_day=cat(lambda blk: blk.counts.signup_day),
        buyer=buyer,
        t0_seconds=t0,
        t_weeks=t_weeks,
        repeat_purchases=repeats,
        order_customer_id=cat(lambda blk: blk.order_customer),
        order_seconds=cat(lambda blk: blk.order_seconds),
        order_status=cat(lambda blk: blk.order_status),
        order_amount_cents=cat(lambda blk: blk.order_amount),
        order_cost_cents=cat(lambda blk: blk.order_cost),
        order_cost_missing=cat(lambda blk: blk.order_cost_missing),
    )


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


class _Formatter:
    """Turns block arrays into Arrow tables; lookup tables avoid slow per-row strftime."""

    def __init__(self, ctx: _Context, fmt: Literal["csv", "parquet"]) -> None:
        self.ctx = ctx
        self.fmt = fmt
        self.epoch_day = (ctx.start_date - date(1970, 1, 1)).days
        self.channel_names = pa.array([c.name for c in ctx.channels], pa.string())
        self.country_codes = pa.array([c for c, _ in COUNTRIES], pa.string())
        self.statuses = pa.array(STATUSES, pa.string())
        self.currency = pa.array([CURRENCY], pa.string())
        if fmt == "csv":
            self.day_prefix = pa.array(
                [(ctx.start_date + timedelta(days=d)).isoformat() + "T" for d in range(ctx.n_days)],
                pa.string(),
            )
            s = np.arange(SECONDS_PER_DAY)
            self.time_suffix = pa.array(
                [
                    f"{h:02d}:{m:02d}:{x:02d}Z"
                    for h, m, x in zip(
                        (s // 3600).tolist(),
                        (s // 60 % 60).tolist(),
                        (s % 60).tolist(),
                        strict=True,
                    )
                ],
                pa.string(),
            )

    def customers(self, counts: Sequence[_Counts]) -> pa.Table:
        first = counts[0].first_id
        n = sum(c.signup_day.size for c in counts)
        ids = np.arange(first, first + n, dtype=np.int64)
        ids_arrow = pa.array(ids)
        email = pc.binary_join_element_wise(
            "customer", ids_arrow.cast(pa.string()), "@example.com", ""
        )
        day = np.concatenate([c.signup_day for c in counts]).astype(np.int32) + self.epoch_day
        return pa.table(
            [
                ids_arrow,
                email,
                pa.array(day, pa.date32()),
                self.channel_names.take(pa.array(np.concatenate([c.channel for c in counts]))),
                self.country_codes.take(pa.array(np.concatenate([c.country for c in counts]))),
            ],
            schema=_SCHEMAS["customers"],
        )

    def orders(self, blocks: Sequence[_Block], first_order_id: int) -> pa.Table:
        def cat(get: Callable[[_Block], np.ndarray]) -> np.ndarray:
            return np.concatenate([get(blk) for blk in blocks])

        seconds = cat(lambda blk: blk.order_seconds)
        n = seconds.size
        amount = cat(lambda blk: blk.order_amount)
        cost = cat(lambda blk: blk.order_cost)
        missing = cat(lambda blk: blk.order_cost_missing)
        columns: list[pa.Array] = [
            pa.array(np.arange(first_order_id, first_order_id + n, dtype=np.int64)),
            pa.array(cat(lambda blk: blk.order_customer)),
        ]
        if self.fmt == "csv":
            ordered_at = pc.binary_join_element_wise(
                self.day_prefix.take(pa.array(seconds // SECONDS_PER_DAY)),
                self.time_suffix.take(pa.array(seconds % SECONDS_PER_DAY)),
                "",
            )
            amount_col = _cents_to_text(amount)
            cost_col = _cents_to_text(cost, missing)
            types = [
                pa.int64(),
                pa.int64(),
                pa.string(),
                pa.string(),
                pa.string(),
                pa.string(),
                pa.string(),
            ]
        else:
            micros = (seconds + self.epoch_day * SECONDS_PER_DAY) * 1_000_000
            ordered_at = pa.array(micros, pa.timestamp("us", tz="UTC"))
            amount_col = pa.array(amount / 100.0)
            cost_col = pa.array(cost / 100.0, mask=missing)
            types = [f.type for f in _SCHEMAS["orders"]]
        columns += [
            ordered_at,
            self.statuses.take(pa.array(cat(lambda blk: blk.order_status))),
            amount_col,
            cost_col,
            self.currency.take(pa.array(np.zeros(n, np.int8))),
        ]
        schema = pa.schema(list(zip(_COLUMNS["orders"], types, strict=True)))
        return pa.table(columns, schema=schema)


def _cents_to_text(cents: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Exactly two decimals (``12.30``, not ``12.3``) without float formatting surprises."""
    units = pa.array(cents // 100, mask=missing).cast(pa.string())
    hundredths = pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(units, hundredths, ".")


def _csv_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue()


def _fmt_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _parse_cents(text: str) -> int:
    units, _, hundredths = text.partition(".")
    return int(units) * 100 + int(hundredths or 0)


# --------------------------------------------------------------------------------------------
# Bad rows
# --------------------------------------------------------------------------------------------


@dataclass
class _BadPlan:
    """Where bad rows go in one file: sorted clean-row positions and round-robin reasons.

    A bad row planned at position ``pos`` is written just before clean row ``pos`` (0-based),
    so positions are known before any data exists and streaming stays possible.
    """

    table: str
    positions: np.ndarray
    reasons: np.ndarray
    cursor: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def take(self, lo: int, hi: int) -> list[tuple[int, str]]:
        """Planned rows with ``lo <= pos < hi``; called with increasing, adjacent ranges."""
        end = int(np.searchsorted(self.positions, hi, side="left"))
        names = BAD_ROW_REASONS[self.table]
        out = [
            (int(self.positions[i]) - lo, names[int(self.reasons[i])])
            for i in range(self.cursor, end)
        ]
        self.cursor = end
        return out


def _plan_bad_rows(seed: int, table: str, clean_rows: int, bad_share: float) -> _BadPlan:
    kinds = len(BAD_ROW_REASONS[table])
    # conflicting_duplicate writes two rows, so K injections make K + 1 rows.
    target_rows = bad_share * clean_rows
    n_inject = max(kinds, round(target_rows * kinds / (kinds + 1)))
    rng = np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(_STREAM_BAD_ROWS, list(_COLUMNS).index(table)))
    )
    positions = rng.integers(0, clean_rows, size=n_inject)
    reasons = np.arange(n_inject) % kinds
    order = np.argsort(positions, kind="stable")
    return _BadPlan(table, positions[order], reasons[order])


class _BadRowWriter:
    """Builds bad lines from real clean lines so each differs from a valid row in ONE way."""

    _BAD_TIMESTAMPS = ("2025-13-45T00:00:00Z", "yesterday", "2025-02-30T10:00:00Z")
    _BAD_DATES = ("2025-02-30", "31/12/2025", "yesterday", "2025-13-01")
    _BAD_NUMBERS = ("12.5.0", "abc")

    def __init__(
        self, n_customers: int, clean_orders: int, start_date: date, customer_plan: _BadPlan | None
    ) -> None:
        self.next_customer_id = n_customers + 1
        self.next_order_id = clean_orders + 1
        reserved = 0 if customer_plan is None else customer_plan.positions.size
        # Ids no customer row (clean or bad) ever uses: bad customers take N+1 .. N+reserved.
        self.next_unknown_customer = n_customers + reserved + 1_000
        self.next_spend_day = start_date - timedelta(days=1)
        self.variant = 0

    def _pick(self, options: Sequence[str]) -> str:
        self.variant += 1
        return options[self.variant % len(options)]

    def _order_id(self) -> str:
        self.next_order_id += 1
        return str(self.next_order_id - 1)

    def _customer_id(self) -> int:
        self.next_customer_id += 1
        return self.next_customer_id - 1

    def lines(self, table: str, reason: str, template: bytes) -> list[bytes]:
        fields = template.decode().split(",")
        if reason == "exact_duplicate":
            return [template]
        rows = getattr(self, f"_{table}")(reason, fields)
        return [",".join(row).encode() for row in rows]

    def _orders(self, reason: str, f: list[str]) -> list[list[str]]:
        f = list(f)
        f[0] = self._order_id()
        if reason == "missing_order_id":
            f[0] = ""
        elif reason == "invalid_order_id":
            f[0] = "A" + f[0]
        elif reason == "missing_customer_id":
            f[1] = ""
        elif reason == "invalid_customer_id":
            f[1] = "x" + f[1]
        elif reason == "unknown_customer_id":
            f[1] = str(self.next_unknown_customer)
            self.next_unknown_customer += 1
        elif reason == "unparseable_ordered_at":
            f[2] = self._pick(self._BAD_TIMESTAMPS)
        elif reason == "future_ordered_at":
            month_day = "02-28" if f[2][5:10] == "02-29" else f[2][5:10]
            f[2] = "2099-" + month_day + f[2][10:]
        elif reason == "unknown_status":
            f[3] = "shipped"
        elif reason == "missing_amount":
            f[4] = ""
        elif reason == "non_numeric_amount":
            f[4] = self._pick(self._BAD_NUMBERS)
        elif reason == "negative_amount":
            f[4] = _fmt_cents(-_parse_cents(f[4]))
        elif reason == "non_numeric_cost":
            f[5] = self._pick(self._BAD_NUMBERS)
        elif reason == "negative_cost":
            f[5] = _fmt_cents(-max(_parse_cents(f[5]) if f[5] else 100, 1))
        elif reason == "unknown_currency":
            f[6] = "XXX"
        elif reason == "conflicting_duplicate":
            cents = _parse_cents(f[4])
            other = list(f)
            other[4] = _fmt_cents(cents + max(1, cents // 10))
            return [f, other]
        elif reason == "malformed_line":
            return [[*f, "1"]]
        return [f]

    def _customers(self, reason: str, f: list[str]) -> list[list[str]]:
        cid = self._customer_id()
        f = [str(cid), f"customer{cid}@example.com", *f[2:]]
        if reason == "missing_customer_id":
            f[0] = ""
        elif reason == "invalid_customer_id":
            f[0] = f"x{cid}"
        elif reason == "unparseable_signup_date":
            f[2] = self._pick(self._BAD_DATES)
        elif reason == "missing_acquisition_channel":
            f[3] = ""
        elif reason == "invalid_email":
            f[1] = f"customer{cid}.example.com"
        elif reason == "invalid_country":
            f[4] = "Germany"
        elif reason == "conflicting_duplicate":
            return [f, [f[0], f"customer{cid}+dup@example.com", *f[2:]]]
        elif reason == "malformed_line":
            return [[*f, "1"]]
        return [f]

    def _marketing_spend(self, reason: str, f: list[str]) -> list[list[str]]:
        # A (date, channel) key that exists nowhere else, so the row has no duplicate problem.
        f = [self.next_spend_day.isoformat(), *f[1:]]
        self.next_spend_day -= timedelta(days=1)
        if reason == "unparseable_date":
            f[0] = self._pick(self._BAD_DATES)
        elif reason == "missing_channel":
            f[1] = ""
        elif reason == "missing_spend":
            f[2] = ""
        elif reason == "non_numeric_spend":
            f[2] = self._pick(self._BAD_NUMBERS)
        elif reason == "negative_spend":
            f[2] = _fmt_cents(-max(_parse_cents(f[2]), 1))
        elif reason == "conflicting_duplicate":
            cents = _parse_cents(f[2])
            return [f, [f[0], f[1], _fmt_cents(cents + max(1, cents // 10))]]
        elif reason == "malformed_line":
            return [[*f, "1"]]
        return [f]


def _splice(
    clean: pa.Buffer, inserts: list[tuple[int, str]], table: str, bad: _BadRowWriter, plan: _BadPlan
) -> list[bytes | memoryview]:
    """Insert bad lines before the given clean rows of a rendered CSV chunk."""
    data = memoryview(clean)
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], newlines + 1))
    pieces: list[bytes | memoryview] = []
    prev = 0
    for row, reason in inserts:
        cut = int(starts[row])
        pieces.append(data[prev:cut])
        prev = cut
        # The clean line just before the insertion point (or after it at the chunk start), so
        # an exact duplicate follows its original like a double submit.
        t = row - 1 if row > 0 else row
        template = bytes(data[int(starts[t]) : int(starts[t + 1]) - 1])
        lines = bad.lines(table, reason, template)
        plan.counts[reason] = plan.counts.get(reason, 0) + len(lines)
        pieces.append(b"".join(line + b"\n" for line in lines))
    pieces.append(data[prev:])
    return pieces


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


class _TableSink:
    """One output file, CSV or Parquet, appended chunk by chunk."""

    def __init__(self, path: Path, table: str, fmt: Literal["csv", "parquet"]) -> None:
        self.path = path
        self.table = table
        self.fmt = fmt
        self.rows = 0
        self._csv: BinaryIO | None = None
        self._parquet: pq.ParquetWriter | None = None
        if fmt == "csv":
            self._csv = path.open("wb")
            self._csv.write((",".join(_COLUMNS[table]) + "\n").encode())
        else:
            self._parquet = pq.ParquetWriter(
                path,
                _SCHEMAS[table],
                use_dictionary=_PARQUET_DICTIONARY[table],
                compression="snappy",
            )

    def write(
        self,
        data: pa.Table,
        plan: _BadPlan | None = None,
        bad: _BadRowWriter | None = None,
        row_offset: int = 0,
    ) -> None:
        if self._parquet is not None:
            self._parquet.write_table(data, row_group_size=max(data.num_rows, 1))
            self.rows += data.num_rows
            return
        assert self._csv is not None
        rendered = _csv_bytes(data)
        inserts = [] if plan is None else plan.take(row_offset, row_offset + data.num_rows)
        if not inserts:
            self._csv.write(rendered)
            self.rows += data.num_rows
            return
        assert bad is not None and plan is not None
        before = sum(plan.counts.values())
        for piece in _splice(rendered, inserts, self.table, bad, plan):
            self._csv.write(piece)
        self.rows += data.num_rows + sum(plan.counts.values()) - before

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._parquet is not None:
            self._parquet.close()


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _marketing_spend(ctx: _Context, buyers_by_day: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Daily spend per paid channel, rows sorted by (date, channel name)."""
    paid = sorted((c.name, i) for i, c in enumerate(ctx.channels) if c.paid)
    rng = np.random.default_rng(np.random.SeedSequence(ctx.seed, spawn_key=(_STREAM_SPEND,)))
    noise = rng.standard_normal((ctx.n_days, len(paid)))
    idx = np.array([i for _, i in paid], dtype=np.int64)
    cac = np.array([ctx.channels[i].cac for i in idx])
    base = np.array([ctx.channels[i].base_daily_spend for i in idx])
    s = SPEND_NOISE_SIGMA
    spend = base + cac * buyers_by_day[:, idx] * np.exp(s * noise - s * s / 2.0)
    cents = np.rint(spend * 100.0).astype(np.int64).reshape(-1)
    epoch_day = (ctx.start_date - date(1970, 1, 1)).days
    days = np.repeat(np.arange(ctx.n_days, dtype=np.int32) + epoch_day, len(paid))
    names = pa.array([name for name, _ in paid] * ctx.n_days, pa.string())
    return pa.table(
        [pa.array(days, pa.date32()), names, pa.array(cents / 100.0)],
        schema=_SCHEMAS["marketing_spend"],
    ), cents


def _truth(
    ctx: _Context,
    *,
    start_date: date,
    end_date: date,
    bad_share: float,
    fmt: str,
    requested: dict[str, int | None],
    realized: dict[str, Any],
) -> dict[str, Any]:
    channels = {
        c.name: {
            "share": c.share,
            "conversion": c.conversion,
            "bgnbd": {"r": c.bgnbd.r, "alpha": c.bgnbd.alpha, "a": c.bgnbd.a, "b": c.bgnbd.b},
            "gamma_gamma": {
                "p": c.gamma_gamma.p,
                "q": c.gamma_gamma.q,
                "v": c.gamma_gamma.v,
                "mean_spend": c.gamma_gamma.mean_spend,
            },
            "margin": {
                "distribution": "beta",
                "a": c.margin_a,
                "b": c.margin_b,
                "mean": c.mean_margin,
            },
            "cac": c.cac,
            "base_daily_spend": c.base_daily_spend,
            "paid": c.paid,
        }
        for c in ctx.channels
    }
    return {
        "generator": "ltv_pipeline.sample.generate",
        "seed": ctx.seed,
        "format": fmt,
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "window_end_exclusive": (end_date + timedelta(days=1)).isoformat() + "T00:00:00Z",
        "time_unit": "week",
        "rng_block_customers": RNG_BLOCK_CUSTOMERS,
        "signup_growth": SIGNUP_GROWTH,
        "refund_share": REFUND_SHARE,
        "cancel_share": CANCEL_SHARE,
        "missing_cost_share": MISSING_COST_SHARE,
        "spend_noise_sigma": SPEND_NOISE_SIGMA,
        "currency": CURRENCY,
        "countries": dict(COUNTRIES),
        "bad_share": bad_share,
        "requested": requested,
        "channels": channels,
        "realized": realized,
    }


def generate_shop(
    out_dir: Path,
    *,
    customers: int | None = None,
    orders: int | None = None,
    seed: int = 42,
    fmt: Literal["csv", "parquet"] = "csv",
    bad_share: float = 0.0,
    start_date: date = date(2024, 7, 1),
    end_date: date = date(2026, 6, 30),
    chunk_customers: int = 200_000,
    progress: Callable[[str], None] | None = None,
    channels: Sequence[Channel] = CHANNELS,
) -> ShopSummary:
    """Write a synthetic shop plus ``truth.json`` and ``bad_rows.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir
        Created if missing; existing files of the same names are overwritten.
    customers, orders
        Size the shop by customers, or by an approximate order count (the customer count is
        derived from the analytic expectation, so the realised total lands within a few
        percent for shops beyond a few thousand orders). At most one; default 5,000 customers.
    seed
        The only source of randomness: same arguments and seed give byte-identical files.
    fmt
        ``"csv"`` for the pipeline's raw layer, ``"parquet"`` (typed, clean only) for
        benchmarks up to ~100M orders.
    bad_share
        About this share of each CSV file's rows is appended as bad rows, every reason at least
        once, so loader quarantine can be tested while clean rows and the truth stay untouched.
    start_date, end_date
        Inclusive window of signups and orders.
    chunk_customers
        Customers held in memory and written together (rounded up to whole blocks of
        ``RNG_BLOCK_CUSTOMERS``). Changes memory and Parquet row groups, never values.
    progress
        Receives one line per chunk, for long benchmark runs.
    channels
        The acquisition channels and their true parameters; one channel gives a shop whose
        buyers all follow one BG/NBD and one Gamma-Gamma model (parameter-recovery tests).

    Returns
    -------
    ShopSummary
    """
    began = time.perf_counter()
    if customers is not None and orders is not None:
        raise ValueError("give either customers= or orders=, not both")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    if not isinstance(bad_share, int | float) or not 0.0 <= float(bad_share) <= 0.5:
        raise ValueError(f"bad_share must be within [0, 0.5], got {bad_share!r}")
    bad_share = float(bad_share)
    if bad_share > 0.0 and fmt == "parquet":
        raise ValueError("bad_share > 0 needs fmt='csv': typed Parquet cannot hold bad values")
    if end_date <= start_date:
        raise ValueError(f"end_date {end_date} must be after start_date {start_date}")
    chunk_customers = _check_size("chunk_customers", chunk_customers)
    if orders is not None:
        orders = _check_size("orders", orders)
        per_customer = expected_orders_per_customer(
            channels, start_date=start_date, end_date=end_date
        )
        n_customers = max(1, round(orders / per_customer))
    elif customers is not None:
        n_customers = _check_size("customers", customers)
    else:
        n_customers = DEFAULT_CUSTOMERS

    out_dir = Path(out_dir)
    ctx = _make_context(seed, n_customers, start_date, end_date, channels)
    say = progress or (lambda _msg: None)
    blocks_per_chunk = max(1, -(-chunk_customers // RNG_BLOCK_CUSTOMERS))
    n_chunks = -(-ctx.n_blocks // blocks_per_chunk)

    plans: dict[str, _BadPlan] = {}
    bad: _BadRowWriter | None = None
    if bad_share > 0.0:
        # Fresh bad order ids must exceed every clean id, so count clean orders first by
        # replaying only the cheap counting stage of every block.
        clean_orders = sum(
            _stage_counts(ctx, b, _block_rng(ctx, b)).n_orders for b in range(ctx.n_blocks)
        )
        if clean_orders == 0:
            raise ValueError("bad_share > 0 needs at least one clean order; add customers")
        plans["customers"] = _plan_bad_rows(seed, "customers", n_customers, bad_share)
        plans["orders"] = _plan_bad_rows(seed, "orders", clean_orders, bad_share)
        bad = _BadRowWriter(n_customers, clean_orders, start_date, plans["customers"])

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {t: out_dir / f"{t}.{fmt}" for t in _COLUMNS}
    formatter = _Formatter(ctx, fmt)
    n_ch = len(channels)
    buyers_by_day = np.zeros((ctx.n_days, n_ch), np.int64)
    by_status = np.zeros(len(STATUSES), np.int64)
    ch_customers = np.zeros(n_ch, np.int64)
    ch_buyers = np.zeros(n_ch, np.int64)
    ch_completed = np.zeros(n_ch, np.int64)
    missing_cost = 0
    sinks = {t: _TableSink(files[t], t, fmt) for t in ("customers", "orders")}

    def write_chunk(blocks: list[_Block], first_order_id: int) -> None:
        counts = [blk.counts for blk in blocks]
        order_table = formatter.orders(blocks, first_order_id)
        sinks["customers"].write(
            formatter.customers(counts), plans.get("customers"), bad, counts[0].first_id - 1
        )
        sinks["orders"].write(order_table, plans.get("orders"), bad, first_order_id - 1)

    # Formatting and writing run on a second thread (Arrow releases the GIL) while the next
    # chunk is simulated; at most one chunk waits, so memory stays at about two chunks.
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[None] | None = None
            next_order_id = 1
            for chunk in range(n_chunks):
                block_ids = range(
                    chunk * blocks_per_chunk, min((chunk + 1) * blocks_per_chunk, ctx.n_blocks)
                )
                blocks = [_simulate_block(ctx, b) for b in block_ids]
                for blk in blocks:
                    c = blk.counts
                    bch = c.channel[c.buyer_idx]
                    np.add.at(buyers_by_day, (c.signup_day[c.buyer_idx], bch), 1)
                    ch_customers += np.bincount(c.channel, minlength=n_ch)
                    ch_buyers += np.bincount(bch, minlength=n_ch)
                    ch_completed += np.bincount(bch, weights=c.repeats + 1, minlength=n_ch).astype(
                        np.int64
                    )
                    by_status += np.bincount(blk.order_status, minlength=len(STATUSES))
                    missing_cost += int(blk.order_cost_missing.sum())
                if pending is not None:
                    pending.result()
                pending = pool.submit(write_chunk, blocks, next_order_id)
                next_order_id += sum(blk.order_seconds.size for blk in blocks)
                done = blocks[-1].counts.first_id - 1 + blocks[-1].counts.signup_day.size
                say(
                    f"chunk {chunk + 1}/{n_chunks}: {done:,} customers,"
                    f" {next_order_id - 1:,} orders, {time.perf_counter() - began:.1f}s"
                )
            if pending is not None:
                pending.result()
    finally:
        for sink in sinks.values():
            sink.close()

    spend_table, spend_cents = _marketing_spend(ctx, buyers_by_day)
    spend_sink = _TableSink(files["marketing_spend"], "marketing_spend", fmt)
    try:
        if fmt == "csv":
            spend_table = spend_table.set_column(2, "spend", _cents_to_text(spend_cents))
        if bad is not None:
            plans["marketing_spend"] = _plan_bad_rows(
                seed, "marketing_spend", spend_table.num_rows, bad_share
            )
        spend_sink.write(spend_table, plans.get("marketing_spend"), bad, 0)
    finally:
        spend_sink.close()

    bad_rows = {
        t: {reason: plan.counts[reason] for reason in BAD_ROW_REASONS[t]}
        for t, plan in plans.items()
    }
    orders_by_status = {s: int(n) for s, n in zip(STATUSES, by_status, strict=True)}
    realized = {
        "customers": n_customers,
        "buyers": int(ch_buyers.sum()),
        "orders": {**orders_by_status, "total": int(by_status.sum())},
        "orders_missing_cost": missing_cost,
        "marketing_spend_rows": int(spend_cents.size),
        "marketing_spend_total": round(int(spend_cents.sum()) / 100.0, 2),
        "channels": {
            c.name: {
                "customers": int(ch_customers[i]),
                "buyers": int(ch_buyers[i]),
                "completed_orders": int(ch_completed[i]),
            }
            for i, c in enumerate(channels)
        },
    }
    truth = _truth(
        ctx,
        start_date=start_date,
        end_date=end_date,
        bad_share=bad_share,
        fmt=fmt,
        requested={"customers": customers, "orders": orders},
        realized=realized,
    )
    files["truth"], files["bad_rows"] = (out_dir / name for name in COMPANION_FILES)
    files["truth"].write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    files["bad_rows"].write_text(json.dumps(bad_rows, indent=2, sort_keys=True) + "\n")
    seconds = time.perf_counter() - began
    say(f"done: {n_customers:,} customers, {sinks['orders'].rows:,} order rows in {seconds:.1f}s")
    return ShopSummary(
        out_dir=out_dir,
        files=files,
        customers=n_customers,
        orders=sinks["orders"].rows,
        orders_by_status=orders_by_status,
        bad_rows=bad_rows,
        seconds=seconds,
    )
