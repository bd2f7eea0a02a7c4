"""The pandas reference used to check the marts on generated shops agrees with the hand fixture."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.integration.test_marts_fixture import CUSTOMERS, ORDERS, SPEND
from tests.reference import Params, reference_marts


def test_reference_reproduces_the_hand_worked_fixture(tmp_path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "orders.csv").write_text(ORDERS)
    (tmp_path / "marketing_spend.csv").write_text(SPEND)
    ref = reference_marts(
        tmp_path,
        Params(as_of=dt.date(2025, 6, 30), churn_days=60, lookback_months=3, min_churn_events=3),
    )
    churn = ref["churn_monthly"]
    assert churn["active_at_start"].tolist() == [0, 6, 7, 4, 4, 6]
    assert churn["churned_customers"].tolist() == [0, 0, 3, 2, 0, 2]
    assert churn["reactivated_customers"].tolist() == [0, 0, 0, 1, 1, 0]
    overall = ref["ltv_summary"][("overall", "all")]
    assert overall["expected_active_months"] == pytest.approx(3627 / 840)
    assert overall["subscription_ltv"] == pytest.approx(27 * 3627 / 840)
    paid = ref["ltv_summary"][("acquisition_channel", "paid_search")]
    assert paid["expected_active_months"] == pytest.approx(69 / 15)
    assert ref["ltv_summary"][("acquisition_channel", "email")]["historical_ltv"] is None
    assert ref["customers"].loc[6, "days_since_last_purchase"] == 170
    january = ref["cohort_activity"].query("cohort_month == @dt.date(2025, 1, 1)")
    assert january["cumulative_gross_margin_per_customer"].iloc[-1] == pytest.approx(73)
