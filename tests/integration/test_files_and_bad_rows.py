"""Issue 16, points 4 and 6: every file in the drop is accounted for, and bad rows are
quarantined (or the load fails at once, naming the file) instead of failing the night far from
the cause."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from pathlib import Path

import duckdb
import pytest

from ltv_pipeline import ingest
from ltv_pipeline.ingest import RawInputError, count_input_rows
from ltv_pipeline.ingest import files as ingest_files
from tests.helpers import (
    check_evaluations,
    failure_messages,
    materialization_metadata,
    run_pipeline,
)
from tests.integration.test_marts_fixture import CUSTOMERS as MART_CUSTOMERS
from tests.integration.test_marts_fixture import ORDERS as MART_ORDERS
from tests.integration.test_marts_fixture import SPEND as MART_SPEND

LOAD_TIME = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
CUSTOMERS = """customer_id,email,signup_date,acquisition_channel,country
1,a@x.com,2025-01-01,email,US
2,b@x.com,2025-02-01,email,US
"""
ORDER_HEADER = "order_id,customer_id,ordered_at,status,amount,cost,currency\n"
SPEND = "date,channel,spend\n2025-01-01,email,10\n"


def write(raw: Path, files: dict[str, str | bytes]) -> None:
    """Write ``files`` (path relative to ``raw`` -> text or bytes) into the drop."""
    for name, content in files.items():
        path = raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def base_drop(raw: Path, orders: str, customers: str = CUSTOMERS) -> None:
    write(raw, {"customers.csv": customers, "orders.csv": orders, "marketing_spend.csv": SPEND})


def load(con: duckdb.DuckDBPyConnection, raw: Path) -> ingest.LoadReport:
    return ingest.load_raw(con, raw, load_time=LOAD_TIME, max_quarantine_share=1.0)


def held(con: duckdb.DuckDBPyConnection, table: str) -> set[tuple[str, int, str]]:
    return set(
        con.execute(
            "select source_file, source_line, reason from raw.quarantine where source_table = ?",
            [table],
        ).fetchall()
    )


def orders(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [r[0] for r in con.execute("select order_id from raw.orders order by 1").fetchall()]


@pytest.fixture
def con(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        yield connection


def order(order_id: int, customer_id: int, at: str, status: str = "completed") -> str:
    return f"{order_id},{customer_id},{at},{status},10,4,USD\n"


# --- point 4: every file accounted for -------------------------------------------------------


def test_nested_upper_case_and_gzip_files_are_read_and_other_files_are_listed(tmp_path, con):
    raw = tmp_path / "raw"
    write(
        raw,
        {
            "customers.csv": CUSTOMERS,
            "marketing_spend.csv": SPEND,
            "orders/2026-06-30.csv": ORDER_HEADER + order(1, 1, "2026-06-30T10:00:00Z"),
            "orders/2026/07/01.csv": ORDER_HEADER + order(2, 1, "2026-07-01T10:00:00Z"),
            "orders/2026-07-02.CSV": ORDER_HEADER + order(3, 1, "2026-07-02T10:00:00Z"),
            # a bad row on line 3 of the compressed file: its line number must be right
            "orders/2026-07-03.csv.gz": gzip.compress(
                (ORDER_HEADER + order(4, 1, "2026-07-03T10:00:00Z") + order(5, 1, "never")).encode()
            ),
            "orders/notes.txt": "exported by hand\n",
            "readme.md": "# drop\n",
            "orders.xlsx": b"PK\x03\x04",
        },
    )
    report = load(con, raw)
    assert sorted(report.tables["orders"].files) == [
        "orders/2026-06-30.csv",
        "orders/2026-07-02.CSV",
        "orders/2026-07-03.csv.gz",
        "orders/2026/07/01.csv",
    ]
    assert orders(con) == [1, 2, 3, 4]
    assert held(con, "orders") == {("orders/2026-07-03.csv.gz", 3, "unparseable_ordered_at")}
    assert report.ignored == ["orders.xlsx", "orders/notes.txt", "readme.md"]
    assert ingest.ignored_files(raw) == report.ignored
    rows_in = sum(count_input_rows(p) for p in ingest.find_files(raw, "orders"))
    assert rows_in == report.tables["orders"].rows_in == 5

    # the watermark treats them like other files: nothing new, nothing read; a changed
    # compressed file is read again
    assert load(con, raw).tables["orders"].files_read == []
    gz = raw / "orders/2026-07-03.csv.gz"
    gz.write_bytes(gzip.compress((ORDER_HEADER + order(4, 1, "2026-07-03T10:00:00Z")).encode()))
    os.utime(gz, ns=(gz.stat().st_atime_ns, gz.stat().st_mtime_ns + 10**9))
    again = load(con, raw)
    assert again.tables["orders"].files_read == ["orders/2026-07-03.csv.gz"]
    assert orders(con) == [1, 2, 3, 4] and held(con, "orders") == set()


def test_an_ignored_file_is_in_the_load_metadata_and_warns(workdir):
    """End to end: the load report's ignored files reach the UI, and a WARN check fails."""
    raw = workdir / "raw"
    write(
        raw,
        {
            "customers.csv": MART_CUSTOMERS,
            "orders/2025/orders.csv.gz": gzip.compress(MART_ORDERS.encode()),
            "marketing_spend.CSV": MART_SPEND,
            "orders/notes.txt": "hand-made\n",
        },
    )
    result = run_pipeline()
    assert result.success, failure_messages(result)
    metadata = materialization_metadata(result, "raw/quarantine")
    assert metadata["files_ignored"] == ["orders/notes.txt"]
    assert materialization_metadata(result, "raw/orders")["files_ignored"] == "orders/notes.txt"
    checks = check_evaluations(result)
    ignored = checks["no_raw_file_ignored"]
    assert not ignored.passed and ignored.severity.value == "WARN"
    assert "orders/notes.txt" in ignored.description
    for table in ingest.LOAD_ORDER:
        assert checks[f"{table}_rows_reconcile"].passed


