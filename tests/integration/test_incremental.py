"""Incremental nights (raw files by watermark, orders by change capture) equal a full refresh
and a fresh load."""

from __future__ import annotations

import json
import re
import shutil

import dagster as dg
import duckdb
import pytest

from ltv_pipeline import dbt_runner, settings
from ltv_pipeline.sample.generate import generate_shop
from tests.helpers import materialization_metadata, run_pipeline
from tests.integration.test_marts_fixture import CUSTOMERS, ORDERS, SPEND


def _snapshot(path: str) -> dict[str, list[tuple]]:
    with duckdb.connect(path, read_only=True) as con:
        return {
            table: con.execute(f"select * from {table} order by all").fetchall()
            for table in (
                "marts.fct_orders",
                "marts.customers",
                "marts.churn_monthly",
                "marts.ltv_summary",
                "marts.cac_monthly",
                "marts.cohort_activity",
                "marts.ltv_cac_by_channel",
                "intermediate.int_customer_purchases_accumulated",
                "intermediate.int_customer_purchases_summarized",
            )
        }


def _fixture_drop(workdir):
    """The hand fixture's files in the raw folder."""
    raw = workdir / "raw"
    (raw / "customers.csv").write_text(CUSTOMERS)
    (raw / "orders.csv").write_text(ORDERS)
    (raw / "marketing_spend.csv").write_text(SPEND)
    return raw


