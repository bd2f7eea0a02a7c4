"""ltv_pipeline.clv.acquisition: predicted value against CAC, on a shop worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.clv.acquisition import (
    BY_CHANNEL_COLUMNS,
    BY_MONTH_COLUMNS,
    predicted_value_by_channel,
)

JAN, FEB, MAR = dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)


def _shop():
    # paid: Jan 4 customers, CAC 50, margin so far 120; Feb 1 customer, CAC 200, margin 10;
    # Mar spend only (no customer: CAC null). organic: no spend at all.
    cohorts = pd.DataFrame(
        {
            "acquisition_channel": ["paid", "paid", "paid", "organic"],
            "cohort_month": pd.to_datetime([JAN, FEB, MAR, JAN]),
            "acquired_customers": [4, 1, 0, 2],
            "cac": [50.0, 200.0, None, None],
            "gross_margin_to_date": [120.0, 10.0, 0.0, 30.0],
            "margin_per_customer_to_date": [30.0, 10.0, None, 15.0],
        }
    )
    channels = pd.DataFrame(
        {
            "acquisition_channel": ["organic", "paid"],
            "customers": [2, 5],
            "cac": [None, 100.0],  # paid: (200 + 200 + 100 spend) / 5
        }
    )
    cohort_sums = pd.DataFrame(
        {
            "acquisition_channel": ["paid", "paid", "organic"],
            "cohort_month": pd.to_datetime([JAN, FEB, JAN]),
            "predicted_clv": [80.0, 40.0, 16.0],
        }
    )
    channel_sums = pd.DataFrame(
        {"acquisition_channel": ["paid", "organic"], "predicted_clv": [120.0, 16.0]}
    )
    return cohorts, channels, cohort_sums, channel_sums


def test_predicted_value_against_cac_by_hand():
    by_month, by_channel = predicted_value_by_channel(*_shop())
    assert tuple(by_month.columns) == BY_MONTH_COLUMNS
    assert tuple(by_channel.columns) == BY_CHANNEL_COLUMNS
    rows = {(r.acquisition_channel, r.cohort_month): r for r in by_month.itertuples()}
    jan = rows[("paid", JAN)]
    # 80 / 4 = 20 predicted per customer; (120 + 80) / 4 / 50 = 1.0
    assert (jan.predicted_clv_per_customer, jan.predicted_value_to_cac) == (20.0, 1.0)
    feb = rows[("paid", FEB)]  # (10 + 40) / 1 / 200 = 0.25
    assert (feb.predicted_clv_per_customer, feb.predicted_value_to_cac) == (40.0, 0.25)
    mar = rows[("paid", MAR)]  # spend, nobody acquired: nothing predicted, no ratio
    assert np.isnan(mar.predicted_clv) and np.isnan(mar.predicted_value_to_cac)
    organic = rows[("organic", JAN)]  # no CAC: per customer yes (8), against CAC no
    assert organic.predicted_clv_per_customer == 8.0 and np.isnan(organic.predicted_value_to_cac)
    assert [(r.acquisition_channel, r.cohort_month) for r in by_month.itertuples()] == [
        ("organic", JAN),
        ("paid", JAN),
        ("paid", FEB),
        ("paid", MAR),
    ]
    channel = by_channel.set_index("acquisition_channel")
    # paid: margin 120 + 10 + 0 = 130; (130 + 120) / 5 / 100 = 0.5; 120 / 5 = 24
    assert channel.loc["paid", "gross_margin_to_date"] == 130.0
    assert channel.loc["paid", "predicted_clv_per_customer"] == 24.0
    assert channel.loc["paid", "predicted_value_to_cac"] == 0.5
    assert channel.loc["organic", "predicted_clv_per_customer"] == 8.0
    assert np.isnan(channel.loc["organic", "predicted_value_to_cac"])
    # the published types: counts BIGINT, dates DATE
    assert by_month["acquired_customers"].dtype == "int64"
    assert by_channel["customers"].dtype == "int64"
    assert str(by_month["cohort_month"].dtype) == "date32[day][pyarrow]"


def test_a_model_not_fitted_leaves_every_predicted_figure_null():
    cohorts, channels, cohort_sums, channel_sums = _shop()
    by_month, by_channel = predicted_value_by_channel(
        cohorts,
        channels,
        cohort_sums.assign(predicted_clv=np.nan),
        channel_sums.assign(predicted_clv=np.nan),
    )
    for frame in (by_month, by_channel):
        predicted = frame[["predicted_clv", "predicted_clv_per_customer", "predicted_value_to_cac"]]
        assert predicted.isna().all().all()
    # what dbt built is carried through unchanged
    assert by_channel.set_index("acquisition_channel").loc["paid", "gross_margin_to_date"] == 130
    assert by_month["margin_per_customer_to_date"].tolist()[1] == 30.0


def test_the_channel_margin_is_the_same_in_any_order():
    """Summed with fsum: 0.1 + 0.2 + 0.3 in any order is exactly 0.6, where a running sum of
    doubles gives 0.6000000000000001 one way and 0.6 the other."""
    cohorts, channels, cohort_sums, channel_sums = _shop()
    cohorts = cohorts[cohorts["acquisition_channel"] == "paid"].copy()
    cohorts["gross_margin_to_date"] = [0.1, 0.2, 0.3]
    margins = set()
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        _, by_channel = predicted_value_by_channel(
            cohorts.iloc[order], channels, cohort_sums, channel_sums
        )
        margins.add(by_channel.set_index("acquisition_channel").loc["paid", "gross_margin_to_date"])
    assert margins == {0.6}


def test_a_cohort_predicted_twice_is_an_error():
    cohorts, channels, cohort_sums, channel_sums = _shop()
    with pytest.raises(pd.errors.MergeError):
        predicted_value_by_channel(
            cohorts, channels, pd.concat([cohort_sums, cohort_sums.iloc[:1]]), channel_sums
        )


def test_an_empty_shop_gives_empty_tables():
    cohorts, channels, cohort_sums, channel_sums = (frame.iloc[:0] for frame in _shop())
    by_month, by_channel = predicted_value_by_channel(cohorts, channels, cohort_sums, channel_sums)
    assert by_month.empty and by_channel.empty
    assert tuple(by_month.columns) == BY_MONTH_COLUMNS
