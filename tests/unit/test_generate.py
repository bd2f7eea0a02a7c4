"""Tests for the synthetic shop generator: file contract, determinism, truth, bad rows."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import hyp2f1

from ltv_pipeline.sample.generate import (
    BAD_ROW_REASONS,
    CHANNELS,
    COUNTRIES,
    MISSING_COST_SHARE,
    SECONDS_PER_WEEK,
    BGNBDParams,
    Channel,
    CustomerSimulation,
    ShopSummary,
    expected_orders_per_customer,
    expected_repeat_purchases,
    generate_shop,
    simulate_customers,
)

START, END = date(2024, 7, 1), date(2026, 6, 30)
N_DAYS = (END - START).days + 1
WINDOW_END = datetime(2026, 7, 1, tzinfo=UTC)
HEADERS = {
    "customers": "customer_id,email,signup_date,acquisition_channel,country",
    "orders": "order_id,customer_id,ordered_at,status,amount,cost,currency",
    "marketing_spend": "date,channel,spend",
}
MONEY = re.compile(r"^\d+\.\d\d$")
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def read_rows(path: Path) -> tuple[str, list[list[str]]]:
    lines = path.read_text().split("\n")
    assert lines[-1] == "", "file must end with a newline"
    return lines[0], [line.split(",") for line in lines[1:-1]]


def bgnbd_mean_scipy(t: np.ndarray, p: BGNBDParams) -> np.ndarray:
    """E[X(t)] from the paper's closed form, independent of the module's own series."""
    z = t / (p.alpha + t)
    return (
        (p.a + p.b - 1)
        / (p.a - 1)
        * (1 - (p.alpha / (p.alpha + t)) ** p.r * hyp2f1(p.r, p.b, p.a + p.b - 1, z))
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopSummary:
    messages: list[str] = []
    summary = generate_shop(tmp_path_factory.mktemp("default"), progress=messages.append)
    assert messages, "progress callback is used"
    return summary


# ------------------------------------------------------------------------------------------
# contract
# ------------------------------------------------------------------------------------------


def test_files_and_headers(shop: ShopSummary) -> None:
    assert set(shop.files) == {"customers", "orders", "marketing_spend", "truth", "bad_rows"}
    for table, header in HEADERS.items():
        path = shop.files[table]
        assert path == shop.out_dir / f"{table}.csv"
        raw = path.read_bytes()
        assert b"\r" not in raw and b'"' not in raw
        assert raw.split(b"\n", 1)[0].decode() == header
    assert json.loads(shop.files["bad_rows"].read_text()) == {}
    assert shop.bad_rows == {}
    assert shop.customers == 5_000


def test_customers_contract(shop: ShopSummary) -> None:
    _, rows = read_rows(shop.files["customers"])
    assert all(len(r) == 5 for r in rows)
    ids = [int(r[0]) for r in rows]
    assert ids == list(range(1, 5_001))
    assert all(r[1] == f"customer{r[0]}@example.com" for r in rows)
    signups = [date.fromisoformat(r[2]) for r in rows]
    assert min(signups) >= START and max(signups) <= END
    assert signups == sorted(signups), "ids follow signup order"
    assert {r[3] for r in rows} == {c.name for c in CHANNELS}
    assert {r[4] for r in rows} <= {c for c, _ in COUNTRIES}
    # Mild growth: the second year has more signups than the first, but not wildly more.
    second_year = sum(d >= date(2025, 7, 1) for d in signups) / len(signups)
    assert 0.52 < second_year < 0.66


def test_orders_contract(shop: ShopSummary) -> None:
    _, customers = read_rows(shop.files["customers"])
    signup = {int(r[0]): date.fromisoformat(r[2]) for r in customers}
    _, rows = read_rows(shop.files["orders"])
    assert len(rows) == shop.orders == sum(shop.orders_by_status.values())
    assert all(len(r) == 7 for r in rows)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert Counter(r[3] for r in rows) == shop.orders_by_status
    assert {r[6] for r in rows} == {"USD"}
    assert all(MONEY.match(r[4]) and float(r[4]) > 0 for r in rows)
    assert all(r[5] == "" or MONEY.match(r[5]) for r in rows)
    missing = sum(r[5] == "" for r in rows) / len(rows)
    sd = (MISSING_COST_SHARE * (1 - MISSING_COST_SHARE) / len(rows)) ** 0.5
    assert abs(missing - MISSING_COST_SHARE) < 4 * sd

    first_completed: dict[int, datetime] = {}
    for r in rows:
        ts = datetime.strptime(r[2], TS_FORMAT).replace(tzinfo=UTC)
        assert r[2].endswith("Z") and ts < WINDOW_END
        cid = int(r[1])
        assert ts.date() >= signup[cid], "no order before signup"
        if r[3] == "completed":
            first_completed[cid] = min(ts, first_completed.get(cid, ts))
    for cid, ts in first_completed.items():
        assert ts.date() == signup[cid], "first order on the signup day"
    # Orders are grouped by customer, in time order within a customer.
    keys = [(int(r[1]), r[2]) for r in rows]
    assert keys == sorted(keys)

    truth = json.loads(shop.files["truth"].read_text())
    assert truth["realized"]["buyers"] == len(first_completed)
    assert truth["realized"]["orders"]["total"] == len(rows)
    assert truth["realized"]["orders_missing_cost"] == sum(r[5] == "" for r in rows)


def test_refund_and_cancel_shares(shop: ShopSummary) -> None:
    status = shop.orders_by_status
    completed = status["completed"]
    for name, share in (("refunded", 0.04), ("cancelled", 0.03)):
        sd = (share * completed) ** 0.5
        assert abs(status[name] - share * completed) < 4 * sd


def test_margin_matches_truth() -> None:
    sim = simulate_customers(20_000, seed=3)
    has_cost = ~sim.order_cost_missing & (sim.order_amount_cents >= 1_000)
    margin = 1 - sim.order_cost_cents[has_cost] / sim.order_amount_cents[has_cost]
    channel = sim.channel[sim.order_customer_id[has_cost] - 1]
    for code, ch in enumerate(CHANNELS):
        assert abs(margin[channel == code].mean() - ch.mean_margin) < 0.01, ch.name


def test_marketing_spend(shop: ShopSummary) -> None:
    _, rows = read_rows(shop.files["marketing_spend"])
    paid = sorted(c.name for c in CHANNELS if c.paid)
    assert {"organic_search", "referral"}.isdisjoint(paid)
    assert len(rows) == N_DAYS * len(paid)
    expected_keys = [
        ((START + timedelta(days=d)).isoformat(), name) for d in range(N_DAYS) for name in paid
    ]
    assert [(r[0], r[1]) for r in rows] == expected_keys
    assert all(MONEY.match(r[2]) for r in rows)

    truth = json.loads(shop.files["truth"].read_text())
    spend = defaultdict(float)
    for r in rows:
        spend[r[1]] += float(r[2])
    for name in paid:
        ch = truth["channels"][name]
        buyers = truth["realized"]["channels"][name]["buyers"]
        variable = spend[name] - ch["base_daily_spend"] * N_DAYS
        assert variable == pytest.approx(ch["cac"] * buyers, rel=0.05), name


def test_truth_json(shop: ShopSummary) -> None:
    text = shop.files["truth"].read_text()
    truth = json.loads(text)
    assert text == json.dumps(truth, indent=2, sort_keys=True) + "\n"
    assert truth["seed"] == 42 and truth["time_unit"] == "week"
    assert (truth["start_date"], truth["end_date"]) == (START.isoformat(), END.isoformat())
    assert set(truth["channels"]) == {c.name for c in CHANNELS}
    for c in CHANNELS:
        t = truth["channels"][c.name]
        assert t["bgnbd"] == {
            "r": c.bgnbd.r,
            "alpha": c.bgnbd.alpha,
            "a": c.bgnbd.a,
            "b": c.bgnbd.b,
        }
        assert 30 <= t["gamma_gamma"]["mean_spend"] <= 150
        assert 0.6 <= t["conversion"] <= 0.9
    assert {"refund_share", "cancel_share", "missing_cost_share"} <= set(truth)
    realized = truth["realized"]
    assert realized["customers"] == 5_000
    assert sum(v["customers"] for v in realized["channels"].values()) == 5_000
    assert sum(v["buyers"] for v in realized["channels"].values()) == realized["buyers"]
    assert (
        sum(v["completed_orders"] for v in realized["channels"].values())
        == (realized["orders"]["completed"])
    )
    _, customers = read_rows(shop.files["customers"])
    assert Counter(r[3] for r in customers) == {
        k: v["customers"] for k, v in realized["channels"].items()
    }


# ------------------------------------------------------------------------------------------
# determinism and sizing
# ------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kwargs = {"customers": 2_500, "bad_share": 0.02}
    a = generate_shop(tmp_path / "a", seed=7, **kwargs)
    b = generate_shop(tmp_path / "b", seed=7, **kwargs)
    c = generate_shop(tmp_path / "c", seed=8, **kwargs)
    for name in ("customers", "orders", "marketing_spend", "bad_rows"):
        assert a.files[name].read_bytes() == b.files[name].read_bytes(), name
        assert a.files[name].read_bytes() != c.files[name].read_bytes(), name


def test_orders_target_lands_within_ten_percent(tmp_path: Path) -> None:
    for target in (20_000, 60_000):
        summary = generate_shop(tmp_path / str(target), orders=target, seed=11)
        assert abs(summary.orders - target) <= 0.1 * target
        expected_customers = round(target / expected_orders_per_customer())
        assert summary.customers == expected_customers


# ------------------------------------------------------------------------------------------
# the generative process against its own truth
# ------------------------------------------------------------------------------------------


def test_expected_repeat_purchases_matches_scipy() -> None:
    t = np.array([0.0, 0.5, 3.0, 26.0, 52.0, 104.3, 500.0])
    for c in CHANNELS:
        np.testing.assert_allclose(
            expected_repeat_purchases(t, c.bgnbd),
            bgnbd_mean_scipy(t, c.bgnbd),
            rtol=1e-10,
            atol=1e-12,
        )


def per_buyer_completed(sim: CustomerSimulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(repeat purchases x, T in weeks, summed completed amount) per buyer, from order rows."""
    completed = sim.order_status == 0
    ids = sim.order_customer_id[completed]
    n = sim.customer_id.size
    count = np.bincount(ids, minlength=n + 1)[1:]
    spend = np.bincount(ids, weights=sim.order_amount_cents[completed] / 100, minlength=n + 1)[1:]
    first = np.full(n + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, ids, sim.order_seconds[completed])
    buyers = count > 0
    assert np.array_equal(buyers, sim.buyer)
    window = N_DAYS * 86_400
    t_weeks = (window - first[1:][buyers]) / SECONDS_PER_WEEK
    np.testing.assert_allclose(t_weeks, sim.t_weeks[buyers])
    return count[buyers] - 1, t_weeks, spend[buyers]


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.name)
def test_bgnbd_and_gamma_gamma_match_truth(channel: Channel) -> None:
    """40k buyers of one channel: means agree with the closed forms within 4 standard errors.

    The repeat-count residuals x_i - E[X(T_i)] are independent across buyers, so their sample
    standard deviation over sqrt(n) is the standard error of the mean difference. Order values
    share a per-buyer nu, so the spend check uses a cluster (per-buyer) standard error.
    """
    one = replace(channel, share=1.0, conversion=1.0)
    sim = simulate_customers(40_000, seed=2024, channels=[one])
    x, t_weeks, spend = per_buyer_completed(sim)
    n = x.size
    assert n == 40_000

    expected = bgnbd_mean_scipy(t_weeks, channel.bgnbd)
    resid = x - expected
    se = resid.std(ddof=1) / np.sqrt(n)
    assert abs(resid.mean()) < 4 * se, (x.mean(), expected.mean(), se)

    # No repeat purchase at all means no Poisson event before T: P = (alpha / (alpha + T))^r.
    p_zero = (channel.bgnbd.alpha / (channel.bgnbd.alpha + t_weeks)) ** channel.bgnbd.r
    se_zero = np.sqrt((p_zero * (1 - p_zero)).sum()) / n
    assert abs((x == 0).mean() - p_zero.mean()) < 4 * se_zero

    orders = x + 1
    mean_value = spend.sum() / orders.sum()
    se_value = np.sqrt(((spend - mean_value * orders) ** 2).sum()) / orders.sum()
    truth = channel.gamma_gamma.mean_spend
    assert abs(mean_value - truth) < 4 * se_value, (mean_value, truth, se_value)
    assert se_value < 0.03 * truth, "the sample is large enough to mean something"