@pytest.fixture(scope="module")
def first_night(tmp_path_factory):
    """The hand fixture after its first full run, built once for the module: each test starts
    from a copy of its folder (raw files, warehouse, last good night, published snapshot)."""
    root = tmp_path_factory.mktemp("first_night")
    (root / "raw").mkdir()
    _fixture_drop(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(settings.DATA_DIR_ENV, str(root))
        mp.setenv(settings.DUCKDB_ENV, str(root / "warehouse.duckdb"))
        assert run_pipeline().success
    return root


def _after_first_night(workdir, first_night):
    """``workdir`` as the first run left ``first_night``; its raw folder."""
    shutil.copytree(first_night, workdir, symlinks=True, dirs_exist_ok=True)
    return workdir / "raw"


def test_incremental_night_equals_full_refresh(workdir, first_night):
    raw = _after_first_night(workdir, first_night)
    warehouse = str(workdir / "warehouse.duckdb")
    before = _snapshot(warehouse)["marts.fct_orders"]

    # The next night's drop: two new orders, one of them late (dated two days before the
    # newest), and a recent order changed from completed to refunded.
    changed = ORDERS.replace(
        "406,4,2025-06-20T09:00:00Z,completed,30,10,USD",
        "406,4,2025-06-20T09:00:00Z,refunded,30,10,USD",
    )
    changed += "1401,5,2025-06-21T10:00:00Z,completed,45,20,USD\n"
    changed += "1402,12,2025-06-18T10:00:00Z,completed,15,,USD\n"
    (raw / "orders.csv").write_text(changed)

    incremental = run_pipeline()
    assert incremental.success
    nightly = _snapshot(warehouse)
    assert len(nightly["marts.fct_orders"]) == len(before) + 2
    refunded = [r for r in nightly["marts.fct_orders"] if r[0] == 406]
    assert refunded[0][4] == "refunded"

    assert run_pipeline(full_refresh=True).success
    assert _snapshot(warehouse) == nightly


def test_customer_totals_are_updated_only_for_customers_with_new_orders(workdir, first_night):
    """The per-customer purchase totals behind the CLV summary are updated from the night's
    orders, not recomputed from all history: a row of a customer without new orders is left as
    it is (shown by marking one), while the customers in the lookback window are recomputed
    from all their orders, and a full refresh recomputes everyone."""
    raw = _after_first_night(workdir, first_night)
    warehouse = str(workdir / "warehouse.duckdb")
    table = "intermediate.int_customer_purchases_accumulated"
    query = (
        f"select customer_id, purchases, net_revenue from {table} where customer_id in (3, 4, 5)"
    )
    with duckdb.connect(warehouse) as con:
        assert sorted(con.execute(query).fetchall()) == [(3, 3, 200), (4, 6, 180), (5, 1, 120)]
        # a marker no computation would produce, on customer 3, whose last order is May 1
        con.execute(f"update {table} set net_revenue = 999 where customer_id = 3")

    # the night: customer 5 buys again, and customer 4's Jun 20 order is refunded
    changed = ORDERS.replace(
        "406,4,2025-06-20T09:00:00Z,completed,30,10,USD",
        "406,4,2025-06-20T09:00:00Z,refunded,30,10,USD",
    )
    changed += "1401,5,2025-06-21T10:00:00Z,completed,45,20,USD\n"
    (raw / "orders.csv").write_text(changed)
    assert run_pipeline().success
    with duckdb.connect(warehouse, read_only=True) as con:
        assert sorted(con.execute(query).fetchall()) == [(3, 3, 999), (4, 5, 150), (5, 2, 165)]

    assert run_pipeline(full_refresh=True).success
    with duckdb.connect(warehouse, read_only=True) as con:
        assert sorted(con.execute(query).fetchall()) == [(3, 3, 200), (4, 5, 150), (5, 2, 165)]


def test_customer_windows_recompute_the_touched_customers_in_a_month_and_all_in_a_new_one(
    workdir, first_night
):
    """The customer windows depend on as_of_date only through its month, the window's months
    and the churn setting: a night in the same month recomputes the touched customers alone
    (an untouched customer's marked row stays), and any night where one of those moved
    recomputes everyone (the mark goes), as does a night after one the model missed. Values
    worked out from the fixture's orders by hand; the default window is the 12 months before
    the as-of month's, and the default churn setting 180 days."""
    raw = _after_first_night(workdir, first_night)
    warehouse = str(workdir / "warehouse.duckdb")
    table = "intermediate.int_customer_windows_aggregated"
    query = (
        "select customer_id, purchases, net_revenue, window_purchases, window_net_revenue, "
        f"window_active_months from {table} where customer_id in (2, 3, 5) order by customer_id"
    )

    def night(orders: str | None = None, **kwargs) -> list[tuple]:
        if orders is not None:
            (raw / "orders.csv").write_text(orders)
        assert run_pipeline(**kwargs).success
        with duckdb.connect(warehouse, read_only=True) as con:
            return con.execute(query).fetchall()

    def mark_customer_3() -> None:
        with duckdb.connect(warehouse) as con:
            con.execute(f"update {table} set net_revenue = 999 where customer_id = 3")

    # As of 2025-07-03, window Jul 2024 - Jun 2025. Customer 2 bought Jan 5 and Feb 5 (its Mar
    # order refunded): active Jan to Jun with 180 days (listed to the as-of month), Jan to Apr
    # with 60 (Feb 5 + 61 days lapses in April). Customer 3: 60 + 40 in Feb, 100 on May 1,
    # active Feb to Jun. Customer 5: 120 on Jun 5.
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute(query).fetchall() == [
            (2, 2, 200, 2, 200, 6),
            (3, 3, 200, 3, 200, 5),
            (5, 1, 120, 1, 120, 1),
        ]
    mark_customer_3()

    # the same month (as of Jul 4): customer 5 buys 45, after the window; 3 keeps its mark
    orders = ORDERS + "1401,5,2025-07-04T10:00:00Z,completed,45,20,USD\n"
    assert night(orders) == [
        (2, 2, 200, 2, 200, 6),
        (3, 3, 999, 3, 200, 5),
        (5, 2, 165, 1, 120, 1),
    ]

    # a dbt build that leaves the windows out revalues the orders without a cost at a margin
    # rate of 0.5 (customer 1's Jun 20 order of 80: 0.35 gave 28); the next night at that
    # rate, with customer 5's Jul 5 order, finds only that order new, yet must recompute
    # customer 1 too: the windows missed a capture, so everyone is recomputed
    margin = {"default_margin_rate": 0.5}
    select = ["--select", "int_orders_valued+", "--exclude", "int_customer_windows_aggregated+"]
    assert dbt_runner.run_dbt(["build", *select, "--vars", json.dumps(margin)]) == 0
    orders += "1402,5,2025-07-05T10:00:00Z,completed,5,2,USD\n"
    assert night(orders, dbt_vars=margin) == [
        (2, 2, 200, 2, 200, 6),
        (3, 3, 200, 3, 200, 5),
        (5, 3, 170, 1, 120, 1),
    ]
    with duckdb.connect(warehouse, read_only=True) as con:
        # (100 - 60) + (50 - 20) + 80 x 0.5
        assert con.execute(
            f"select gross_margin, window_gross_margin from {table} where customer_id = 1"
        ).fetchall() == [(110, 110)]
    mark_customer_3()

    # the same day with another churn setting: everyone (customer 2 now lapses in April)
    churn = {"churn_inactivity_days": 60}
    assert night(dbt_vars=churn) == [
        (2, 2, 200, 2, 200, 4),
        (3, 3, 200, 3, 200, 5),
        (5, 3, 170, 1, 120, 1),
    ]
    mark_customer_3()

    # another lookback (6 months: Jan - Jun 2025), the window's start alone moving: everyone
    assert night(dbt_vars={**churn, "ltv_lookback_months": 6}) == [
        (2, 2, 200, 2, 200, 4),
        (3, 3, 200, 3, 200, 5),
        (5, 3, 170, 1, 120, 1),
    ]
    assert night(dbt_vars=churn)[1] == (3, 3, 200, 3, 200, 5)
    mark_customer_3()

    # a new month (as of Aug 1): everyone; the window, Aug 2024 - Jul 2025, takes in July
    orders += "1403,5,2025-08-01T10:00:00Z,completed,10,5,USD\n"
    assert night(orders, dbt_vars=churn) == [
        (2, 2, 200, 2, 200, 4),
        (3, 3, 200, 3, 200, 6),
        (5, 4, 180, 3, 170, 2),
    ]
    mark_customer_3()

    # a month's last day (as of Aug 31, customer 13 buying): the window's end moves to Sep 1
    orders += "1304,13,2025-08-31T10:00:00Z,completed,20,5,USD\n"
    assert night(orders, dbt_vars=churn) == [
        (2, 2, 200, 2, 200, 4),
        (3, 3, 200, 3, 200, 6),
        (5, 4, 180, 4, 180, 3),
    ]
    with duckdb.connect(warehouse, read_only=True) as con:
        nightly = con.execute(f"select * from {table} order by all").fetchall()
    assert run_pipeline(full_refresh=True, dbt_vars=churn).success
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute(f"select * from {table} order by all").fetchall() == nightly

    # a backfill in the night's month leaves its own rows (without the Aug 5 order); the
    # night after it, with no new order, recomputes everyone rather than keep them
    orders += "1405,5,2025-08-05T10:00:00Z,completed,7,3,USD\n"
    (raw / "orders.csv").write_text(orders)
    customer_5 = f"select purchases, net_revenue from {table} where customer_id = 5"
    for as_of, expected in ((None, (5, 187)), ("2025-08-02", (4, 180)), (None, (5, 187))):
        assert run_pipeline(as_of_date=as_of, dbt_vars=churn).success
        with duckdb.connect(warehouse, read_only=True) as con:
            assert con.execute(customer_5).fetchall() == [expected], as_of


def test_tenure_table_is_rebuilt_only_when_a_complete_month_changed(workdir, first_night):
    """The tenure life table reads complete months alone: a night whose orders all fall in the
    as-of month keeps it (a marked row stays), while a new churn setting, a late order dated
    in a complete month, a buyer's channel changed and a new month each rebuild it (the mark
    goes). Values by hand: with 60 churn days the complete months Jan - Jun 2025 give
    test_marts_fixture's life table (the July orders of customers 10 and 13 change no complete
    month)."""
    raw = _after_first_night(workdir, first_night)
    warehouse = str(workdir / "warehouse.duckdb")
    table = "intermediate.int_tenure_months_aggregated"
    churn = {"churn_inactivity_days": 60}

    def night(orders: str | None = None, customers: str | None = None, **kwargs):
        if orders is not None:
            (raw / "orders.csv").write_text(orders)
        if customers is not None:
            (raw / "customers.csv").write_text(customers)
        assert run_pipeline(dbt_vars=churn, **kwargs).success
        with duckdb.connect(warehouse, read_only=True) as con:
            return {
                value: con.execute(
                    "select tenure_month, exposed_customers, active_customers, "
                    f"churned_customers from {table} where dimension_value = ? "
                    "order by tenure_month",
                    [value],
                ).fetchall()
                for value in ("all", "organic_search")
            }

    def mark() -> None:
        with duckdb.connect(warehouse) as con:
            con.execute(
                f"update {table} set exposed_customers = 999 "
                "where dimension = 'overall' and tenure_month = 0"
            )

    # a new churn setting (the first night ran with 180 days): rebuilt
    hand = [(0, 10, 10, 0), (1, 9, 9, 0), (2, 8, 3, 5), (3, 7, 4, 1), (4, 7, 4, 0), (5, 6, 2, 1)]
    # customer 9 (Apr cohort) active at the end of Apr and May, churned in Jun; customer 12
    # (May cohort) active at the end of May and Jun
    organic = [(0, 2, 2, 0), (1, 2, 2, 0), (2, 1, 0, 1)]
    assert night() == {"all": hand, "organic_search": organic}
    mark()

    # customer 5 buys on Jul 4, in the as-of month: kept
    orders = ORDERS + "1401,5,2025-07-04T10:00:00Z,completed,45,20,USD\n"
    assert night(orders)["all"][0] == (0, 999, 10, 0)

    # a late order of customer 6 (Jan cohort) dated Mar 5, before its lapse on Mar 13: it now
    # stays active to the end of Apr and churns in May (tenure months 2-4): rebuilt
    orders += "1402,6,2025-03-05T10:00:00Z,completed,25,10,USD\n"
    late = [(0, 10, 10, 0), (1, 9, 9, 0), (2, 8, 4, 4), (3, 7, 5, 1), (4, 7, 4, 1), (5, 6, 2, 1)]
    assert night(orders) == {"all": late, "organic_search": organic}
    mark()

    # customer 6's channel changes from email to organic_search, no order changes: rebuilt,
    # and the Jan cohort's customer 6 joins the organic rows
    customers = CUSTOMERS.replace(
        "6,c6@x.com,2025-01-01,email,US", "6,c6@x.com,2025-01-01,organic_search,US"
    )
    assert night(customers=customers) == {
        "all": late,
        "organic_search": [
            (0, 3, 3, 0),
            (1, 3, 3, 0),
            (2, 2, 1, 1),
            (3, 1, 1, 0),
            (4, 1, 0, 1),
            (5, 1, 0, 0),
        ],
    }
    mark()

    # customer 4's Apr 20 order is deleted from the file: rebuilt (the mark goes), with the
    # same counts, since the Mar 20 purchase keeps customer 4 active to May 19 and May 20 buys
    orders = orders.replace("404,4,2025-04-20T09:00:00Z,completed,30,10,USD\n", "")
    assert night(orders)["all"] == late
    mark()

    # customer 6's March order is refunded and the orders rebuilt by a full refresh that
    # leaves the tenure table out; the next night's only new order is in the as-of month, yet
    # the table must be rebuilt (it missed a capture): customer 6 churns in March again
    with duckdb.connect(warehouse) as con:
        # the raw layer's clean orders are a view of its row store
        con.execute("update raw._rows_orders set t_status = 'refunded' where t_order_id = 1402")
    select = ["--select", "int_orders_valued+", "--exclude", "int_tenure_months_aggregated+"]
    args = ["build", "--full-refresh", *select, "--vars", json.dumps(churn)]
    assert dbt_runner.run_dbt(args) == 0
    orders = orders.replace(
        "1402,6,2025-03-05T10:00:00Z,completed", "1402,6,2025-03-05T10:00:00Z,refunded"
    )
    orders += "1405,4,2025-07-05T10:00:00Z,completed,10,5,USD\n"
    assert night(orders) == {
        "all": hand,
        "organic_search": [
            (0, 3, 3, 0),
            (1, 3, 3, 0),
            (2, 2, 0, 2),
            (3, 1, 0, 0),
            (4, 1, 0, 0),
            (5, 1, 0, 0),
        ],
    }
    mark()

    # a month's last day (as of Jul 31): July is complete (the Jan cohort's tenure month 6),
    # so window_end moves to Aug 1: rebuilt
    orders += "1406,5,2025-07-31T10:00:00Z,completed,10,5,USD\n"
    assert [row[:2] for row in night(orders)["all"]] == [
        (0, 11),
        (1, 10),
        (2, 9),
        (3, 8),
        (4, 7),
        (5, 7),
        (6, 6),
    ]
    mark()

    # the first day of the new month (as of Aug 1) has the same complete months: kept
    orders += "1403,5,2025-08-01T10:00:00Z,completed,10,5,USD\n"
    assert night(orders)["all"][0] == (0, 999, 11, 0)

    # the next month (as of Sep 1): nobody bought first in August, so the buyers' channels
    # are the same; the month alone rebuilds it, as a full refresh builds it
    orders += "1404,4,2025-09-01T10:00:00Z,completed,10,5,USD\n"
    assert len(night(orders)["all"]) == 8
    with duckdb.connect(warehouse, read_only=True) as con:
        kept = con.execute(f"select * from {table} order by all").fetchall()
    assert run_pipeline(full_refresh=True, dbt_vars=churn).success
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute(f"select * from {table} order by all").fetchall() == kept


def test_complete_cohort_months_are_kept_and_the_as_of_month_regrouped_each_night(
    workdir, first_night
):
    """The cohort cells of complete months are kept between nights in one month (a marked
    cell stays and int_cohort_months_aggregated shows it), while the as-of month's cells are
    grouped again each night; a late order in a complete month rebuilds them, and on a month's
    last day the as-of month is complete and counted once. Email customers by hand: 4 (Jan
    cohort) buys 30 on the 20th of every month Jan - Jun, 6 (Jan) 90 on Jan 11, 11 (Jan) 40
    on Jan 2, 5 (Jun) 120 on Jun 5, 13 (Jul) 40 on Jul 2; 8's only order is refunded. As of
    Jul 3 the complete months are Jan - Jun."""
    raw = _after_first_night(workdir, first_night)
    warehouse = str(workdir / "warehouse.duckdb")
    complete = "intermediate.int_complete_cohort_months_aggregated"
    columns = (
        "cohort_month, months_since_acquisition, new_customers, active_customers, purchases, "
        "net_revenue"
    )

    def cells(table: str) -> list[tuple]:
        with duckdb.connect(warehouse, read_only=True) as con:
            return [
                (str(row[0])[:7], *(int(v) for v in row[1:]))
                for row in con.execute(
                    f"select {columns} from {table} where acquisition_channel = 'email' "
                    "order by cohort_month, months_since_acquisition"
                ).fetchall()
            ]

    def night(orders: str) -> None:
        (raw / "orders.csv").write_text(orders)
        assert run_pipeline().success

    jan = [("2025-01", 0, 3, 3, 3, 160)] + [("2025-01", k, 0, 1, 1, 30) for k in range(1, 6)]
    jun = [("2025-06", 0, 1, 1, 1, 120)]
    assert cells(complete) == jan + jun
    # the as-of month: the Jan and Jun cohorts' July, nobody buying, and the Jul cohort
    assert cells("intermediate.int_cohort_months_aggregated") == [
        *jan,
        ("2025-01", 6, 0, 0, 0, 0),
        *jun,
        ("2025-06", 1, 0, 0, 0, 0),
        ("2025-07", 0, 1, 1, 1, 40),
    ]
    with duckdb.connect(warehouse) as con:  # a value no grouping would give
        con.execute(
            f"update {complete} set net_revenue = 999 "
            "where acquisition_channel = 'email' and months_since_acquisition = 0 "
            "and cohort_month = '2025-01-01'"
        )
    marked = [("2025-01", 0, 3, 3, 3, 999), *jan[1:]]

    # customer 5 buys 45 on Jul 4, in the as-of month: the complete cells are kept, and the
    # Jun cohort's July is grouped again
    orders = ORDERS + "1401,5,2025-07-04T10:00:00Z,completed,45,20,USD\n"
    night(orders)
    assert cells(complete) == marked + jun
    assert cells("intermediate.int_cohort_months_aggregated") == [
        *marked,
        ("2025-01", 6, 0, 0, 0, 0),
        *jun,
        ("2025-06", 1, 0, 1, 1, 45),
        ("2025-07", 0, 1, 1, 1, 40),
    ]

    # a late order of customer 6 dated Mar 5 (25), a complete month: rebuilt, the mark goes
    orders += "1402,6,2025-03-05T10:00:00Z,completed,25,10,USD\n"
    night(orders)
    late = [*jan[:2], ("2025-01", 2, 0, 2, 2, 55), *jan[3:]]
    assert cells(complete) == late + jun
    with duckdb.connect(warehouse) as con:
        con.execute(f"update {complete} set net_revenue = 999 where months_since_acquisition = 1")

    # customer 6 (Jan cohort) moves from email to organic_search, no order changes: rebuilt,
    # and 6's Jan 11 (90) and Mar 5 (25) leave the email cells
    (raw / "customers.csv").write_text(
        CUSTOMERS.replace(
            "6,c6@x.com,2025-01-01,email,US", "6,c6@x.com,2025-01-01,organic_search,US"
        )
    )
    assert run_pipeline().success
    late = [("2025-01", 0, 2, 2, 2, 70), jan[1], ("2025-01", 2, 0, 1, 1, 30), *jan[3:]]
    assert cells(complete) == late + jun

    # as of Jul 31 (customer 5 buys 10) July is complete: its cells move to the kept table,
    # and are counted once
    orders += "1403,5,2025-07-31T10:00:00Z,completed,10,5,USD\n"
    night(orders)
    july = [
        *late,
        ("2025-01", 6, 0, 0, 0, 0),
        *jun,
        ("2025-06", 1, 0, 1, 2, 55),
        ("2025-07", 0, 1, 1, 1, 40),
    ]
    assert cells(complete) == [row for row in july if row[3]]  # cells with a purchase month
    assert cells("intermediate.int_cohort_months_aggregated") == july
    with duckdb.connect(warehouse, read_only=True) as con:
        kept = {
            table: con.execute(f"select * from {table} order by all").fetchall()
            for table in (complete, "intermediate.int_cohort_months_aggregated")
        }
    assert run_pipeline(full_refresh=True).success
    with duckdb.connect(warehouse, read_only=True) as con:
        for table, rows in kept.items():
            assert con.execute(f"select * from {table} order by all").fetchall() == rows


def _marts_state(path) -> dict[str, list[tuple]]:
    """Every intermediate and mart table and view, sorted (what a night must equal)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where schema_name in ('intermediate', 'marts') union all "
            "select schema_name, view_name from duckdb_views() "
            "where schema_name in ('intermediate', 'marts') order by all"
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select * from {s}."{t}" order by all').fetchall()
            for s, t in tables
        }


def _fresh_load_state(raw, tmp_path_factory, monkeypatch) -> dict[str, list[tuple]]:
    """:func:`_marts_state` after a first run on a copy of ``raw`` into a new warehouse."""
    fresh = tmp_path_factory.mktemp("fresh")
    shutil.copytree(raw, fresh / "raw")
    monkeypatch.setenv("LTV_DATA_DIR", str(fresh))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(fresh / "warehouse.duckdb"))
    assert run_pipeline().success
    return _marts_state(fresh / "warehouse.duckdb")


def test_a_night_with_late_changed_and_removed_rows_equals_a_fresh_load(
    workdir, first_night, tmp_path_factory, monkeypatch
):
    """Orders dated weeks back, an edited old order, a deleted order and a customer removed
    from the customer file: after the night every intermediate table and mart equals a fresh
    load of the same files (a lookback window of days used to miss all four)."""
    raw = _after_first_night(workdir, first_night)
    late = "".join(
        f"{2000 + i},{1 + i % 6},2025-06-{1 + i % 9:02d}T08:00:00Z,completed,{10 + i},4,USD\n"
        for i in range(50)
    )
    edited = ORDERS.replace(
        "101,1,2025-01-10T09:00:00Z,completed,100,60,USD",
        "101,1,2025-01-10T09:00:00Z,completed,999,60,USD",
    ).replace("202,2,2025-02-05T09:00:00Z,completed,100,50,USD\n", "")
    (raw / "orders.csv").write_text(edited + late)
    (raw / "customers.csv").write_text(CUSTOMERS.replace("11,c11@x.com,2025-01-01,email,US\n", ""))
    assert run_pipeline().success
    nightly = _marts_state(workdir / "warehouse.duckdb")

    assert _fresh_load_state(raw, tmp_path_factory, monkeypatch) == nightly

    orders = {r[0]: r for r in nightly["intermediate.int_orders_valued"]}
    assert orders[101][5] == 999 and 202 not in orders and 1101 not in orders
    assert len([o for o in orders if 2000 <= o < 2050]) == 50
    customers = {r[0] for r in nightly["marts.customers"]}
    predicted = {r[0] for r in nightly["marts.customer_predictions"]}
    assert 11 not in customers and predicted <= customers


def test_a_night_finds_changes_that_keep_every_days_count_and_totals(
    workdir, first_night, tmp_path_factory, monkeypatch
):
    """The change capture compares the orders of a day only when the day's summary differs:
    here no day's order count, amount total, cost total or set of customers changes, yet
    three days' orders do. Two orders of one day swap amounts and costs (1201, 1202), two
    orders of one day swap customers (302, 402) and two orders swap days (401, 1001). A
    summary of counts and sums would see nothing; the night must equal a fresh load."""
    raw = _after_first_night(workdir, first_night)
    swaps = {
        "1201,12,2025-05-08T09:00:00Z,completed,500,400,USD": (
            "1201,12,2025-05-08T09:00:00Z,completed,100,80,USD"
        ),
        "1202,12,2025-05-08T15:00:00Z,completed,100,80,USD": (
            "1202,12,2025-05-08T15:00:00Z,completed,500,400,USD"
        ),
        "302,3,2025-02-20T09:00:00Z": "302,4,2025-02-20T09:00:00Z",
        "402,4,2025-02-20T09:00:00Z": "402,3,2025-02-20T09:00:00Z",
        "401,4,2025-01-20T09:00:00Z": "401,4,2025-01-31T09:00:00Z",
        "1001,10,2025-01-31T09:00:00Z": "1001,10,2025-01-20T09:00:00Z",
    }
    edited = ORDERS
    for old, new in swaps.items():
        assert edited.count(old) == 1
        edited = edited.replace(old, new)
    (raw / "orders.csv").write_text(edited)
    assert run_pipeline().success
    nightly = _marts_state(workdir / "warehouse.duckdb")
    orders = {r[0]: r for r in nightly["intermediate.int_orders_valued"]}
    # (order_id, customer_id, ordered_at, ordered_date, status, amount, cost, ...)
    assert (orders[1201][5], orders[1202][5]) == (100, 500)
    assert (orders[302][1], orders[402][1]) == (4, 3)
    assert (str(orders[401][3]), str(orders[1001][3])) == ("2025-01-31", "2025-01-20")

    assert _fresh_load_state(raw, tmp_path_factory, monkeypatch) == nightly


def test_a_night_with_a_new_default_margin_rate_revalues_the_orders_without_a_cost(
    workdir, first_night
):
    """No file changes, but the margin rate for orders without a cost does: order 103 (80,
    no cost) is worth 80 x 0.5 = 40 of margin, and the night equals a full refresh with the
    same rate. Its day's summary differs only through the margin the valuation now gives."""
    _after_first_night(workdir, first_night)
    warehouse = workdir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (before,) = con.execute(
            "select gross_margin from intermediate.int_orders_valued where order_id = 103"
        ).fetchone()
    assert before == pytest.approx(80 * 0.35)
    assert run_pipeline(dbt_vars={"default_margin_rate": 0.5}).success
    nightly = _marts_state(warehouse)
    orders = {r[0]: r for r in nightly["intermediate.int_orders_valued"]}
    assert orders[103][-1] == pytest.approx(40.0)
    assert orders[101][-1] == pytest.approx(100 - 60)  # a cost: the rate does not apply
    assert run_pipeline(full_refresh=True, dbt_vars={"default_margin_rate": 0.5}).success
    assert _marts_state(warehouse) == nightly


def test_drift_between_orders_and_the_raw_layer_fails_a_test_and_the_next_night_mends_it(
    workdir, first_night
):
    _after_first_night(workdir, first_night)
    warehouse = workdir / "warehouse.duckdb"
    before = _marts_state(warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from intermediate.int_orders_valued where order_id = 303")
    select = ["--select", "test_name:reconciles_by_day", "--quiet"]
    assert dbt_runner.run_dbt(["test", *select]) != 0
    assert run_pipeline().success
    assert _marts_state(warehouse) == before


def _split_by_month(orders_csv, folder, withheld_day: str) -> str:
    """Write orders.csv as one file per month (bad lines included, by the text of their
    date field) and return the lines of ``withheld_day`` as a separate day file's text."""
    header, *lines = orders_csv.read_text().splitlines()
    folder.mkdir()
    months: dict[str, list[str]] = {}
    withheld = []
    for line in lines:
        fields = line.split(",")
        when = fields[2] if len(fields) > 2 else ""
        if when.startswith(withheld_day):
            withheld.append(line)
            continue
        month = when[:7] if re.fullmatch(r"\d{4}-\d{2}", when[:7]) else "undated"
        months.setdefault(month, []).append(line)
    for month, rows in months.items():
        (folder / f"{month}.csv").write_text("\n".join([header, *rows]) + "\n")
    orders_csv.unlink()
    assert withheld
    return "\n".join([header, *withheld]) + "\n"


def _warehouse_state(path: str) -> dict[str, list[tuple]]:
    """Every table and view the pipeline writes, sorted (the clean orders are a view of the
    row store); the load registry (which holds load times) and the last load's scope (a
    night's keys, a full load's every key) are left out."""
    with duckdb.connect(path, read_only=True) as con:
        tables = con.execute(
            "select * from (select schema_name, table_name from duckdb_tables() "
            "union all select schema_name, view_name from duckdb_views() where not internal) "
            "where schema_name in ('raw', 'intermediate', 'marts', 'clv') "
            "and table_name not in ('_files', '_load_scope', '_load_scope_keys') order by all"
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select * from {s}."{t}" order by all').fetchall()
            for s, t in tables
        }


def test_daily_files_night_reads_one_day_and_equals_full_refresh(workdir):
    """Orders arrive as a file per period; the night's run reads only the new day's file, yet
    every raw table, mart and Python output equals a full refresh on the same files."""
    raw = workdir / "raw"
    generate_shop(raw, customers=1_500, seed=21, bad_share=0.02)
    last_day = _split_by_month(raw / "orders.csv", raw / "orders", "2026-06-30")
    first = run_pipeline()
    assert first.success
    assert "orders/2026-06.csv" in materialization_metadata(first, "raw/orders")["files_read"]

    (raw / "orders" / "2026-06-30.csv").write_text(last_day)
    night = run_pipeline()
    assert night.success
    read = {
        table: materialization_metadata(night, f"raw/{table}")["files_read"]
        for table in ("customers", "orders", "marketing_spend")
    }
    warehouse = str(workdir / "warehouse.duckdb")
    with duckdb.connect(warehouse, read_only=True) as con:
        # files holding orders dated in the future are read again every night (they may
        # have come due); the generator's bad rows put some in files of their own
        future = {
            f
            for (f,) in con.execute(
                "select distinct source_file from raw.quarantine where reason = 'future_ordered_at'"
            ).fetchall()
        }
    assert future and all(f.startswith("orders/2099-") for f in future)
    assert read["customers"] == read["marketing_spend"] == "none (no new or changed file)"
    assert set(read["orders"].split(", ")) == {"orders/2026-06-30.csv", *future}
    nightly = _warehouse_state(warehouse)
    assert len(nightly["marts.customer_predictions"]) > 1_000
    assert run_pipeline(full_refresh=True).success
    assert _warehouse_state(warehouse) == nightly


def _compiled_test(run_id: str, test: str) -> str:
    """The SQL dbt ran for ``test`` in the Dagster run ``run_id`` (its invocation folder)."""
    target = settings.DBT_PROJECT_DIR / "target"
    (path,) = target.glob(f"dbt_models-{run_id[:7]}-*/compiled/**/{test}.sql")
    return path.read_text()


@pytest.mark.parametrize(
    ("test", "table", "key", "touched", "untouched"),
    [
        # a per-customer model appended from the touched customers: customer 5 bought again
        ("int_purchases_grouped_customer_day_unique", "int_purchases_grouped", "customer_id", 5, 3),
        # one row per customer, the same way
        (
            "int_customer_purchases_accumulated_customer_id_unique",
            "int_customer_purchases_accumulated",
            "customer_id",
            5,
            3,
        ),
        # kept by month: a night in the month (as of Jul 3 still) appends the touched ones
        (
            "int_customer_windows_aggregated_customer_id_unique",
            "int_customer_windows_aggregated",
            "customer_id",
            5,
            3,
        ),
        # the orders, merged by the touched orders: 1401 is the night's new order
        ("int_orders_valued_order_id_unique", "int_orders_valued", "order_id", 1401, 302),
    ],
)
def test_a_nights_uniqueness_test_groups_the_touched_rows_alone(
    workdir, first_night, test, table, key, touched, untouched
):
    """On a night, the uniqueness test of a model the night rewrote for the touched orders
    only groups the rows it rewrote (the rest are the last build's rows, unique then); a full
    build, or the test run on its own, groups every row. Shown by running the SQL each build
    ran against duplicates planted afterwards: one row the night touched and one it did not."""
    raw = _after_first_night(workdir, first_night)
    warehouse = str(workdir / "warehouse.duckdb")
    (raw / "orders.csv").write_text(ORDERS + "1401,5,2025-06-21T10:00:00Z,completed,45,20,USD\n")
    night = run_pipeline()
    assert night.success
    nightly_sql = _compiled_test(night.run_id, test)
    assert "orders_touched" in nightly_sql
    table = f"intermediate.{table}"

    def plant_duplicates(con) -> None:
        for value in (untouched, touched):
            con.execute(f"insert into {table} (from {table} where {key} = {value} limit 1)")

    with duckdb.connect(warehouse) as con:
        assert con.execute(nightly_sql).fetchall() == []
        plant_duplicates(con)
        assert {row[0] for row in con.execute(nightly_sql).fetchall()} == {touched}

    # the test on its own (another invocation) groups every row: both duplicates
    select = ["--select", test, "--quiet"]
    assert dbt_runner.run_dbt(["test", *select]) != 0
    # so does a full build's (which also rewrites the table without them)
    full = run_pipeline(full_refresh=True)
    assert full.success
    full_sql = _compiled_test(full.run_id, test)
    with duckdb.connect(warehouse) as con:
        plant_duplicates(con)
        assert {row[0] for row in con.execute(full_sql).fetchall()} == {touched, untouched}


def test_the_staging_key_tests_check_the_keys_loaded_since_they_last_passed(workdir, first_night):
    """The raw load adds what it may have changed to raw._load_scope; the staging views' key
    tests read those keys alone (macros/loaded_keys.sql), and once they all passed in one dbt
    invocation its on-run-end hook empties the scope. Here a new day file brings order 1401
    and customer 5 moves country (so the customer file, read again whole, puts every customer
    in scope, and 5's order 501 is re-decided with it). Shown by planting a duplicate inside
    the scope and one outside it, and by a full load, whose tests read every row."""
    from ltv_pipeline.defs.ingest import RAW_GROUP

    raw = _after_first_night(workdir, first_night)
    (raw / "orders").mkdir()
    header = ORDERS.splitlines()[0]
    (raw / "orders" / "2025-06-21.csv").write_text(
        f"{header}\n1401,5,2025-06-21T10:00:00Z,completed,45,20,USD\n"
    )
    (raw / "customers.csv").write_text(
        CUSTOMERS.replace("5,c5@x.com,2025-06-01,email,US", "5,c5@x.com,2025-06-01,email,DE")
    )
    warehouse = str(workdir / "warehouse.duckdb")

    def scope() -> tuple[list, list]:
        with duckdb.connect(warehouse, read_only=True) as con:
            return (
                con.execute("select * from raw._load_scope order by all").fetchall(),
                con.execute("select * from raw._load_scope_keys order by all").fetchall(),
            )

    loaded = [("customers", c) for c in range(1, 14)] + [("orders", 501), ("orders", 1401)]
    none_every_key = [("customers", False), ("orders", False)]
    # the raw load alone (a subset run, as from the UI): its keys are the scope
    assert run_pipeline(dg.AssetSelection.groups(RAW_GROUP)).success
    assert scope() == (none_every_key, loaded)

    unique = ["test", "--select", "stg_shop__orders_order_id_unique", "--quiet"]
    # the clean orders are a view of the row store: a row stored twice is in it twice
    with duckdb.connect(warehouse) as con:  # order 1401 twice: inside the scope
        con.execute("insert into raw._rows_orders (from raw._rows_orders where t_order_id = 1401)")
    assert dbt_runner.run_dbt(unique) != 0
    assert scope() == (none_every_key, loaded)  # a failed test leaves the scope
    with duckdb.connect(warehouse) as con:  # 1401 once again; 302 twice: outside the scope
        con.execute("create temp table kept as select distinct * from raw._rows_orders")
        con.execute("delete from raw._rows_orders")
        con.execute("insert into raw._rows_orders from kept")
        con.execute("insert into raw._rows_orders (from raw._rows_orders where t_order_id = 302)")
    # keys outside the scope passed before and no load touched them: not read again
    assert dbt_runner.run_dbt(unique) == 0
    assert scope() == (none_every_key, loaded)  # the orders' other test has not run yet

    # the night: the unpublished raw load is put back and loaded again (302 once more), every
    # test passes, and the hook empties the scope
    night = run_pipeline()
    assert night.success
    assert "_load_scope_keys" in _compiled_test(night.run_id, "stg_shop__orders_order_id_unique")
    assert scope() == (none_every_key, [])

    # a full load re-decides every key; its tests read every row
    full = run_pipeline(full_refresh=True)
    assert full.success
    full_sql = _compiled_test(full.run_id, "stg_shop__orders_order_id_unique")
    assert "_load_scope" not in full_sql
    assert scope() == (none_every_key, [])
    with duckdb.connect(warehouse) as con:
        con.execute("insert into raw._rows_orders (from raw._rows_orders where t_order_id = 302)")
        assert [row[0] for row in con.execute(full_sql).fetchall()] == [302]
