"""Failures through real Dagster runs: clear errors, the last good load untouched, checks bite."""

from __future__ import annotations

import dagster as dg
import duckdb

from tests.helpers import check_results, failure_messages, run_pipeline
from tests.test_ingest import CUSTOMERS, ORDERS, SPEND, write_drop


def _counts(path: str) -> dict[str, int]:
    with duckdb.connect(path, read_only=True) as con:
        return {
            t: con.execute(f"select count(*) from raw.{t}").fetchone()[0]
            for t in ("customers", "orders", "marketing_spend", "quarantine")
        }


def test_wrong_header_fails_the_run_and_keeps_the_last_good_load(workdir):
    write_drop(workdir / "raw")
    first = run_pipeline(dg.AssetSelection.groups("raw"))
    assert first.success
    warehouse = str(workdir / "warehouse.duckdb")
    before = _counts(warehouse)
    assert before["orders"] == 3

    write_drop(workdir / "raw", orders=ORDERS + "200,1,2025-03-01T00:00:00Z,completed,5,1,USD\n")
    (workdir / "raw" / "marketing_spend.csv").write_text("date,channel,amount\n2025-01-01,x,1\n")
    second = run_pipeline()
    assert not second.success
    message = failure_messages(second)
    assert "marketing_spend.csv: missing column 'spend'" in message
    assert _counts(warehouse) == before


def test_deciles_check_fails_when_the_table_disagrees_with_the_mart(workdir):
    write_drop(workdir / "raw", customers=CUSTOMERS, orders=ORDERS, spend=SPEND)
    result = run_pipeline()
    assert result.success
    assert check_results(result)["deciles_reconcile_with_customers"] is True

    with duckdb.connect(str(workdir / "warehouse.duckdb")) as con:
        con.execute("update marts.customer_revenue_deciles set customers = customers + 1")
    recheck = run_pipeline(
        dg.AssetSelection.checks_for_assets(dg.AssetKey(["marts", "customer_revenue_deciles"]))
    )
    assert check_results(recheck) == {"deciles_reconcile_with_customers": False}
