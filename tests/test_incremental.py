"""fct_orders is incremental (merge on order_id): a nightly run equals a full refresh."""

from __future__ import annotations

import duckdb

from tests.helpers import run_pipeline
from tests.test_marts_fixture import CUSTOMERS, ORDERS, SPEND


def _snapshot(path: str) -> dict[str, list[tuple]]:
    with duckdb.connect(path, read_only=True) as con:
        return {
            table: con.execute(f"select * from marts.{table} order by all").fetchall()
            for table in (
                "fct_orders",
                "customers",
                "churn_monthly",
                "ltv_summary",
                "cac_monthly",
                "cohort_activity",
                "ltv_cac_by_channel",
            )
        }


def test_incremental_night_equals_full_refresh(workdir):
    raw = workdir / "raw"
    (raw / "customers.csv").write_text(CUSTOMERS)
    (raw / "orders.csv").write_text(ORDERS)
    (raw / "marketing_spend.csv").write_text(SPEND)
    assert run_pipeline().success
    warehouse = str(workdir / "warehouse.duckdb")
    before = _snapshot(warehouse)["fct_orders"]

    # The next night's drop: two new orders, one of them late (dated two days before the
    # newest), and a recent order changed from completed to refunded.
    changed = ORDERS.replace(
        "406,4,2025-06-20T09:00:00Z,completed,30,10,USD",
        "406,4,2025-06-20T09:00:00Z,refunded,30,10,USD",
    )
    changed += "1301,5,2025-06-21T10:00:00Z,completed,45,20,USD\n"
    changed += "1302,12,2025-06-18T10:00:00Z,completed,15,,USD\n"
    (raw / "orders.csv").write_text(changed)

    incremental = run_pipeline()
    assert incremental.success
    nightly = _snapshot(warehouse)
    assert len(nightly["fct_orders"]) == len(before) + 2
    refunded = [r for r in nightly["fct_orders"] if r[0] == 406]
    assert refunded[0][4] == "refunded"

    assert run_pipeline(full_refresh=True).success
    assert _snapshot(warehouse) == nightly


def test_incremental_run_reads_only_the_lookback_window(workdir):
    """The merge source is the recent slice, not the history: an old row edited in raw is
    left alone until a full refresh (documented: use --full-refresh after old corrections)."""
    raw = workdir / "raw"
    (raw / "customers.csv").write_text(CUSTOMERS)
    (raw / "orders.csv").write_text(ORDERS)
    (raw / "marketing_spend.csv").write_text(SPEND)
    assert run_pipeline().success
    (raw / "orders.csv").write_text(
        ORDERS.replace(
            "101,1,2025-01-10T09:00:00Z,completed,100,60,USD",
            "101,1,2025-01-10T09:00:00Z,completed,999,60,USD",
        )
    )
    assert run_pipeline().success
    warehouse = str(workdir / "warehouse.duckdb")
    with duckdb.connect(warehouse, read_only=True) as con:
        assert (
            con.execute(
                "select order_amount from marts.fct_orders where order_id = 101"
            ).fetchone()[0]
            == 100
        )
    assert run_pipeline(full_refresh=True).success
    with duckdb.connect(warehouse, read_only=True) as con:
        assert (
            con.execute(
                "select order_amount from marts.fct_orders where order_id = 101"
            ).fetchone()[0]
            == 999
        )
