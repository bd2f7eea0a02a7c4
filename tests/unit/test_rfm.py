"""RFM scores and segments, by hand."""

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ltv_pipeline.analytics import rfm
from ltv_pipeline.analytics.rfm import (
    MEASURES,
    SEGMENT_COLUMNS,
    SEGMENT_GRID,
    SEGMENTS,
    SUMMARY_COLUMNS,
    fm_scores,
    measure_ranks_sql,
    quintile_scores,
    score_customers,
    score_values,
    segment_cells,
    segment_for,
    segment_summary,
    segment_totals_sql,
    segments_sql,
)


def test_quintiles_of_ten_distinct_values_are_pairs():
    scores = quintile_scores(pd.Series([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]))
    assert scores.tolist() == [5, 1, 5, 1, 4, 2, 4, 2, 3, 3]


def test_ties_share_a_score():
    # score = 1 + floor(5 * customers strictly below / n), n = 10; the top value scores 5.
    # six one-time buyers: nobody below -> 1; 2: six below -> 1 + 30 // 10 = 4;
    # 3: seven below -> 1 + 35 // 10 = 4; 5: eight below -> 1 + 40 // 10 = 5; 8: the top -> 5
    scores = quintile_scores(pd.Series([1, 1, 1, 1, 1, 1, 2, 3, 5, 8]))
    assert scores.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]


def test_half_one_time_buyers_score_f1():
    # purchases of ten buyers, five bought once (the old average-rank rule gave them 2):
    # 1: none below -> 1; 2: five below -> 1 + 25 // 10 = 3; 3: seven below -> 4;
    # 7: eight below -> 5; 9: the top -> 5
    scores = quintile_scores(pd.Series([2, 1, 9, 1, 1, 3, 1, 2, 7, 1]))
    assert scores.tolist() == [3, 1, 5, 1, 1, 4, 1, 3, 5, 1]


def test_top_value_scores_5_however_many_tie():
    # 1: 0 below -> 1; 2: 1 below -> 1 + 5 // 10 = 1; 3: 2 below -> 2; 4: 3 below -> 2;
    # six customers at 5: four below -> 1 + 20 // 10 = 3 by the lowest-score rule, but 5 is
    # the top value, so 5
    scores = quintile_scores(pd.Series([5, 4, 5, 3, 5, 2, 5, 1, 5, 5]))
    assert scores.tolist() == [5, 2, 5, 2, 5, 1, 5, 1, 5, 5]


def test_seven_distinct_values_split_by_integer_fifths():
    # n = 7: k below -> 1 + 5k // 7 for k = 0..5: 1, 1, 2, 3, 3, 4; the top -> 5
    scores = quintile_scores(pd.Series([70.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]))
    assert scores.tolist() == [5, 1, 1, 2, 3, 3, 4]


