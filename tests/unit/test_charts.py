"""ltv_pipeline.charts: what each chart draws, read back from the figure's artists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from ltv_pipeline.charts import (
    backtest_figure,
    backtest_groups,
    ltv_to_cac_figure,
    save_png,
    segments_figure,
)


def _bars(axes) -> list[tuple[str, float, float]]:
    """(legend label, y centre, width) of every horizontal bar."""
    out = []
    for container in axes.containers:
        for patch in container.patches:
            assert isinstance(patch, Rectangle)
            out.append(
                (container.get_label(), patch.get_y() + patch.get_height() / 2, patch.get_width())
            )
    return out


def test_ltv_to_cac_draws_both_ratios_the_bar_and_says_n_a_for_unknown():
    channels = pd.DataFrame(
        {
            "acquisition_channel": ["paid", "email", "organic"],
            "ltv_to_cac": [0.5, 4.0, np.nan],
            "predicted_value_to_cac": [1.25, 3.5, np.nan],
        }
    )
    axes = ltv_to_cac_figure(channels, bar=3.0).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["email", "organic", "paid"]
    widths = {}
    for label, y, width in _bars(axes):
        widths[(label.split(" ")[0], round(y))] = width
    # channels sorted by name: email 0, organic 1, paid 2
    assert widths[("LTV:CAC", 0)] == 4.0 and widths[("(margin", 0)] == 3.5
    assert widths[("LTV:CAC", 2)] == 0.5 and widths[("(margin", 2)] == 1.25
    assert widths[("LTV:CAC", 1)] == 0.0  # unknown: no bar ...
    texts = [t.get_text().strip() for t in axes.texts]
    assert texts.count("n/a") == 2  # ... and says so
    assert {"4.00x", "3.50x", "0.50x", "1.25x"} <= set(texts)
    (line,) = axes.get_lines()
    assert list(line.get_xdata()) == [3.0, 3.0] and line.get_label() == "the 3x bar"


def test_backtest_groups_average_each_calibration_frequency_by_hand():
    per_customer = pd.DataFrame(
        {
            "calibration_frequency": [0, 0, 1, 7, 9],
            "holdout_purchases": [0.0, 1.0, 2.0, 4.0, 6.0],
            "predicted_purchases": [0.5, 0.5, 1.5, 5.0, 5.0],
            "baseline_purchases": [0.0, 0.0, 3.0, 8.0, 10.0],
        }
    )
    groups = backtest_groups(per_customer)
    # 7 and 9 repeat purchases are one group, "7+"
    assert groups["group"].tolist() == [0, 1, 7]
    assert groups["customers"].tolist() == [2, 1, 2]
    assert groups["actual"].tolist() == [0.5, 2.0, 5.0]
    assert groups["bgnbd"].tolist() == [0.5, 1.5, 5.0]
    assert groups["naive"].tolist() == [0.0, 3.0, 9.0]
    axes = backtest_figure(groups, holdout_days=182).axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in axes.get_lines()}
    assert lines == {
        "actual": [0.5, 2.0, 5.0],
        "BG/NBD forecast": [0.5, 1.5, 5.0],
        "naive forecast": [0.0, 3.0, 9.0],
    }
    assert [t.get_text() for t in axes.get_xticklabels()] == ["0", "1", "7+"]
    assert axes.get_ylabel() == "purchases per customer in the 182-day holdout"
    # rows standing for several customers (backtest.Backtest.scored) weigh by their count
    counted = backtest_groups(per_customer.assign(customers=[3, 1, 1, 1, 2]))
    assert counted["customers"].tolist() == [4, 1, 3]
    assert counted["actual"].tolist() == [0.25, 2.0, pytest.approx(16 / 3)]
    assert counted["naive"].tolist() == [0.0, 3.0, pytest.approx(28 / 3)]


def test_segments_are_drawn_largest_revenue_first_with_their_shares():
    summary = pd.DataFrame(
        {
            "segment": ["Lost", "Champions", "At Risk"],
            "share_of_customers": [0.5, 0.2, 0.3],
            "share_of_revenue": [0.1, 0.6, 0.3],
        }
    )
    axes = segments_figure(summary).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["Champions", "At Risk", "Lost"]
    bars = {(label, round(y)): width for label, y, width in _bars(axes)}
    assert bars[("share of customers", 0)] == 0.2 and bars[("share of net revenue", 0)] == 0.6
    assert bars[("share of customers", 2)] == 0.5 and bars[("share of net revenue", 2)] == 0.1
    assert {"20.0%", "60.0%", "50.0%", "10.0%"} <= {t.get_text().strip() for t in axes.texts}


@pytest.mark.parametrize(
    "figure",
    [
        lambda: ltv_to_cac_figure(
            pd.DataFrame(columns=["acquisition_channel", "ltv_to_cac", "predicted_value_to_cac"])
        ),
        lambda: backtest_figure(
            backtest_groups(
                pd.DataFrame(
                    columns=[
                        "calibration_frequency",
                        "holdout_purchases",
                        "predicted_purchases",
                        "baseline_purchases",
                    ]
                )
            ),
            182,
        ),
        lambda: segments_figure(
            pd.DataFrame(columns=["segment", "share_of_customers", "share_of_revenue"])
        ),
    ],
)
def test_a_shop_without_the_data_gets_a_chart_that_says_so(figure, tmp_path):
    drawn = figure()
    texts = [t.get_text() for t in drawn.axes[0].texts]
    assert any(text.startswith(("no ", "not scored")) for text in texts), texts
    path = save_png(drawn, tmp_path / "charts" / "empty.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
