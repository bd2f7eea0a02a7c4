"""Cohort reshaping and charts, by hand."""

import datetime as dt

import pandas as pd
import pytest

from ltv_pipeline.analytics.cohorts import (
    channel_ltv_curves,
    plot_ltv_curves,
    plot_retention_heatmap,
    retention_long,
    retention_wide,
)

JAN, FEB = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
ACTIVITY = pd.DataFrame(
    {
        "cohort_month": [JAN, JAN, JAN, FEB, FEB],
        "months_since_acquisition": [0, 1, 2, 0, 1],
        "acquired_customers": [4, 4, 4, 2, 2],
        "active_customers": [4, 1, 2, 2, 0],
        "cumulative_net_revenue_per_customer": [10.0, 12.5, 15.0, 20.0, 20.0],
        "cumulative_gross_margin_per_customer": [4.0, 5.0, 6.0, 8.0, 8.0],
    }
)


def test_retention_long_and_wide():
    long = retention_long(ACTIVITY)
    assert long["retention"].tolist() == [1.0, 0.25, 0.5, 1.0, 0.0]
    wide = retention_wide(long)
    assert wide.columns.tolist() == ["cohort_month", "acquired_customers", "m0", "m1", "m2"]
    assert wide.loc[0, ["m0", "m1", "m2"]].tolist() == [1.0, 0.25, 0.5]
    assert wide.loc[1, "acquired_customers"] == 2 and pd.isna(wide.loc[1, "m2"])


def test_channel_curves_chain_the_cohorts_that_reached_each_month():
    rows = pd.DataFrame(
        {
            "acquisition_channel": ["email"] * 6,
            "cohort_month": [JAN, JAN, JAN, FEB, FEB, FEB],
            "months_since_acquisition": [0, 1, 2, 0, 1, 2],
            "acquired_customers": [4, 4, 4, 2, 2, 2],
            "gross_margin": [8.0, 4.0, 4.0, 6.0, 2.0, 99.0],
            # February's month 2 is the as-of month, not yet complete
            "is_complete_month": [True, True, True, True, True, False],
        }
    )
    curves = channel_ltv_curves(rows)
    # month 0: (8 + 6) / (4 + 2); month 1 adds (4 + 2) / 6; month 2 adds January's 4 / 4
    assert curves["cumulative_gross_margin_per_customer"].tolist() == pytest.approx(
        [14 / 6, 20 / 6, 26 / 6]
    )
    assert curves["cohorts"].tolist() == [2, 2, 1]


def test_channel_curves_never_fall_when_only_old_cohorts_remain():
    """A thin old cohort and a rich young one: averaging cumulative values per month would
    fall from 7 to 0.75 at month 2, where only the old cohort remains."""
    rows = pd.DataFrame(
        {
            "acquisition_channel": ["paid"] * 5,
            "cohort_month": [JAN, JAN, JAN, FEB, FEB],
            "months_since_acquisition": [0, 1, 2, 0, 1],
            "acquired_customers": [4, 4, 4, 2, 2],
            "gross_margin": [1.0, 1.0, 1.0, 20.0, 20.0],
        }
    )
    values = channel_ltv_curves(rows)["cumulative_gross_margin_per_customer"].tolist()
    assert values == pytest.approx([21 / 6, 42 / 6, 42 / 6 + 1 / 4])
    assert values == sorted(values)


def test_charts_are_written_as_png(tmp_path):
    heatmap = plot_retention_heatmap(retention_long(ACTIVITY), tmp_path / "r" / "heatmap.png")
    curves = channel_ltv_curves(
        pd.DataFrame(
            {
                "acquisition_channel": ["email", "email", "paid"],
                "cohort_month": [JAN, JAN, JAN],
                "months_since_acquisition": [0, 1, 0],
                "acquired_customers": [1, 1, 2],
                "gross_margin": [1.0, 2.0, 3.0],
            }
        )
    )
    ltv = plot_ltv_curves(curves, tmp_path / "ltv.png", cac={"paid": 2.0})
    for path in (heatmap, ltv):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