# --- point 6a: an order before its customer's signup ------------------------------------------


def test_an_order_before_signup_is_quarantined_in_utc_and_a_night_re_decides_it(tmp_path, con):
    raw = tmp_path / "raw"
    base_drop(
        raw,
        ORDER_HEADER
        # customer 2 signed up 2025-02-01: 23:00 at -05:00 is Feb 1 UTC, so not before
        + order(10, 2, "2025-01-31T23:00:00-05:00")
        # 18:00 at -05:00 is Jan 31 23:00 UTC: before
        + order(11, 2, "2025-01-31T18:00:00-05:00")
        + order(12, 1, "2025-01-01T00:00:00Z"),
    )
    report = load(con, raw)
    assert orders(con) == [10, 12]
    assert held(con, "orders") == {("orders.csv", 3, "ordered_before_signup")}
    assert report.tables["orders"].reasons == {"ordered_before_signup": 1}
    (record,) = con.execute("select record from raw.quarantine").fetchone()
    assert "2025-01-31T18:00:00-05:00" in record

    # a night where customer 2's signup moves a day earlier: only customers.csv is read,
    # and the order's verdict is decided again, as a fresh load would
    customers = raw / "customers.csv"
    customers.write_text(CUSTOMERS.replace("2025-02-01", "2025-01-31"))
    os.utime(customers, ns=(customers.stat().st_atime_ns, customers.stat().st_mtime_ns + 10**9))
    night = load(con, raw)
    assert night.tables["orders"].files_read == []
    assert orders(con) == [10, 11, 12] and held(con, "orders") == set()
    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as fresh:
        load(fresh, raw)
        assert orders(fresh) == orders(con)


# --- point 6b: quoted line breaks and CR-only files -------------------------------------------


