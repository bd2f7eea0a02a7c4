"""Revenue deciles, worked out by hand."""

import pandas as pd
import pytest

from ltv_pipeline.analytics.concentration import DECILE_COLUMNS, revenue_deciles


def test_deciles_by_hand():
    # 20 customers with revenue 1..20: decile 1 holds the two best (20 + 19 = 39) of 210
    customers = pd.DataFrame({"customer_id": range(1, 21), "net_revenue": range(1, 21)})
    out = revenue_deciles(customers)
    assert list(out.columns) == DECILE_COLUMNS
    assert out["decile"].tolist() == list(range(1, 11))
    assert out["customers"].tolist() == [2] * 10
    assert out["net_revenue"].tolist() == [39, 35, 31, 27, 23, 19, 15, 11, 7, 3]
    assert out["share_of_revenue"].iloc[0] == pytest.approx(39 / 210)
    assert out["cumulative_share_of_revenue"].iloc[-1] == pytest.approx(1.0)
    assert out["min_net_revenue"].iloc[0] == 19 and out["max_net_revenue"].iloc[1] == 18


def test_uneven_sizes_and_ties_do_not_depend_on_row_order():
    customers = pd.DataFrame({"customer_id": [5, 3, 9, 1, 7], "net_revenue": [10, 10, 10, 2, 0]})
    out = revenue_deciles(customers, groups=2)
    # ranks: (3,10) (5,10) (9,10) (1,2) (7,0) -> rank*2//5+1 = 1,1,1,2,2
    assert out["customers"].tolist() == [3, 2]
    assert out["net_revenue"].tolist() == [30, 2]
    shuffled = revenue_deciles(customers.sample(frac=1, random_state=3), groups=2)
    pd.testing.assert_frame_equal(out, shuffled)


def test_fewer_customers_than_groups_gives_fewer_rows():
    out = revenue_deciles(pd.DataFrame({"customer_id": [1, 2, 3], "net_revenue": [3.0, 2, 1]}))
    assert out["decile"].tolist() == [1, 4, 7]
    assert out["share_of_customers"].sum() == pytest.approx(1)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"customer_id": [1]}), "lacks column"),
        (pd.DataFrame({"customer_id": [1], "net_revenue": [-1.0]}), "non-negative"),
        (pd.DataFrame({"customer_id": [1], "net_revenue": [None]}), "non-null"),
    ],
)
def test_bad_input_is_refused(frame, message):
    with pytest.raises(ValueError, match=message):
        revenue_deciles(frame)


def test_a_tie_across_a_group_boundary_needs_no_customer_key():
    # four customers of 10 and one of 1 in 3 groups: position i -> group i * 3 // 5 + 1, so
    # 1, 1, 2, 2, 3;
    # the tied block straddles the first boundary, and only revenue is read
    out = revenue_deciles(pd.DataFrame({"net_revenue": [10.0, 1.0, 10.0, 10.0, 10.0]}), groups=3)
    assert out["customers"].tolist() == [2, 2, 1]
    assert out["net_revenue"].tolist() == [20.0, 20.0, 1.0]
    assert out["min_net_revenue"].tolist() == [10.0, 10.0, 1.0]
    assert out["max_net_revenue"].tolist() == [10.0, 10.0, 1.0]
    assert out["cumulative_share_of_revenue"].tolist() == pytest.approx([20 / 41, 40 / 41, 1.0])