def test_conversion_and_channel_shares() -> None:
    sim = simulate_customers(60_000, seed=5)
    for code, ch in enumerate(CHANNELS):
        in_channel = sim.channel == code
        share = in_channel.mean()
        assert abs(share - ch.share) < 4 * np.sqrt(ch.share * (1 - ch.share) / 60_000)
        conv = sim.buyer[in_channel].mean()
        n = in_channel.sum()
        assert abs(conv - ch.conversion) < 4 * np.sqrt(ch.conversion * (1 - ch.conversion) / n)


# ------------------------------------------------------------------------------------------
# bad rows
# ------------------------------------------------------------------------------------------


def _is_int(s: str) -> bool:
    return re.fullmatch(r"-?\d+", s) is not None


def _is_num(s: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", s) is not None


def _date_ok(s: str) -> bool:
    try:
        date.fromisoformat(s)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d\d-\d\d", s) is not None


def _problems(table: str, f: list[str], valid_customers: set[int]) -> list[str]:
    """Every problem of one row, as a strict loader sees it (duplicates handled apart)."""
    width = len(HEADERS[table].split(","))
    if len(f) != width:
        return ["malformed_line"]
    out: list[str] = []
    if table == "orders":
        oid, cid, ts, status, amount, cost, currency = f
        if oid == "":
            out.append("missing_order_id")
        elif not _is_int(oid):
            out.append("invalid_order_id")
        if cid == "":
            out.append("missing_customer_id")
        elif not _is_int(cid):
            out.append("invalid_customer_id")
        elif int(cid) not in valid_customers:
            out.append("unknown_customer_id")
        try:
            when = datetime.strptime(ts, TS_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            out.append("unparseable_ordered_at")
        else:
            if when >= WINDOW_END:
                out.append("future_ordered_at")
        if status not in {"completed", "refunded", "cancelled"}:
            out.append("unknown_status")
        if amount == "":
            out.append("missing_amount")
        elif not _is_num(amount):
            out.append("non_numeric_amount")
        elif float(amount) <= 0:
            out.append("negative_amount")
        if cost != "" and not _is_num(cost):
            out.append("non_numeric_cost")
        elif cost != "" and float(cost) < 0:
            out.append("negative_cost")
        if currency != "USD":
            out.append("unknown_currency")
    elif table == "customers":
        cid, email, signup, channel, country = f
        if cid == "":
            out.append("missing_customer_id")
        elif not _is_int(cid):
            out.append("invalid_customer_id")
        if "@" not in email:
            out.append("invalid_email")
        if not _date_ok(signup):
            out.append("unparseable_signup_date")
        if channel == "":
            out.append("missing_acquisition_channel")
        if country not in {c for c, _ in COUNTRIES}:
            out.append("invalid_country")
    else:
        day, channel, spend = f
        if not _date_ok(day):
            out.append("unparseable_date")
        if channel == "":
            out.append("missing_channel")
        if spend == "":
            out.append("missing_spend")
        elif not _is_num(spend):
            out.append("non_numeric_spend")
        elif float(spend) < 0:
            out.append("negative_spend")
    return out


def _strict_load(
    table: str, rows: list[list[str]], valid_customers: set[int]
) -> tuple[Counter, set[str]]:
    """Quarantine counts per reason and the accepted first-key values.

    Asserts on the way that no row has more than one problem.
    """
    counts: Counter = Counter()
    by_key: dict[tuple[str, ...], list[list[str]]] = defaultdict(list)
    for f in rows:
        problems = _problems(table, f, valid_customers)
        assert len(problems) <= 1, (table, f, problems)
        if problems:
            counts[problems[0]] += 1
            continue
        key = (f[0], f[1]) if table == "marketing_spend" else (f[0],)
        by_key[key].append(f)
    accepted: set[str] = set()
    for key, group in by_key.items():
        if all(g == group[0] for g in group):
            counts["exact_duplicate"] += len(group) - 1
            accepted.add(key[0])
        else:
            counts["conflicting_duplicate"] += len(group)
    return counts, accepted


@pytest.fixture(scope="module")
def dirty_and_clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShopSummary, ShopSummary]:
    base = tmp_path_factory.mktemp("bad")
    dirty = generate_shop(base / "dirty", customers=4_000, seed=9, bad_share=0.02)
    clean = generate_shop(base / "clean", customers=4_000, seed=9)
    return dirty, clean


def test_bad_rows_json_lists_every_reason(dirty_and_clean) -> None:
    dirty, clean = dirty_and_clean
    listed = json.loads(dirty.files["bad_rows"].read_text())
    assert listed == dirty.bad_rows
    assert set(listed) == set(BAD_ROW_REASONS)
    for table, reasons in BAD_ROW_REASONS.items():
        assert set(listed[table]) == set(reasons)
        assert all(n >= 1 for n in listed[table].values()), table
        assert listed[table]["conflicting_duplicate"] % 2 == 0
    assert dirty.orders == clean.orders + sum(listed["orders"].values())
    n_bad = sum(listed["orders"].values())
    assert 0.015 * clean.orders <= n_bad <= 0.03 * clean.orders


def test_bad_rows_never_touch_clean_rows(dirty_and_clean) -> None:
    dirty, clean = dirty_and_clean
    listed = dirty.bad_rows
    for table in BAD_ROW_REASONS:
        dirty_lines = dirty.files[table].read_text().split("\n")
        clean_lines = clean.files[table].read_text().split("\n")
        assert len(dirty_lines) - len(clean_lines) == sum(listed[table].values()), table
        # The clean file is a subsequence of the dirty one: nothing changed, nothing removed.
        it = iter(dirty_lines)
        assert all(line in it for line in clean_lines), table
        # Bad rows are spread through the file, not just appended at the end.
        first_extra = next(
            i for i, (d, c) in enumerate(zip(dirty_lines, clean_lines, strict=False)) if d != c
        )
        assert first_extra < len(clean_lines) // 2, table
    truth_dirty = json.loads(dirty.files["truth"].read_text())
    truth_clean = json.loads(clean.files["truth"].read_text())
    assert truth_dirty["realized"] == truth_clean["realized"]


def test_strict_loader_quarantines_exactly_what_bad_rows_json_says(dirty_and_clean) -> None:
    dirty, _ = dirty_and_clean
    _, customers = read_rows(dirty.files["customers"])
    cust_counts, accepted = _strict_load("customers", customers, set())
    assert cust_counts == Counter(dirty.bad_rows["customers"])
    valid = {int(k) for k in accepted}
    assert valid == set(range(1, 4_001)), "injected customers never look like clean ones"

    _, orders = read_rows(dirty.files["orders"])
    assert _strict_load("orders", orders, valid)[0] == Counter(dirty.bad_rows["orders"])
    _, spend = read_rows(dirty.files["marketing_spend"])
    assert _strict_load("marketing_spend", spend, valid)[0] == Counter(
        dirty.bad_rows["marketing_spend"]
    )


def test_duplicates_look_as_described(dirty_and_clean) -> None:
    dirty, clean = dirty_and_clean
    _, orders = read_rows(dirty.files["orders"])
    max_clean_id = clean.orders
    by_id: dict[str, list[list[str]]] = defaultdict(list)
    for f in orders:
        if _is_int(f[0]):
            by_id[f[0]].append(f)
    conflicting = [g for k, g in by_id.items() if len(g) > 1 and int(k) > max_clean_id]
    assert len(conflicting) == dirty.bad_rows["orders"]["conflicting_duplicate"] // 2
    for group in conflicting:
        assert len(group) == 2 and group[0][4] != group[1][4]
        assert group[0][:4] == group[1][:4]
    exact = [g for k, g in by_id.items() if len(g) > 1 and int(k) <= max_clean_id]
    assert len(exact) == dirty.bad_rows["orders"]["exact_duplicate"]
    assert all(g[0] == g[1] for g in exact)
    # Bad orders use fresh ids above every clean id and, where valid, buying customers.
    fresh = [f for f in orders if len(f) == 7 and _is_int(f[0]) and int(f[0]) > max_clean_id]
    assert fresh
    buyers = {f[1] for f in orders if _is_int(f[0]) and int(f[0]) <= max_clean_id}
    unknown = [f for f in fresh if _is_int(f[1]) and f[1] not in buyers]
    assert len(unknown) == dirty.bad_rows["orders"]["unknown_customer_id"]

    _, spend = read_rows(dirty.files["marketing_spend"])
    paid = {c.name for c in CHANNELS if c.paid}
    outside = [f for f in spend if _date_ok(f[0]) and date.fromisoformat(f[0]) < START]
    pairs = Counter((f[0], f[1]) for f in outside)
    dups = [k for k, n in pairs.items() if n == 2]
    assert len(dups) == dirty.bad_rows["marketing_spend"]["conflicting_duplicate"] // 2
    assert all(k[1] in paid for k in dups)


def test_bad_customer_ids_are_never_referenced(dirty_and_clean) -> None:
    dirty, _ = dirty_and_clean
    _, orders = read_rows(dirty.files["orders"])
    referenced = {int(f[1]) for f in orders if len(f) >= 2 and _is_int(f[1])}
    _, customers = read_rows(dirty.files["customers"])
    injected = {int(f[0]) for f in customers if _is_int(f[0]) and int(f[0]) > 4_000}
    assert injected and not injected & referenced


# ------------------------------------------------------------------------------------------
# parquet
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parquet_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShopSummary, ShopSummary]:
    base = tmp_path_factory.mktemp("parquet")
    small = generate_shop(
        base / "small", customers=25_000, seed=13, fmt="parquet", chunk_customers=10_000
    )
    big = generate_shop(base / "big", customers=25_000, seed=13, fmt="parquet")
    return small, big


