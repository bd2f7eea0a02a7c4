"""churn_monthly on a shop whose customers share every spell, against counts worked out by hand.

``churn_monthly`` counts spells by shape (the months a spell starts, keeps the customer active
and churns), weighting each shape by how many spells have it. In the hand fixture
(``test_marts_fixture.py``) every reactivation is alone in its shape, so a branch weighted by 1
instead of by the shape's count would still pass there. Here every shape is shared: a branch
that forgot the weight would count 1 where the hand counts 2 or 3.

Three customers, all acquired in January 2025 (paid_search, US), churn after 60 days without a
purchase, as_of_date 2025-06-30. Active as of day D = last purchase at most 60 days before D,
so a customer churns 61 days after their last purchase.
  A  Jan 10, Apr 15: churns Mar 12, back Apr 15, churns Jun 15
  B  the same days as A (other amounts)
  C  Jan 20: churns Mar 22

Month: active at start, new, churned, reactivated, active at end.
  Jan  0 3 0 0 3   A B C new
  Feb  3 0 0 0 3   Feb 28 is 49 and 39 days after their purchases
  Mar  3 0 3 0 0   A B (Mar 12) and C (Mar 22) churn
  Apr  0 0 0 2 2   A B back
  May  2 0 0 0 2   May 31 is 46 days after Apr 15
  Jun  2 0 2 0 0   A B churn Jun 15
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from tests.helpers import run_on_files

CUSTOMERS = """customer_id,email,signup_date,acquisition_channel,country
1,a@x.com,2025-01-01,paid_search,US
2,b@x.com,2025-01-01,paid_search,US
3,c@x.com,2025-01-01,paid_search,US
"""

ORDERS = """order_id,customer_id,ordered_at,status,amount,cost,currency
11,1,2025-01-10T09:00:00Z,completed,100,60,USD
12,1,2025-04-15T09:00:00Z,completed,50,20,USD
21,2,2025-01-10T12:00:00Z,completed,70,30,USD
22,2,2025-04-15T18:00:00Z,completed,90,40,USD
31,3,2025-01-20T09:00:00Z,completed,40,20,USD
"""

SPEND = """date,channel,spend
2025-01-03,paid_search,100
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared_spells")
    result = run_on_files(
        root,
        CUSTOMERS,
        ORDERS,
        SPEND,
        as_of_date="2025-06-30",
        dbt_vars={"churn_inactivity_days": 60},
    )
    # three customers cannot be fitted: the CLV checks warn; the marts are all built
    built = {
        e.asset_key.path[-1]
        for e in result.all_events
        if e.is_step_materialization and e.asset_key is not None
    }
    assert {"churn_monthly", "customers"} <= built
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        yield con


def test_churn_monthly_weights_every_shared_spell(warehouse):
    got = warehouse.execute(
        "select month_start, active_at_start, new_customers, churned_customers, "
        "reactivated_customers, active_at_end from marts.churn_monthly order by month_start"
    ).fetchall()
    D = dt.date
    assert got == [
        (D(2025, 1, 1), 0, 3, 0, 0, 3),
        (D(2025, 2, 1), 3, 0, 0, 0, 3),
        (D(2025, 3, 1), 3, 0, 3, 0, 0),
        (D(2025, 4, 1), 0, 0, 0, 2, 2),
        (D(2025, 5, 1), 2, 0, 0, 0, 2),
        (D(2025, 6, 1), 2, 0, 2, 0, 0),
    ]


def test_the_customers_mart_agrees_on_who_is_churned(warehouse):
    # all three are churned on Jun 30 (A and B since Jun 15, C since Mar 22), which is what
    # the June row's active_at_end of 0 says
    got = warehouse.execute(
        "select customer_id, purchases, is_churned, days_since_last_purchase "
        "from marts.customers order by customer_id"
    ).fetchall()
    assert got == [(1, 2, True, 76), (2, 2, True, 76), (3, 1, True, 161)]
