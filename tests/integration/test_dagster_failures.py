"""Failures through real Dagster runs: clear errors, the last good load untouched, checks bite."""

from __future__ import annotations

import http.server
import json
import threading

import dagster as dg
import duckdb
import pytest

from ltv_pipeline import settings
from tests.helpers import check_results, failure_messages, run_pipeline
from tests.unit.test_ingest import CUSTOMERS, ORDERS, SPEND, write_drop
from tests.unit.test_ingest_exports import write


@pytest.fixture
def mostly_bad_rows_allowed(monkeypatch):
    """test_ingest's drop is mostly bad rows, one per reason: let it load."""
    monkeypatch.setenv(settings.MAX_QUARANTINE_SHARE_ENV, "1")


def _counts(path: str) -> dict[str, int]:
    with duckdb.connect(path, read_only=True) as con:
        return {
            t: con.execute(f"select count(*) from raw.{t}").fetchone()[0]
            for t in ("customers", "orders", "marketing_spend", "quarantine")
        }


@pytest.fixture
def webhook(monkeypatch):
    """A local HTTP endpoint as LTV_ALERT_WEBHOOK_URL; yields the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append({"path": self.path, **json.loads(self.rfile.read(length))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        settings.ALERT_WEBHOOK_ENV, f"http://127.0.0.1:{server.server_port}/hook/s3cret"
    )
    try:
        yield received
    finally:
        server.shutdown()


def test_wrong_header_fails_the_run_and_keeps_the_last_good_load(
    workdir, mostly_bad_rows_allowed, webhook
):
    write_drop(workdir / "raw")
    first = run_pipeline()  # a published night: the last good one
    assert first.success, failure_messages(first)
    assert webhook == []  # a good night sends nothing
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
    # the failed step reached the webhook, once, with what the UI shows
    assert [(a["path"], a["run_id"], a["job"], a["step"]) for a in webhook] == [
        ("/hook/s3cret", second.run_id, "all_assets", "raw_tables")
    ]
    assert "missing column 'spend'" in webhook[0]["error"]
    assert webhook[0]["text"].startswith(f"ltv-pipeline: step raw_tables of run {second.run_id}")


def test_deciles_check_fails_when_the_table_disagrees_with_the_mart(
    workdir, mostly_bad_rows_allowed
):
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


def test_an_unmapped_export_fails_the_raw_step_and_its_mapping_file_loads_it(workdir, monkeypatch):
    """End to end through Dagster's resources: LTV_INPUT_MAPPING and the quarantine share."""
    write(
        workdir / "raw",
        customers=["1,a@x.com,31/01/2025,email,US"],
        orders=["10,1,31/01/2025 14:05,completed,10,,USD", "11,1,01/02/2025,completed,5,,USD"],
        spend=["31/01/2025,email,3"],
    )
    monkeypatch.delenv(settings.MAX_QUARANTINE_SHARE_ENV, raising=False)
    failed = run_pipeline(dg.AssetSelection.groups("raw"))
    assert not failed.success
    message = failure_messages(failed)
    assert "customers: 1 of 1 rows (100%) would be quarantined" in message
    assert "unparseable_signup_date: 1 rows, e.g. customers.csv:2 " in message

    mapping = workdir / "shop.toml"
    mapping.write_text(
        "".join(
            f"[{t}]\ndate_format = 'dayfirst'\n" for t in ("customers", "orders", "marketing_spend")
        )
    )
    monkeypatch.setenv(settings.INPUT_MAPPING_ENV, str(mapping))
    assert run_pipeline(dg.AssetSelection.groups("raw")).success
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select min(ordered_at)::varchar from raw.orders").fetchone() == (
            "2025-01-31 14:05:00",
        )