def test_a_quoted_line_break_keeps_the_record_and_every_later_line_number(tmp_path, con):
    raw = tmp_path / "raw"
    customers = (
        CUSTOMERS
        + '3,c@x.com,2025-01-01,"paid\nsearch",US\n'  # lines 4-5
        + "4,d@x.com,,email,US\n"  # line 6: missing_signup_date
        + '5,"e@x.com",2025-01-01,"a\r\nb\nc",DE\n'  # lines 7-9
        + "6,f@x.com,2025-01-01,email\n"  # line 10: malformed
        + "7,g@x.com,2025-01-01,email,Germany\n"  # line 11: invalid_country
    )
    base_drop(raw, ORDER_HEADER + order(1, 1, "2025-03-01T00:00:00Z"), customers=customers)
    report = load(con, raw)
    assert held(con, "customers") == {
        ("customers.csv", 6, "missing_signup_date"),
        ("customers.csv", 10, "malformed_line"),
        ("customers.csv", 11, "invalid_country"),
    }
    channels = dict(
        con.execute("select customer_id, acquisition_channel from raw.customers").fetchall()
    )
    assert channels[3] == "paid\nsearch" and channels[5] == "a\r\nb\nc"
    assert count_input_rows(raw / "customers.csv") == report.tables["customers"].rows_in == 7

    # CR-only line endings fail at once, naming the file and the line
    (raw / "customers.csv").write_bytes(CUSTOMERS.replace("\n", "\r").encode())
    with pytest.raises(RawInputError, match=r"customers\.csv: line 1: a carriage return"):
        load(con, raw)
    assert len(con.execute("select * from raw.customers").fetchall()) == 4  # last good load


# --- point 6c: nobody bought ------------------------------------------------------------------


def test_all_orders_refunded_runs_with_empty_predictions_and_says_so(workdir):
    raw = workdir / "raw"
    refunded = re.sub(",(completed|cancelled),", ",refunded,", MART_ORDERS)
    write(
        raw,
        {
            "customers.csv": MART_CUSTOMERS,
            "orders.csv": refunded,
            "marketing_spend.csv": MART_SPEND,
        },
    )
    result = run_pipeline()
    assert result.success, failure_messages(result)
    metadata = materialization_metadata(result, "marts/customer_predictions")
    assert metadata["dagster/row_count"] == 0
    assert metadata["model_status"].startswith("not fitted: no customer has a completed order")
    checks = check_evaluations(result)
    for name in ("predictions_cover_buyers_and_are_valid", "segment_shares_sum_to_one"):
        assert not checks[name].passed and checks[name].severity.value == "WARN", name


# --- point 6d: no usable orders ---------------------------------------------------------------


def test_no_usable_orders_fails_the_load_at_once_naming_the_files(tmp_path, con):
    raw = tmp_path / "raw"
    base_drop(raw, ORDER_HEADER + order(1, 1, "2025-03-01T00:00:00Z"))
    load(con, raw)
    # a header-only file, then a file of only quarantined orders (the share allowed)
    for content in (ORDER_HEADER, ORDER_HEADER + order(2, 99, "2025-03-01T00:00:00Z")):
        (raw / "orders.csv").write_text(content)
        os.utime(raw / "orders.csv", ns=(0, (raw / "orders.csv").stat().st_mtime_ns + 10**9))
        with pytest.raises(
            RawInputError, match=r"no usable orders in orders\.csv: nothing to compute as of"
        ):
            load(con, raw)
        assert orders(con) == [1]  # the last good load stays


def test_the_line_scan_is_the_same_whatever_the_chunk_boundaries(tmp_path, monkeypatch):
    """Quote state and a CR before an LF carry across the scan's chunks."""
    path = tmp_path / "x.csv"
    path.write_bytes(b'a,b\r\n1,"x\r\ny"\r\n"q""\nr",2\r\n3,"\r"\r\n4,5')
    whole = ingest.scan_csv_lines(path)
    assert (whole.lines, whole.continued, whole.quoted_cr) == (7, [3, 5], True)
    for size in range(1, 12):
        monkeypatch.setattr(ingest_files, "SCAN_BYTES", size)
        assert ingest.scan_csv_lines(path) == whole, size
    assert count_input_rows(path) == 4