def test_one_distinct_value_scores_1():
    # everybody is the minimum (a shop where everybody bought once: all F = 1)
    assert quintile_scores(pd.Series([3, 3, 3])).tolist() == [1, 1, 1]
    assert quintile_scores(pd.Series([], dtype="float64")).tolist() == []
    with pytest.raises(ValueError, match="null"):
        quintile_scores(pd.Series([1.0, None]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_keep_order_and_pin_both_ends(seed):
    rng = np.random.default_rng(seed)
    values = pd.Series(rng.geometric(0.5, size=500))  # heavy ties, as purchase counts
    scores = quintile_scores(values)
    frame = pd.DataFrame({"value": values, "score": scores})
    per_value = frame.groupby("value")["score"].agg(["min", "max"])
    assert (per_value["min"] == per_value["max"]).all()  # ties share a score
    assert per_value["min"].is_monotonic_increasing  # higher value, no lower score
    assert per_value["min"].iloc[0] == 1 and per_value["min"].iloc[-1] == 5
    assert scores.between(1, 5).all()


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


def test_fm_rounds_half_up_and_picks_the_segment():
    # ten buyers with distinct values: score = 1 + (customers below) // 2, so two per score.
    # customer: (R, F, M) -> FM = (F + M) / 2 rounded half up -> segment
    #  1: (1, 1, 1) -> 1 Lost                 2: (1, 1, 2) -> 2 Hibernating
    #  3: (2, 2, 3) -> 3 At Risk              4: (3, 2, 1) -> 2 Need Attention
    #  5: (4, 3, 2) -> 3 Loyal Customers      6: (4, 3, 3) -> 3 Loyal Customers
    #  7: (2, 4, 5) -> 5 Can't Lose Them      8: (5, 4, 4) -> 4 Champions
    #  9: (5, 5, 5) -> 5 Champions           10: (3, 5, 4) -> 5 Loyal Customers
    # floor((F + M) / 2) would make 2 Lost, 3 About To Sleep, 7 At Risk; Python's round
    # (halves to even) 3 About To Sleep, 5 Potential Loyalist, 7 At Risk.
    customers = pd.DataFrame(
        {
            "customer_id": list(range(1, 11)),
            "days_since_last_purchase": [170, 160, 150, 120, 60, 50, 140, 10, 5, 100],
            "purchases": list(range(1, 11)),
            "net_revenue": [10.0, 30.0, 50.0, 20.0, 40.0, 60.0, 90.0, 70.0, 100.0, 80.0],
        }
    )
    out = score_customers(customers).set_index("customer_id")
    assert out[["r", "f", "m", "fm"]].values.tolist() == [
        [1, 1, 1, 1],
        [1, 1, 2, 2],
        [2, 2, 3, 3],
        [3, 2, 1, 2],
        [4, 3, 2, 3],
        [4, 3, 3, 3],
        [2, 4, 5, 5],
        [5, 4, 4, 4],
        [5, 5, 5, 5],
        [3, 5, 4, 5],
    ]
    assert out["segment"].tolist() == [
        "Lost",
        "Hibernating",
        "At Risk",
        "Need Attention",
        "Loyal Customers",
        "Loyal Customers",
        "Can't Lose Them",
        "Champions",
        "Champions",
        "Loyal Customers",
    ]
    assert out["rfm_score"].tolist()[:3] == ["111", "112", "223"]


@pytest.mark.parametrize(
    ("f", "m", "fm"), [(1, 2, 2), (2, 3, 3), (4, 5, 5), (1, 1, 1), (5, 5, 5), (3, 2, 3)]
)
def test_fm_scores_half_up(f, m, fm):
    assert fm_scores(pd.Series([f]), pd.Series([m])).tolist() == [fm]


def test_churned_customers_score_r1_whatever_their_rank():
    # ten buyers, six lapsed (> 180 days, the mart's is_churned). Ranked alone:
    # 1 + (customers less recent) // 2 = 1, 1, 2, 2, 3, 3, 4, 4, 5, 5; the six churned -> 1
    days = [400, 380, 350, 300, 250, 200, 100, 60, 30, 10]
    customers = pd.DataFrame(
        {
            "customer_id": list(range(1, 11)),
            "days_since_last_purchase": days,
            "purchases": [1] * 10,
            "net_revenue": [10.0] * 10,
            "is_churned": [d > 180 for d in days],
        }
    )
    out = score_customers(customers)
    assert out["r"].tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    relative = score_customers(customers.drop(columns="is_churned"))
    assert relative["r"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # one purchase of the same value each: F = M = 1 (everybody is the minimum), FM = 1
    assert out["segment"].tolist() == ["Lost"] * 6 + ["Promising"] * 2 + ["New Customers"] * 2


def test_recency_ties_and_the_most_recent_day():
    # days 365, 200, 40, 5, 5: 0, 1, 2 less recent -> 1, 2, 3; the two at 5 days are the most
    # recent value -> 5 (3 customers below would give 4); 200 and 365 days churned -> 1
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "days_since_last_purchase": [5, 5, 40, 200, 365],
            "purchases": [1, 2, 3, 4, 5],
            "net_revenue": [1.0, 2.0, 3.0, 4.0, 5.0],
            "is_churned": [False, False, False, True, True],
        }
    )
    assert score_customers(customers)["r"].tolist() == [5, 5, 3, 1, 1]
    relative = score_customers(customers.drop(columns="is_churned"))
    assert relative["r"].tolist() == [5, 5, 3, 2, 1]


CHURN_DAYS = 180  # the pipeline's default churn_inactivity_days


def _shop(days: np.ndarray, purchases: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Customers as marts.customers has them; heavy-tailed spends (lognormal order values,
    median about 33, a long right tail)."""
    order_value = rng.lognormal(mean=3.5, sigma=1.0, size=len(days))
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, len(days) + 1),
            "days_since_last_purchase": days.astype("int64"),
            "purchases": purchases.astype("int64"),
            "net_revenue": np.round(order_value * purchases, 2),
            "is_churned": days > CHURN_DAYS,
        }
    )


def half_one_time_shop(n: int = 2000, seed: int = 15) -> pd.DataFrame:
    """Half the buyers bought once, at any time in two years; repeat buyers bought 2 + a
    geometric number of times (mean 3.9) and last bought about 90 days ago on average
    (45% of all buyers churned)."""
    rng = np.random.default_rng(seed)
    once = rng.permutation(n) < n // 2
    purchases = np.where(once, 1, 1 + rng.geometric(0.35, size=n))
    repeat_days = np.minimum(rng.exponential(90.0, size=n), 729).astype(int)
    days = np.where(once, rng.integers(0, 730, size=n), repeat_days)
    return _shop(days, purchases, rng)


def lapsed_shop(n: int = 2000, seed: int = 16) -> pd.DataFrame:
    """80% of buyers last bought more than 180 days ago (85% of them once); the active 20%
    bought once in 40% of cases."""
    rng = np.random.default_rng(seed)
    lapsed = rng.permutation(n) < int(0.8 * n)
    once = rng.random(n) < np.where(lapsed, 0.85, 0.4)
    purchases = np.where(once, 1, 1 + rng.geometric(0.35, size=n))
    days = np.where(
        lapsed,
        rng.integers(CHURN_DAYS + 1, 900, size=n),
        rng.integers(0, CHURN_DAYS + 1, size=n),
    )
    return _shop(days, purchases, rng)


def test_every_segment_is_reached_when_half_the_buyers_bought_once():
    customers = half_one_time_shop()
    assert (customers["purchases"] == 1).mean() == 0.5
    out = score_customers(customers)
    assert (out.loc[customers["purchases"] == 1, "f"] == 1).all()
    counts = out["segment"].value_counts()
    assert set(counts.index) == set(SEGMENTS), set(SEGMENTS) - set(counts.index)
    # more than a fifth churned: R = 1 is exactly the churned
    assert (out["r"] == 1).sum() == customers["is_churned"].sum()


def test_a_mostly_lapsed_shop_is_mostly_lost_or_hibernating():
    customers = lapsed_shop()
    assert customers["is_churned"].mean() == 0.8
    out = score_customers(customers)
    counts = out["segment"].value_counts().reindex(SEGMENTS, fill_value=0)
    asleep = counts["Lost"] + counts["Hibernating"]
    assert counts["Lost"] > 0
    assert asleep > counts.drop(["Lost", "Hibernating"]).max()
    assert counts.idxmax() != "Champions"
    # nobody silent for over 180 days is called a Champion, Promising or New Customer
    active_names = {"Champions", "Promising", "New Customers", "Potential Loyalist"}
    assert not out.loc[customers["is_churned"], "segment"].isin(active_names).any()
    # ranking alone (no churn floor) would: three quarters of the lapsed sit in R = 2..4
    relative = score_customers(customers.drop(columns="is_churned"))
    assert relative.loc[customers["is_churned"], "segment"].isin(active_names).any()


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
    with pytest.raises(ValueError, match="is_churned has nulls"):
        score_customers(
            pd.DataFrame(
                {
                    "customer_id": [1, 2],
                    "days_since_last_purchase": [1, 2],
                    "purchases": [1, 1],
                    "net_revenue": [1.0, 2.0],
                    "is_churned": [False, None],
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


def _summary_in_duckdb(frames: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """segment_summary of per-customer frames, summed by segment_totals_sql in DuckDB."""
    import duckdb

    with duckdb.connect() as con:
        for name, frame in frames.items():
            if frame is not None:
                con.register(name, frame)
        totals = con.execute(
            segment_totals_sql(
                "segments",
                "customers",
                "predictions" if frames.get("predictions") is not None else None,
            )
        ).df()
    return segment_summary(totals)


def test_segment_sums_do_not_depend_on_the_order_of_the_rows():
    """The same customers stored in two orders (a night's delete and append against a fresh
    load) give the same summary to the last bit. As doubles, 0.1 + 0.2 + 0.3 is
    0.6000000000000001 and 0.3 + 0.2 + 0.1 is 0.6."""
    values = [0.1, 0.2, 0.3]
    outs = []
    for order in ([0, 1, 2], [2, 1, 0]):
        ids = [order[i] + 1 for i in range(3)]
        column = [values[i] for i in order]
        outs.append(
            _summary_in_duckdb(
                {
                    "segments": pd.DataFrame({"customer_id": ids, "segment": ["Lost"] * 3}),
                    "customers": pd.DataFrame(
                        {"customer_id": ids, "net_revenue": column, "historical_ltv": column}
                    ),
                    "predictions": pd.DataFrame({"customer_id": ids, "predicted_clv": column}),
                }
            )
        )
    assert outs[0].equals(outs[1])
    assert outs[0].loc[0, "net_revenue"] == 0.6
    assert outs[0].loc[0, "average_historical_ltv"] == 0.6 / 3


def test_segment_summary_shares_and_averages():
    segments = pd.DataFrame(
        {"customer_id": [1, 2, 3, 4], "segment": ["Lost", "Lost", "Champions", "Lost"]}
    )
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],  # 5 bought nothing: no segment, not counted
            "net_revenue": [10.0, 30.0, 60.0, 0.0, 0.0],
            "historical_ltv": [1.0, 3.0, 8.0, 2.0, 0.0],
        }
    )
    # customer 4 has no prediction: the average is over the predicted ones (1 and 2)
    predictions = pd.DataFrame({"customer_id": [1, 2, 3], "predicted_clv": [0.5, 1.5, 9.0]})
    out = _summary_in_duckdb(
        {"segments": segments, "customers": customers, "predictions": predictions}
    ).set_index("segment")
    assert out.index.tolist() == ["Champions", "Lost"]  # the documented segment order
    assert out.columns.tolist() == SUMMARY_COLUMNS[1:]
    assert out.loc["Lost", "customers"] == 3
    assert out.loc["Lost", "share_of_customers"] == pytest.approx(3 / 4)
    assert out.loc["Lost", "net_revenue"] == pytest.approx(40.0)
    assert out.loc["Lost", "share_of_revenue"] == pytest.approx(0.4)
    assert out.loc["Lost", "average_historical_ltv"] == pytest.approx(2.0)  # (1 + 3 + 2) / 3
    assert out.loc["Lost", "average_predicted_clv"] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    assert out.loc["Champions", "average_predicted_clv"] == pytest.approx(9.0)
    assert out["share_of_revenue"].sum() == pytest.approx(1.0)


def test_segment_summary_without_predictions_or_revenue():
    segments = pd.DataFrame({"customer_id": [1, 2], "segment": ["New Customers", "Lost"]})
    customers = pd.DataFrame(
        {"customer_id": [1, 2], "net_revenue": [0.0, 0.0], "historical_ltv": [0.0, 0.0]}
    )
    out = _summary_in_duckdb({"segments": segments, "customers": customers}).set_index("segment")
    assert out.index.tolist() == ["New Customers", "Lost"]
    assert out["average_predicted_clv"].isna().all()
    assert out["share_of_revenue"].tolist() == [0.0, 0.0]  # no revenue: no share, no NaN
    assert out["share_of_customers"].tolist() == [0.5, 0.5]


@pytest.mark.parametrize("side", ["customers", "predictions"])
def test_segment_summary_refuses_a_customer_twice(side):
    """A customer on two rows of a joined input would be counted twice (or its revenue would):
    refused, naming the segment. (Two rows of segments are every_buyer_has_one_segment's.)"""
    frames = {
        "segments": pd.DataFrame({"customer_id": [1, 2], "segment": ["Lost", "Champions"]}),
        "customers": pd.DataFrame(
            {"customer_id": [1, 2], "net_revenue": [10.0, 30.0], "historical_ltv": [1.0, 3.0]}
        ),
        "predictions": pd.DataFrame({"customer_id": [1, 2], "predicted_clv": [0.5, 1.5]}),
    }
    frames[side] = pd.concat([frames[side], frames[side].iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"counted twice in segment\(s\) \['Lost'\]"):
        _summary_in_duckdb(frames)


def test_segment_summary_refuses_unknown_or_repeated_segments():
    totals = pd.DataFrame(
        {
            "segment": ["Lost"],
            "customers": [1],
            "segment_rows": [1],
            "net_revenue": [1.0],
            "historical_ltv_sum": [1.0],
            "historical_ltv_count": [1],
            "predicted_clv_sum": [1.0],
            "predicted_clv_count": [1],
        }
    )
    with pytest.raises(ValueError, match="unknown segment"):
        segment_summary(totals.assign(segment="Sleepy"))
    with pytest.raises(ValueError, match="one row of totals"):
        segment_summary(pd.concat([totals, totals]))


def test_rfm_score_texts_and_segments_follow_the_scores():
    """Each customer's rfm_score spells its own R, F and M, and its segment is the grid's cell
    of its R and FM: checked cell by cell against the grid, for 125 customers who between them
    hold every combination of scores."""
    import itertools

    combos = list(itertools.product(range(1, 6), repeat=3))
    # R from recency ranks, F and M from ranks: customer i gets rank r (or f, m) among 125 by
    # giving each score a value block of 25 (5 x 5 of the other two scores)
    rows = []
    for i, (r, f, m) in enumerate(combos):
        rows.append(
            {
                "customer_id": i + 1,
                "days_since_last_purchase": 1000 - 100 * r - (i % 25) * 0.01,
                "purchases": 10 * f + (i % 5) * 0.01,
                "net_revenue": 100.0 * m + (i // 5 % 5) * 0.01,
            }
        )
    out = score_customers(pd.DataFrame(rows)).set_index("customer_id")
    for i, (r, f, m) in enumerate(combos):
        row = out.loc[i + 1]
        assert (row["r"], row["f"], row["m"]) == (r, f, m)
        assert row["rfm_score"] == f"{r}{f}{m}"
        assert row["segment"] == SEGMENT_GRID[r][(f + m + 1) // 2 - 1]


def test_readme_shows_the_segment_grid_of_the_code():
    from ltv_pipeline.settings import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    for r in (5, 4, 3, 2, 1):
        assert f"| R = {r} | " + " | ".join(SEGMENT_GRID[r]) + " |" in readme


def test_segment_assets_read_purchases_and_stamp_the_as_of_date(tmp_path):
    """The assets against a tiny warehouse: marts.customers with ``purchases`` and
    ``is_churned``, the one-row reporting window; both marts carry its as_of_date."""
    import datetime

    import dagster as dg
    import duckdb

    from ltv_pipeline.defs.analytics.rfm import customer_segments, segment_summary_asset
    from ltv_pipeline.defs.resources import RawFiles, ReportsDir
    from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse

    path = str(tmp_path / "w.duckdb")
    with duckdb.connect(path) as con:
        con.execute("create schema marts; create schema intermediate")
        con.execute(
            "create table intermediate.int_reporting_window as "
            "select date '2026-01-31' as as_of_date"
        )
        # ids 1-5: days 400 (churned), 200 (churned), 90, 30, 5; a non-buyer (id 6) is left out
        con.execute(
            """
            create table marts.customers as select * from (values
                (1, 400, 1, 20.00, true, true, 10.0),
                (2, 200, 2, 60.00, true, true, 30.0),
                (3, 90, 4, 150.00, false, true, 70.0),
                (4, 30, 6, 700.00, false, true, 300.0),
                (5, 5, 9, 900.00, false, true, 400.0),
                (6, null, 0, 0.00, false, false, 0.0)
            ) as t(customer_id, days_since_last_purchase, purchases, net_revenue, is_churned,
                   has_purchased, historical_ltv)
            """
        )
        con.execute(
            "create table marts.customer_predictions as "
            "select customer_id, 1.0 * customer_id as predicted_clv from marts.customers"
        )
    warehouse = DuckDBWarehouse(path=path)
    customer_segments(dg.build_asset_context(), warehouse=warehouse)
    segment_summary_asset(
        warehouse=warehouse,
        raw_files=RawFiles(directory=str(tmp_path)),
        reports=ReportsDir(directory=str(tmp_path / "reports")),
    )
    assert (tmp_path / "reports" / "segment_summary.png").read_bytes()[:4] == b"\x89PNG"
    with duckdb.connect(path, read_only=True) as con:
        segments = con.execute("select * from marts.customer_segments order by 1").df()
        summary = con.execute("select * from marts.segment_summary").df()
    # five distinct values each: the score is the rank; R of the two churned -> 1
    assert segments["customer_id"].tolist() == [1, 2, 3, 4, 5]
    assert segments["rfm_score"].tolist() == ["111", "122", "333", "444", "555"]
    assert segments["segment"].tolist() == [
        "Lost",
        "Hibernating",
        "Need Attention",
        "Champions",
        "Champions",
    ]
    as_of = datetime.date(2026, 1, 31)
    assert segments.columns[1] == "as_of_date" and summary.columns[1] == "as_of_date"
    assert (segments["as_of_date"].dt.date == as_of).all()
    assert (summary["as_of_date"].dt.date == as_of).all()
    assert summary.set_index("segment")["customers"].to_dict() == {
        "Champions": 2,
        "Need Attention": 1,
        "Hibernating": 1,
        "Lost": 1,
    }


def _warehouse_segments(con, customers: str) -> pd.DataFrame:
    """The customer_segments asset's path: value ranks in the warehouse, distinct values and
    cells scored in Python, every buyer joined in the warehouse."""
    from ltv_pipeline.warehouse.duckdb import DuckDBSession

    db = DuckDBSession(con)
    (buyers,) = db.row(f"select count(*) from {customers} where has_purchased")
    inputs = {
        f"_rfm_{s}_scores": score_values(db.frame(measure_ranks_sql(customers, s)), buyers)
        for s in MEASURES
    }
    inputs["_rfm_cells"] = segment_cells()
    sql = segments_sql(customers, {s: f"_rfm_{s}_scores" for s in MEASURES}, "_rfm_cells")
    rows = db.replace_table_query("main.segments", sql, inputs)
    got = db.frame("select * from main.segments order by customer_id")
    assert rows == len(got)
    return got


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warehouse_segments_equal_the_in_memory_scores(seed):
    """The asset's path (:func:`_warehouse_segments`) gives each customer what
    score_customers gives from pandas ranks, on a shop of heavy ties: most buyers bought once,
    revenue on a few price points, recency in a few days, a churned third, and non-buyers the
    SQL must leave out. Values scored against their own count instead of all buyers, a rank
    that counts ties, or a cell keyed without the churn flag would differ."""
    import duckdb

    rng = np.random.default_rng(seed)
    n = 503
    customers = pd.DataFrame(
        {
            "customer_id": rng.permutation(np.arange(10_000, 10_000 + n)).astype(str),
            "days_since_last_purchase": rng.choice([0, 3, 3, 40, 200, 400], n),
            "purchases": rng.choice([1, 1, 1, 1, 2, 3, 7], n),
            "net_revenue": rng.choice([9.99, 19.99, 19.99, 250.0, 1234.5], n),
            "is_churned": rng.random(n) < 0.3,
            "has_purchased": rng.random(n) < 0.9,
        }
    )
    buyers = customers[customers["has_purchased"]]
    expected = score_customers(buyers.drop(columns="has_purchased")).reset_index(drop=True)
    with duckdb.connect() as con:
        con.register("customers", customers)
        got = _warehouse_segments(con, "customers")
    assert list(got.columns) == SEGMENT_COLUMNS
    for column in ("rfm_score", "segment"):
        got[column] = got[column].astype(expected[column].dtype)
    pd.testing.assert_frame_equal(got, expected)
    assert got["f"].min() == 1 and got["f"].max() == 5  # ties at both ends, pinned
    assert got["r"].min() == 1 and got["r"].max() == 5


def test_segment_cells_by_hand():
    """A few of the 250 cells, from the module's rules: FM = (F + M) / 2 half up, churned R = 1."""
    cells = segment_cells().set_index(["r_score", "f", "m", "is_churned"])
    assert len(cells) == 250
    assert cells.index.is_unique

    def cell(r, f, m, churned):
        row = cells.loc[(r, f, m, churned)]
        return int(row["r"]), int(row["fm"]), row["rfm_score"], row["segment"]

    assert cell(5, 5, 4, False) == (5, 5, "554", "Champions")  # (5 + 4) / 2 = 4.5 -> 5
    assert cell(5, 5, 4, True) == (1, 5, "154", "Can't Lose Them")
    assert cell(4, 1, 2, False) == (4, 2, "412", "Potential Loyalist")  # 1.5 -> 2
    assert cell(3, 1, 1, True) == (1, 1, "111", "Lost")
    assert cell(2, 3, 2, False) == (2, 3, "232", "At Risk")  # 2.5 -> 3


def test_a_buyer_with_a_null_measure_is_refused_on_the_warehouse_path():
    """DuckDB sorts a null last (a top rank), Spark first: neither may score it."""
    import duckdb

    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "days_since_last_purchase": [5.0, None, 40.0],
            "purchases": [1, 2, 3],
            "net_revenue": [10.0, 20.0, 30.0],
            "is_churned": [False, False, False],
            "has_purchased": [True, True, True],
        }
    )
    with duckdb.connect() as con:
        con.register("customers", customers)
        recency = con.execute(measure_ranks_sql("customers", "r")).df()
        frequency = con.execute(measure_ranks_sql("customers", "f")).df()
    with pytest.raises(ValueError, match="cannot score null values"):
        score_values(recency, 3)
    assert score_values(frequency, 3)["score"].tolist() == [1, 2, 5]  # 0, 1 below; the top


def test_the_blocking_segment_check_catches_what_the_summary_no_longer_counts(tmp_path):
    """segment_totals_sql leaves a customer on two rows of customer_segments to the blocking
    check every_buyer_has_one_segment, which runs before segment_summary: it must catch one,
    as well as a buyer without a segment, a segment for somebody who never bought, and a null
    segment (the summary's join would drop it)."""
    import duckdb

    from ltv_pipeline.defs.analytics.rfm import every_buyer_has_one_segment
    from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse

    assert all(spec.blocking for spec in every_buyer_has_one_segment.check_specs)
    path = tmp_path / "warehouse.duckdb"
    clean = "(1, 'Lost', 1, 1, 1), (2, 'Champions', 5, 5, 5)"
    cases = {
        clean: "",
        clean + ", (2, 'Lost', 1, 1, 1)": "1 duplicate customers",
        "(1, 'Lost', 1, 1, 1)": "1 buyers without a segment",
        clean + ", (3, 'Lost', 1, 1, 1)": "1 segments for non-buyers",
        "(1, 'Lost', 1, 1, 1), (2, NULL, 5, 5, 5)": "1 unknown segment names",
        "(1, 'Lost', 0, 1, 1), (2, 'Champions', 5, 5, 6)": "2 scores outside 1-5",
        # both sides of the join at once: buyer 2 unsegmented, non-buyer 3 segmented
        "(1, 'Lost', 1, 1, 1), (3, 'Lost', 1, 1, 1)": (
            "1 buyers without a segment; 1 segments for non-buyers"
        ),
        # customer 4 is nobody's buyer (has_purchased is null): a segment for 4 is one too many
        clean + ", (4, 'Lost', 1, 1, 1)": "1 segments for non-buyers",
    }
    for rows, problem in cases.items():
        with duckdb.connect(str(path)) as con:
            con.execute("create schema if not exists marts")
            con.execute(
                "create or replace table marts.customers as select * from "
                "(values (1, true), (2, true), (3, false), (4, null)) "
                "as t(customer_id, has_purchased)"
            )
            con.execute(
                "create or replace table marts.customer_segments as select * from "
                f"(values {rows}) as t(customer_id, segment, r, f, m)"
            )
        result = every_buyer_has_one_segment(warehouse=DuckDBWarehouse(path=str(path)))
        assert result.passed == (not problem), rows
        if problem:
            assert result.description == problem


def _joins_without_buyers(plan: dict) -> list[str]:
    """The conditions of joins in ``plan`` (DuckDB's JSON plan) with no buyer below them."""

    def scans_customers(node: dict) -> bool:
        table = node.get("extra_info", {}).get("Table", "")
        return table.endswith("marts.customers") or any(
            scans_customers(child) for child in node.get("children", [])
        )

    found = []
    if "JOIN" in str(plan.get("name", "")) and not scans_customers(plan):
        found.append(str(plan.get("extra_info", {}).get("Conditions")))
    for child in plan.get("children", []):
        found += _joins_without_buyers(child)
    return found


def test_segments_join_no_score_table_to_another_before_a_buyer():
    """The cells and the three score tables are joined only to buyers: joined column by
    column, the cells linked the score tables to each other and DuckDB joined them first
    (every cell with every value of each score), which at 100M orders filled 40 GB of disk.
    The shop has many distinct revenues, as a large one does, which is what made DuckDB
    choose that order."""
    con = duckdb.connect()
    con.execute(
        "create schema marts; create table marts.customers as select i as customer_id, "
        "true as has_purchased, (i % 700)::bigint as days_since_last_purchase, "
        "(1 + i % 60)::bigint as purchases, "
        "((i * 7919) % 1600000)::decimal(18, 2) / 100 as net_revenue, "
        "(i % 3 = 0) as is_churned from range(300000) as t(i)"
    )
    for score in rfm.MEASURES:
        ranks = con.execute(rfm.measure_ranks_sql("marts.customers", score)).df()
        con.register(f"_rfm_{score}_scores", rfm.score_values(ranks, 300_000))
    con.register("_rfm_cells", rfm.segment_cells())
    sql = rfm.segments_sql(
        "marts.customers", {score: f"_rfm_{score}_scores" for score in rfm.MEASURES}, "_rfm_cells"
    )
    (plan,) = json.loads(con.execute(f"explain (format json) {sql}").fetchall()[0][1])
    assert _joins_without_buyers(plan) == []
    (rows,) = con.execute(f"select count(*) from ({sql})").fetchone()
    assert rows == 300_000
