"""The customer lifespan from tenure, on shops whose acquisition calendars differ.

Two shops with the same behaviour (tests/shops.py: BG/NBD in days, churn after 180 days) and
36 months of history: one acquires its customers steadily over the whole history, the other
all in its first quarter. A lifespan from pooled calendar-month churn differs between them (no
churn at all for the bursty shop's first half year, then a wave); the tenure-based one must
agree with the other shop and with the closed-form lifetime of the process.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb
import pytest

from ltv_pipeline import dbt_runner
from tests.helpers import check_evaluations, run_pipeline
from tests.shops import Behaviour, simulated_active_months, true_active_months, write_shop

BEHAVIOUR = Behaviour(r=4.0, alpha=120.0, a=20.0, b=60.0)
START = dt.date(2023, 1, 1)


def test_the_closed_form_lifetime_matches_a_brute_force_simulation():
    """Guards the truth the pipeline is checked against (100k whole lives on a day grid)."""
    for behaviour in (BEHAVIOUR, Behaviour(r=1.0, alpha=40.0, a=3.0, b=9.0)):
        closed = true_active_months(behaviour, 180)
        assert simulated_active_months(behaviour, 180, 100_000, seed=5) == pytest.approx(
            closed, rel=0.015
        )
    assert true_active_months(BEHAVIOUR, 180) == pytest.approx(11.06, abs=0.01)


@pytest.fixture(scope="module")
def shops(tmp_path_factory):
    """Both shops built by the real pipeline; yields kind -> warehouse path."""
    built = {}
    for kind in ("steady", "bursty"):
        root = tmp_path_factory.mktemp(kind)
        write_shop(
            root / "raw",
            customers=4000,
            acquisition=kind,
            start=START,
            months=36,
            seed=11,
            behaviour=BEHAVIOUR,
        )
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LTV_DATA_DIR", str(root))
            mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
            result = run_pipeline()
        assert result.success, kind
        built[kind] = root
    return built


def _one(root, sql):
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _overall(root):
    (row,) = _one(root, "select * from marts.ltv_summary where dimension = 'overall'")
    return row


def test_tenure_lifespan_is_the_same_whatever_the_acquisition_calendar(shops):
    truth = true_active_months(BEHAVIOUR, 180)
    steady, bursty = _overall(shops["steady"]), _overall(shops["bursty"])
    for row in (steady, bursty):
        assert row["is_reliable"] is True and row["unreliable_reason"] is None
        assert row["months_observed"] == 36
        assert row["expected_active_months"] == pytest.approx(truth, rel=0.10)
        assert row["customer_lifespan_years"] == pytest.approx(truth / 12, rel=0.10)
        # the two LTV forms are fed by the same estimate
        assert row["monthly_churn_rate"] == pytest.approx(
            1 / row["expected_active_months"], rel=1e-12
        )
    assert bursty["expected_active_months"] == pytest.approx(
        steady["expected_active_months"], rel=0.10
    )


def test_calendar_churn_depends_on_the_calendar_and_stays_a_report(shops):
    """churn_monthly is kept as the calendar report; it is what misleads a lifespan."""
    rates = {}
    for kind, root in shops.items():
        months = _one(root, "select churn_rate from marts.churn_monthly order by month_start")
        rates[kind] = [m["churn_rate"] for m in months]
        # nobody can lapse in the first six months of either shop
        assert all(rate == 0 for rate in rates[kind][1:6]), kind
    # in year 2 the bursty shop's quarter-one cohort lapses together: its calendar churn runs
    # well above the steady shop's although the behaviour is the same
    year2 = slice(12, 24)
    bursty = sum(rates["bursty"][year2]) / 12
    steady = sum(rates["steady"][year2]) / 12
    assert bursty > 1.2 * steady


def test_the_lifespan_cap_binds(shops, monkeypatch):
    root = shops["steady"]
    before = _overall(root)
    monkeypatch.setenv("LTV_DATA_DIR", str(root))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
    vars_ = json.dumps({"max_lifespan_years": 0.5})
    select = ["--select", "int_segment_lifespans_estimated", "ltv_summary"]
    assert dbt_runner.run_dbt(["build", *select, "--vars", vars_, "--quiet"]) == 0
    after = _overall(root)
    assert before["customer_lifespan_years"] > 0.5
    assert after["customer_lifespan_years"] == 0.5
    assert after["expected_active_months"] == before["expected_active_months"]
    assert after["historical_ltv"] == pytest.approx(
        after["average_purchase_value"] * after["purchase_frequency"] * 0.5
    )
    assert after["monthly_churn_rate"] == pytest.approx(1 / 6)


def test_six_months_of_history_cannot_show_a_lifespan(shops, tmp_path, monkeypatch):
    """As of the end of month 6 nobody could have lapsed: the lifespan is unknown (not the
    10-year cap), LTV:CAC is unknown, and a WARN check says so in the UI."""
    shutil.copytree(shops["bursty"] / "raw", tmp_path / "raw")
    monkeypatch.setenv("LTV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    result = run_pipeline(as_of_date="2023-06-30")
    evaluation = check_evaluations(result)["ltv_summary_overall_lifespan_is_reliable"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    overall = _overall(tmp_path)
    assert overall["months_observed"] == 6
    assert overall["is_reliable"] is False
    assert overall["unreliable_reason"] == (
        "history of 6 complete tenure months is shorter than the churn window (6 months) plus 3"
    )
    for name in ("customer_lifespan_years", "historical_ltv", "margin_ltv", "subscription_ltv"):
        assert overall[name] is None, name
    # the APV and APF the history does show are still reported
    assert overall["average_purchase_value"] > 0 and overall["purchase_frequency"] > 0
    (paid,) = _one(
        tmp_path,
        "select * from marts.ltv_cac_by_channel where acquisition_channel = 'paid_search'",
    )
    assert paid["cac"] > 0
    assert (paid["ltv_to_cac"], paid["is_above_ltv_cac_bar"]) == (None, None)
    assert paid["ltv_to_cac_status"] == "unknown"
    assert paid["ltv_to_cac_unknown_reason"] == overall["unreliable_reason"]
    customers = _one(tmp_path, "select count(historical_ltv) as n from marts.customers")
    assert customers == [{"n": 0}]