def test_parquet_schema_and_counts(parquet_pair) -> None:
    small, _ = parquet_pair
    expected = {
        "customers": [
            ("customer_id", pa.int64()),
            ("email", pa.string()),
            ("signup_date", pa.date32()),
            ("acquisition_channel", pa.string()),
            ("country", pa.string()),
        ],
        "orders": [
            ("order_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("ordered_at", pa.timestamp("us", tz="UTC")),
            ("status", pa.string()),
            ("amount", pa.float64()),
            ("cost", pa.float64()),
            ("currency", pa.string()),
        ],
        "marketing_spend": [
            ("date", pa.date32()),
            ("channel", pa.string()),
            ("spend", pa.float64()),
        ],
    }
    for table, fields in expected.items():
        assert small.files[table].suffix == ".parquet"
        schema = pq.read_schema(small.files[table])
        assert [(f.name, f.type) for f in schema] == fields, table
    orders = pq.read_table(small.files["orders"])
    assert orders.num_rows == small.orders == sum(small.orders_by_status.values())
    assert pq.read_metadata(small.files["customers"]).num_rows == 25_000
    amount = orders["amount"].to_numpy()
    np.testing.assert_array_equal(np.round(amount, 2), amount)
    assert orders["cost"].null_count > 0
    assert json.loads(small.files["bad_rows"].read_text()) == {}


def test_parquet_streams_and_chunking_never_changes_values(parquet_pair) -> None:
    small, big = parquet_pair
    assert pq.ParquetFile(small.files["orders"]).num_row_groups == 3
    assert pq.ParquetFile(big.files["orders"]).num_row_groups == 1
    for table in ("customers", "orders", "marketing_spend"):
        assert pq.read_table(small.files[table]).equals(pq.read_table(big.files[table])), table


def test_parquet_matches_csv_and_simulation(parquet_pair, tmp_path: Path) -> None:
    small, _ = parquet_pair
    csv_shop = generate_shop(tmp_path, customers=25_000, seed=13)
    orders = pq.read_table(small.files["orders"])
    with csv_shop.files["orders"].open() as fh:
        rows = list(csv.reader(fh))[1:]
    assert len(rows) == orders.num_rows
    assert [int(r[1]) for r in rows] == orders["customer_id"].to_pylist()
    ts = [datetime.strptime(r[2], TS_FORMAT).replace(tzinfo=UTC) for r in rows]
    assert ts == orders["ordered_at"].to_pylist()
    assert [float(r[4]) for r in rows] == orders["amount"].to_pylist()
    assert [float(r[5]) if r[5] else None for r in rows] == orders["cost"].to_pylist()

    sim = simulate_customers(25_000, seed=13)
    np.testing.assert_array_equal(sim.order_customer_id, orders["customer_id"].to_numpy())
    np.testing.assert_array_equal(sim.order_amount_cents / 100, orders["amount"].to_numpy())
    customers = pq.read_table(small.files["customers"])
    names = np.array([c.name for c in CHANNELS])
    assert customers["acquisition_channel"].to_pylist() == names[sim.channel].tolist()
    spend_csv = [
        float(r.split(",")[2])
        for r in csv_shop.files["marketing_spend"].read_text().split("\n")[1:-1]
    ]
    assert spend_csv == pq.read_table(small.files["marketing_spend"])["spend"].to_pylist()


# ------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 10, "orders": 10}, "not both"),
        ({"customers": 0}, "positive"),
        ({"customers": -5}, "positive"),
        ({"orders": 0}, "positive"),
        ({"customers": 2.5}, "integer"),
        ({"bad_share": -0.1}, "bad_share"),
        ({"bad_share": 0.51}, "bad_share"),
        ({"bad_share": 0.1, "fmt": "parquet"}, "csv"),
        ({"end_date": date(2024, 7, 1)}, "after"),
        ({"start_date": date(2026, 1, 1), "end_date": date(2025, 1, 1)}, "after"),
        ({"fmt": "json"}, "fmt"),
        ({"chunk_customers": 0}, "positive"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_shop(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists(), "validation happens before anything is written"
