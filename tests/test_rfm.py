"""RFM scores and segments, by hand."""

import pandas as pd
import pytest

from ltv_pipeline.rfm import (
    SEGMENT_GRID,
    SEGMENTS,
    quintile_scores,
    score_customers,
    segment_for,
    segment_summary,
)


def test_quintiles_of_ten_distinct_values_are_pairs():
    scores = quintile_scores(pd.Series([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]))
    assert scores.tolist() == [5, 1, 5, 1, 4, 2, 4, 2, 3, 3]


def test_ties_share_a_score():
    # six customers with 1 purchase share average rank 3.5 -> centred percentile
    # (3.5 - 0.5) / 10 = 0.3 -> score 2; then 2, 3, 5, 8: ranks 7..10 -> .65 .75 .85 .95
    scores = quintile_scores(pd.Series([1, 1, 1, 1, 1, 1, 2, 3, 5, 8]))
    assert scores.tolist() == [2, 2, 2, 2, 2, 2, 4, 4, 5, 5]


def test_grid_is_complete_and_names_every_segment():
    assert set(SEGMENT_GRID) == {1, 2, 3, 4, 5}
    named = {name for row in SEGMENT_GRID.values() for name in row}
    assert named == set(SEGMENTS) and len(SEGMENTS) == 11
    assert segment_for(5, 5) == "Champions"
    assert segment_for(1, 1) == "Lost"
    assert segment_for(1, 5) == "Can't Lose Them"
    assert segment_for(5, 1) == "New Customers"
    with pytest.raises(ValueError):
        segment_for(0, 3)


def test_score_customers_by_hand():
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "days_since_last_purchase": [5, 400, 30, 200, 90],
            "purchases": [9, 1, 4, 6, 2],
            "net_revenue": [900.0, 20.0, 150.0, 700.0, 60.0],
        }
    )
    out = score_customers(customers).set_index("customer_id")
    # five customers: each is its own quintile
    assert out.loc[1, ["r", "f", "m"]].tolist() == [5, 5, 5]
    assert out.loc[2, ["r", "f", "m"]].tolist() == [1, 1, 1]
    assert out.loc[4, ["r", "f", "m", "fm"]].tolist() == [2, 4, 4, 4]
    assert out.loc[5, ["r", "f", "m", "fm"]].tolist() == [3, 2, 2, 2]
    assert out["segment"].to_dict() == {
        1: "Champions",
        2: "Lost",
        3: "Loyal Customers",
        4: "At Risk",
        5: "Need Attention",
    }
    assert out.loc[3, "rfm_score"] == "433"
    assert out.loc[3, "fm"] == 3 and out.loc[3, "segment"] == SEGMENT_GRID[4][2]


def test_score_customers_refuses_bad_input():
    with pytest.raises(ValueError, match=r"lacks column\(s\): \['purchases'\]"):
        # the old name of the count: a purchase is a customer's orders on one day
        score_customers(
            pd.DataFrame(
                {
                    "customer_id": [1],
                    "days_since_last_purchase": [1],
                    "orders": [1],
                    "net_revenue": [1.0],
                }
            )
        )
    with pytest.raises(ValueError, match="at least one purchase"):
        score_customers(
            pd.DataFrame(
                {
                    "customer_id": [1],
                    "days_since_last_purchase": [1],
                    "purchases": [0],
                    "net_revenue": [0.0],
                }
            )
        )
    with pytest.raises(ValueError, match="unique"):
        score_customers(
            pd.DataFrame(
                {
                    "customer_id": [1, 1],
                    "days_since_last_purchase": [1, 2],
                    "purchases": [1, 1],
                    "net_revenue": [1.0, 2.0],
                }
            )
        )


def test_segment_summary_shares_and_averages():
    segments = pd.DataFrame({"customer_id": [1, 2, 3], "segment": ["Lost", "Lost", "Champions"]})
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "net_revenue": [10.0, 30.0, 60.0],
            "historical_ltv": [1.0, 3.0, 8.0],
        }
    )
    predictions = pd.DataFrame({"customer_id": [1, 2, 3], "predicted_clv": [0.5, 1.5, 9.0]})
    out = segment_summary(segments, customers, predictions).set_index("segment")
    assert out.index.tolist() == ["Champions", "Lost"]  # the documented segment order
    assert out.loc["Lost", "customers"] == 2
    assert out.loc["Lost", "share_of_customers"] == pytest.approx(2 / 3)
    assert out.loc["Lost", "share_of_revenue"] == pytest.approx(0.4)
    assert out.loc["Lost", "average_historical_ltv"] == pytest.approx(2.0)
    assert out.loc["Champions", "average_predicted_clv"] == pytest.approx(9.0)
    assert out["share_of_revenue"].sum() == pytest.approx(1.0)


def test_readme_shows_the_segment_grid_of_the_code():
    from ltv_pipeline.settings import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    for r in (5, 4, 3, 2, 1):
        assert f"| R = {r} | " + " | ".join(SEGMENT_GRID[r]) + " |" in readme
