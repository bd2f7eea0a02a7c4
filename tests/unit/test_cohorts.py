"""Cohort reshaping and charts, by hand."""

import datetime as dt

import pandas as pd
import pytest

from ltv_pipeline.analytics.cohorts import (
    channel_ltv_curves,
    ltv_curves_figure,
    plot_ltv_curves,
    plot_retention_heatmap,
    retention_heatmap_figure,
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

#: Two channels' cohort months: email's cohort over two months, paid's first month only.
TWO_CHANNELS = pd.DataFrame(
    {
        "acquisition_channel": ["email", "email", "paid"],
        "cohort_month": [JAN, JAN, JAN],
        "months_since_acquisition": [0, 1, 0],
        "acquired_customers": [1, 1, 2],
        "gross_margin": [1.0, 2.0, 3.0],
    }
)


def test_retention_long_and_wide():
    long = retention_long(ACTIVITY)
    assert long["retention"].tolist() == [1.0, 0.25, 0.5, 1.0, 0.0]
    wide = retention_wide(long)
    assert wide.columns.tolist() == ["cohort_month", "acquired_customers", "m0", "m1", "m2"]
    assert wide.loc[0, ["m0", "m1", "m2"]].tolist() == [1.0, 0.25, 0.5]
    assert wide.loc[1, "acquired_customers"] == 2 and pd.isna(wide.loc[1, "m2"])


def test_retention_tables_carry_dates_and_whole_counts_whatever_the_engine_returned():
    """DuckDB hands back DATE as timestamps and sums as decimals: the marts BI reads must say
    DATE and BIGINT (they said TIMESTAMP and DOUBLE: acquired_customers 124.0)."""
    from decimal import Decimal

    engine_like = ACTIVITY.assign(
        cohort_month=pd.to_datetime(ACTIVITY["cohort_month"]),
        acquired_customers=[Decimal(v) for v in ACTIVITY["acquired_customers"]],
        active_customers=[Decimal(v) for v in ACTIVITY["active_customers"]],
    )
    long = retention_long(engine_like)
    wide = retention_wide(long)
    assert long["cohort_month"].tolist() == [JAN, JAN, JAN, FEB, FEB]
    assert wide["cohort_month"].tolist() == [JAN, FEB]
    for table in (long, wide):
        assert str(table["cohort_month"].dtype) == "date32[day][pyarrow]"
        assert table["acquired_customers"].dtype == "int64"
    assert retention_long(engine_like)["active_customers"].tolist() == [4, 1, 2, 2, 0]


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
    curves = channel_ltv_curves(TWO_CHANNELS)
    ltv = plot_ltv_curves(curves, tmp_path / "ltv.png", cac={"paid": 2.0})
    for path in (heatmap, ltv):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_the_heatmap_scale_leaves_out_month_0_and_every_cell_shows_its_value():
    """By hand from ACTIVITY: January keeps 1 of 4 in month 1 and 2 of 4 in month 2,
    February 0 of 2 in month 1. Month 0 (100% by definition) would put the top of the scale at
    100%; the later months' top is 50%."""
    axes = retention_heatmap_figure(retention_long(ACTIVITY)).axes[0]
    (image,) = axes.get_images()
    assert image.get_clim() == (0, 0.5)
    shown = image.get_array()
    assert shown.mask[:, 0].all()  # month 0: grey, outside the scale
    assert not shown.mask[0, 1:].any() and not shown.mask[1, 1]
    assert sorted(t.get_text() for t in axes.texts) == sorted(["100%", "25%", "50%", "100%", "0%"])


def test_the_ltv_chart_names_each_cac_line_with_its_value_and_the_currency():
    curves = channel_ltv_curves(TWO_CHANNELS)
    axes = ltv_curves_figure(curves, cac={"paid": 2.0}, currency="EUR").axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "email: margin per customer",
        "paid: margin per customer",
        "paid: CAC 2.00 EUR",
    ]
    assert "(EUR)" in axes.get_ylabel()
    paid, cac = [line for line in axes.get_lines() if line.get_label().startswith("paid")]
    assert cac.get_linestyle() == ":" and list(cac.get_ydata()) == [2.0, 2.0]
    assert cac.get_color() == paid.get_color()
    assert list(paid.get_ydata()) == [1.5]  # 3.0 of margin over 2 customers


def test_charts_of_a_shop_without_purchases_say_so_without_warnings():
    """No cohorts (every order refunded): both charts are drawn, with a note, and matplotlib
    warns of nothing (an empty heatmap's singular limits, a legend with no entries)."""
    import warnings

    from ltv_pipeline.analytics.cohorts import ltv_curves_figure, retention_heatmap_figure

    empty_long = pd.DataFrame({"cohort_month": [], "months_since_acquisition": [], "retention": []})
    empty_curves = pd.DataFrame(
        {
            "acquisition_channel": [],
            "months_since_acquisition": [],
            "cumulative_gross_margin_per_customer": [],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        heatmap = retention_heatmap_figure(empty_long)
        curves = ltv_curves_figure(empty_curves, {}, "EUR")
    assert [t.get_text() for t in heatmap.axes[0].texts] == ["no cohorts yet"]
    assert [t.get_text() for t in curves.axes[0].texts] == ["no acquired customers yet"]
