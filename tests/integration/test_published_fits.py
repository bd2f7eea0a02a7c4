"""The pipeline's own CLV summary reproduces a published BG/NBD fit, on the real log.

tests/data/cdnow_sample.txt.gz is the CDNOW sample: 2,357 customers of an online CD retailer
who made their first purchase in the first quarter of 1997, and all their purchases to the end
of June 1998 (6,919 lines, dates written as YYYYMMDD, several lines on one day for some
customers). It is the log Fader, Hardie & Lee (2005) fitted BG/NBD on, as shipped in lifetimes
0.11.3 (MIT; lifetimes/datasets/CDNOW_sample.txt). Their fit on the 39-week calibration period
to 1997-09-30, in weeks: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426.
tests/data/cdnow_customers_summary.csv.gz is the published per-customer summary of that period
(x, t_x, T in weeks, two decimals), from the same package.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.helpers import fitted_parameters, run_pipeline

DATA = Path(__file__).resolve().parents[1] / "data"
CDNOW = DATA / "cdnow_sample.txt.gz"
CDNOW_SUMMARY = DATA / "cdnow_customers_summary.csv.gz"
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def write_cdnow_export(raw: Path) -> None:
    """The log as the shop's own export: one order per line, the date as YYYYMMDD."""
    raw.mkdir(parents=True, exist_ok=True)
    first: dict[int, str] = {}
    lines = ["order_id,customer_id,ordered_at,status,amount,cost,currency"]
    with gzip.open(CDNOW, "rt") as f:
        for number, line in enumerate(f, start=1):
            _, customer, day, _quantity, amount = line.split()
            customer_id = int(customer)
            first.setdefault(customer_id, day)
            lines.append(f"{number},{customer_id},{day},completed,{amount},,USD")
    (raw / "orders.csv").write_text("\n".join(lines) + "\n")
    customers = ["customer_id,email,signup_date,acquisition_channel,country"]
    for customer_id, day in sorted(first.items()):
        signup = dt.datetime.strptime(day, "%Y%m%d").date().isoformat()
        customers.append(f"{customer_id},c{customer_id}@example.com,{signup},direct,US")
    (raw / "customers.csv").write_text("\n".join(customers) + "\n")
    (raw / "marketing_spend.csv").write_text("date,channel,spend\n1997-01-01,direct,1000\n")


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdnow")
    write_cdnow_export(root / "raw")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_DATA_DIR", str(root))
        mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        # the log is from 1997-98, before the default earliest plausible date
        mp.setenv("LTV_EARLIEST_DATE", "1990-01-01")
        # a backfill to the end of the papers' calibration period
        result = run_pipeline(as_of_date="1997-09-30")
    assert result.success
    return root, result


def test_summary_counts_time_as_the_papers_do(cdnow):
    root, _ = cdnow
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        count, buyers_once, t_first_day = con.execute(
            "select count(*), count(*) filter (where frequency = 0), "
            "max(t_days) from intermediate.int_customer_purchases_summarized"
        ).fetchone()
        # lifetimes' cdnow_customers_summary.csv: customer 1 has x = 2, t_x = 30.43, T = 38.86
        x, t_x, t = con.execute(
            "select frequency, recency_days / 7, t_days / 7 "
            "from intermediate.int_customer_purchases_summarized where customer_id = 1"
        ).fetchone()
    assert count == 2357
    assert buyers_once == 1411  # the paper: 1,411 of 2,357 made no repeat purchase in 39 weeks
    assert t_first_day == 272  # 1997-01-01 to 1997-09-30: 38.86 weeks
    assert (x, round(t_x, 2), round(t, 2)) == (2, 30.43, 38.86)


def test_summary_equals_the_published_summary_for_every_customer(cdnow):
    root, _ = cdnow
    published = pd.read_csv(CDNOW_SUMMARY).set_index("ID").sort_index()
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        ours = (
            con.execute(
                "select customer_id, frequency, recency_days / 7 as t_x, t_days / 7 as t "
                "from intermediate.int_customer_purchases_summarized"
            )
            .df()
            .set_index("customer_id")
            .sort_index()
        )
    assert ours.index.tolist() == published.index.tolist()
    assert (ours["frequency"] == published["frequency"]).all()
    # the published weeks are rounded to two decimals
    np.testing.assert_allclose(ours["t_x"], published["recency"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(ours["t"], published["T"], atol=0.005 + 1e-9)


def test_the_pipelines_fit_reproduces_the_published_one(cdnow):
    _, result = cdnow
    model = fitted_parameters(result, "marts/customer_predictions")
    for name, published in PUBLISHED.items():
        assert model[f"bgnbd_{name}"] == pytest.approx(published, rel=0.005), name


def test_a_backtest_that_misses_the_bar_is_reported_not_blocking(cdnow):
    """As of the end of calibration the holdout is the 182 days before it: the model misses
    the 10% bar on this real log, which is a verdict in the mart, not a withheld snapshot."""
    root, _ = cdnow
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        verdict, error, mae, naive = con.execute(
            "select m.verdict, m.aggregate_error_pct, m.mae, n.mae "
            "from marts.clv_backtest m, marts.clv_backtest n "
            "where m.model = 'bgnbd' and n.model = 'historical_average'"
        ).fetchone()
    assert verdict == "less_accurate"
    assert abs(error) > 10 and mae < naive
    assert (root / "published" / "manifest.json").exists()
