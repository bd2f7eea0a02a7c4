"""The raw loader: every row is loaded or quarantined with its line and reason."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltv_pipeline import ingest
from ltv_pipeline.ingest import LoadReport, RawInputError, count_input_rows, reason_codes
from ltv_pipeline.ingest import duckdb as ingest_duckdb
from ltv_pipeline.ingest import files as ingest_files

LOAD_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def load_raw(con: duckdb.DuckDBPyConnection, raw: Path, **kwargs) -> LoadReport:
    """:func:`ingest.load_raw` that never fails for the share of quarantined rows: the drop
    below is mostly bad rows on purpose, one per reason (tests/test_ingest_exports.py tests the
    share)."""
    kwargs.setdefault("max_quarantine_share", 1.0)
    return ingest.load_raw(con, raw, **kwargs)


CUSTOMERS = """customer_id,email,signup_date,acquisition_channel,country
1,a@x.com,2025-01-01,Email,us
2,b@x.com,2025-01-02,paid_search,DE
,n@x.com,2025-01-02,paid_search,DE
x,c@x.com,2025-01-02,paid_search,DE
3,bx.com,2025-01-02,paid_search,DE
5,e@x.com,,paid_search,DE
6,f@x.com,2025-02-30,paid_search,DE
7,g@x.com,2027-01-01,paid_search,DE
8,h@x.com,2025-01-02,,DE
9,i@x.com,2025-01-02,email,
4,d@x.com,2025-01-02,paid_search,Germany
2,b@x.com,2025-01-02,paid_search,DE
10,j@x.com,2025-01-02,email,FR
10,k@x.com,2025-01-02,email,FR
11,l@x.com,2025-01-02,email,FR,extra
12,,2025-01-03,referral,gb
13,m@x.com,1999-12-31,email,FR
"""

ORDERS = """order_id,customer_id,ordered_at,status,amount,cost,currency
100,1,2025-01-01T10:00:00Z,completed,10.50,5,USD
101,1,2025-01-02T10:00:00+02:00,Refunded,20,,usd
,2,2025-01-01T10:00:00Z,completed,1,1,USD
A7,2,2025-01-01T10:00:00Z,completed,1,1,USD
102,,2025-01-01T10:00:00Z,completed,1,1,USD
103,x9,2025-01-01T10:00:00Z,completed,1,1,USD
104,2,,completed,1,1,USD
105,2,yesterday,completed,1,1,USD
106,2,2099-01-01T00:00:00Z,completed,1,1,USD
107,2,2025-01-01T10:00:00Z,shipped,1,1,USD
108,2,2025-01-01T10:00:00Z,completed,,1,USD
109,2,2025-01-01T10:00:00Z,completed,abc,1,USD
110,2,2025-01-01T10:00:00Z,completed,-1,1,USD
111,2,2025-01-01T10:00:00Z,completed,1,1.2.3,USD
112,2,2025-01-01T10:00:00Z,completed,1,-1,USD
113,2,2025-01-01T10:00:00Z,completed,1,1,XXX
114,2,2025-01-01T10:00:00Z,completed,1,1,USD,1

115,2,2025-01-01T10:00:00Z,completed,1,1,USD
115,2,2025-01-01T10:00:00Z,completed,2,1,USD
100,1,2025-01-01T10:00:00Z,completed,10.5,5.00,USD
116,99,2025-01-01T10:00:00Z,completed,1,1,USD
117,12,2025-01-05 08:30:00,cancelled,7.25,3,USD
118,1,2024-12-31T10:00:00Z,completed,1,1,USD
119,1,1999-12-31T23:59:59Z,completed,1,1,USD
120,1,2025-01-01T10:00:00Z,completed,1.005,1,USD
121,1,2025-01-01T10:00:00Z,completed,1,1.001,USD
"""

SPEND = """date,channel,spend
2025-01-01,email,10
2025-01-01,email,10.00
2025-13-01,email,1
,email,1
2025-01-02,,1
2025-01-02,email,
2025-01-03,email,ten
2025-01-04,email,-5
2025-01-05,paid_search,3,4
2025-01-06,paid_search,7
2025-01-06,paid_search,8
1999-12-31,email,1
2025-01-07,email,1.001
"""

# (table, line, reason) for every bad row above: the loader must give exactly these.
EXPECTED_QUARANTINE = {
    ("customers", 4, "missing_customer_id"),
    ("customers", 5, "invalid_customer_id"),
    ("customers", 6, "invalid_email"),
    ("customers", 7, "missing_signup_date"),
    ("customers", 8, "unparseable_signup_date"),
    ("customers", 9, "future_signup_date"),
    ("customers", 10, "missing_acquisition_channel"),
    ("customers", 11, "missing_country"),
    ("customers", 12, "invalid_country"),
    ("customers", 13, "exact_duplicate"),
    ("customers", 14, "conflicting_duplicate"),
    ("customers", 15, "conflicting_duplicate"),
    ("customers", 16, "malformed_line"),
    ("customers", 18, "too_early_signup_date"),
    ("orders", 4, "missing_order_id"),
    ("orders", 5, "invalid_order_id"),
    ("orders", 6, "missing_customer_id"),
    ("orders", 7, "invalid_customer_id"),
    ("orders", 8, "missing_ordered_at"),
    ("orders", 9, "unparseable_ordered_at"),
    ("orders", 10, "future_ordered_at"),
    ("orders", 11, "unknown_status"),
    ("orders", 12, "missing_amount"),
    ("orders", 13, "non_numeric_amount"),
    ("orders", 14, "negative_amount"),
    ("orders", 15, "non_numeric_cost"),
    ("orders", 16, "negative_cost"),
    ("orders", 17, "unknown_currency"),
    ("orders", 18, "malformed_line"),
    ("orders", 19, "empty_line"),
    ("orders", 20, "conflicting_duplicate"),
    ("orders", 21, "conflicting_duplicate"),
    ("orders", 22, "exact_duplicate"),
    ("orders", 23, "unknown_customer_id"),
    ("orders", 25, "ordered_before_signup"),
    ("orders", 26, "too_early_ordered_at"),
    ("orders", 27, "too_precise_amount"),
    ("orders", 28, "too_precise_cost"),
    ("marketing_spend", 3, "exact_duplicate"),
    ("marketing_spend", 4, "unparseable_date"),
    ("marketing_spend", 5, "missing_date"),
    ("marketing_spend", 6, "missing_channel"),
    ("marketing_spend", 7, "missing_spend"),
    ("marketing_spend", 8, "non_numeric_spend"),
    ("marketing_spend", 9, "negative_spend"),
    ("marketing_spend", 10, "malformed_line"),
    ("marketing_spend", 11, "conflicting_duplicate"),
    ("marketing_spend", 12, "conflicting_duplicate"),
    ("marketing_spend", 13, "too_early_date"),
    ("marketing_spend", 14, "too_precise_spend"),
}


def write_drop(
    raw: Path, customers: str = CUSTOMERS, orders: str = ORDERS, spend: str = SPEND
) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "customers.csv").write_text(customers)
    (raw / "orders.csv").write_text(orders)
    (raw / "marketing_spend.csv").write_text(spend)


@pytest.fixture
def con(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        yield connection


def test_every_bad_row_is_quarantined_with_its_line_and_reason(tmp_path, con):
    write_drop(tmp_path / "raw")
    report = load_raw(con, tmp_path / "raw", load_time=LOAD_TIME)

    held = set(
        con.execute("select source_table, source_line, reason from raw.quarantine").fetchall()
    )
    assert held == EXPECTED_QUARANTINE
    assert con.execute("select distinct source_file from raw.quarantine order by 1").fetchall() == [
        ("customers.csv",),
        ("marketing_spend.csv",),
        ("orders.csv",),
    ]
    kinds = {reason for _, _, reason in EXPECTED_QUARANTINE}
    assert len(kinds) >= 15

    # nothing lost: rows in = loaded + quarantined, per table and in the file itself
    for name, table in report.tables.items():
        path = tmp_path / "raw" / f"{name}.csv"
        assert table.rows_in == count_input_rows(path)
        assert table.rows_in == table.rows_loaded + table.rows_quarantined
    assert report.tables["orders"].rows_loaded == 3
    assert report.tables["customers"].rows_loaded == 3
    assert report.tables["marketing_spend"].rows_loaded == 1


def test_clean_rows_are_typed_and_normalised(tmp_path, con):
    write_drop(tmp_path / "raw")
    load_raw(con, tmp_path / "raw", load_time=LOAD_TIME)
    orders = con.execute(
        "select order_id, customer_id, ordered_at, status, amount, cost, currency "
        "from raw.orders order by order_id"
    ).fetchall()
    assert [row[0] for row in orders] == [100, 101, 117]
    # +02:00 is converted to UTC; a timestamp without offset is taken as UTC
    assert orders[1][2] == dt.datetime(2025, 1, 2, 8, 0)
    assert orders[2][2] == dt.datetime(2025, 1, 5, 8, 30)
    assert orders[1][3] == "refunded" and orders[1][6] == "USD" and orders[1][5] is None
    assert str(orders[0][4]) == "10.50"
    customers = con.execute("select * from raw.customers order by customer_id").fetchall()
    assert customers[0] == (1, "a@x.com", dt.date(2025, 1, 1), "email", "US")
    assert customers[2] == (12, None, dt.date(2025, 1, 3), "referral", "GB")


def test_quarantine_keeps_the_raw_record(tmp_path, con):
    write_drop(tmp_path / "raw")
    load_raw(con, tmp_path / "raw", load_time=LOAD_TIME)
    (record,) = con.execute(
        "select record from raw.quarantine where source_table = 'orders' and source_line = 13"
    ).fetchone()
    assert json.loads(record)["amount"] == "abc"
    (text,) = con.execute(
        "select record from raw.quarantine where reason = 'malformed_line' "
        "and source_table = 'orders'"
    ).fetchone()
    assert text == "114,2,2025-01-01T10:00:00Z,completed,1,1,USD,1"


def test_every_documented_reason_code_is_reachable():
    codes = reason_codes()
    reached = {(table, reason) for table, _, reason in EXPECTED_QUARANTINE}
    documented = {(table, reason) for table, reasons in codes.items() for reason in reasons}
    assert reached <= documented
    # the codes no fixture row reaches are the ones the generator-free rules make impossible
    assert documented - reached == {
        ("customers", "empty_line"),
        ("marketing_spend", "empty_line"),
    }


@pytest.mark.parametrize(
    ("table", "header", "message"),
    [
        (
            "orders",
            "order_id,customer_id,ordered_at,status,amount,currency",
            "orders.csv: missing column 'cost'",
        ),
        (
            "orders",
            "order_id,customer,ordered_at,status,amount,cost,currency",
            "orders.csv: missing column 'customer_id'",
        ),
        (
            "marketing_spend",
            "date,channel,spend,clicks",
            "marketing_spend.csv: unexpected column 'clicks'",
        ),
        (
            "customers",
            "customer_id,email,email,signup_date,acquisition_channel,country",
            "customers.csv: column 'email' appears more than once",
        ),
    ],
)
def test_wrong_header_fails_naming_file_and_column_and_keeps_last_load(
    tmp_path, con, table, header, message
):
    raw = tmp_path / "raw"
    write_drop(raw)
    load_raw(con, raw, load_time=LOAD_TIME)
    before = con.execute("select count(*) from raw.orders").fetchone()[0]
    held_before = con.execute("select count(*) from raw.quarantine").fetchone()[0]

    # a new drop: more good orders, but one file with a wrong header
    write_drop(raw, orders=ORDERS + "200,1,2025-03-01T00:00:00Z,completed,5,1,USD\n")
    (raw / f"{table}.csv").write_text(header + "\n1,2,3,4,5,6,7\n")
    with pytest.raises(RawInputError, match=message):
        load_raw(con, raw, load_time=LOAD_TIME)
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == before
    assert con.execute("select count(*) from raw.quarantine").fetchone()[0] == held_before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "orders.csv: the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "orders.csv: not a UTF-8 CSV file"),
    ],
)
def test_unreadable_file_fails_clearly(tmp_path, con, content, message):
    raw = tmp_path / "raw"
    write_drop(raw)
    (raw / "orders.csv").write_bytes(content)
    with pytest.raises(RawInputError, match=message):
        load_raw(con, raw, load_time=LOAD_TIME)


def test_missing_file_fails_clearly(tmp_path, con):
    raw = tmp_path / "raw"
    write_drop(raw)
    (raw / "marketing_spend.csv").unlink()
    with pytest.raises(RawInputError, match="no input file for 'marketing_spend'"):
        load_raw(con, raw, load_time=LOAD_TIME)


def test_error_mid_load_rolls_back_everything(tmp_path, con, monkeypatch):
    raw = tmp_path / "raw"
    write_drop(raw)
    load_raw(con, raw, load_time=LOAD_TIME)
    snapshot = {
        t: con.execute(f"select count(*) from raw.{t}").fetchone()[0]
        for t in ("customers", "orders", "marketing_spend", "quarantine")
    }

    write_drop(raw, customers=CUSTOMERS + "13,m@x.com,2025-01-04,email,FR\n")
    real_classify = ingest_duckdb._classify_keys

    def failing_classify(con_, table, *args, **kwargs):
        if table.name == "marketing_spend":
            raise RuntimeError("disk full")
        return real_classify(con_, table, *args, **kwargs)

    monkeypatch.setattr(ingest_duckdb, "_classify_keys", failing_classify)
    with pytest.raises(RuntimeError, match="disk full"):
        load_raw(con, raw, load_time=LOAD_TIME)
    after = {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in snapshot}
    assert after == snapshot
    assert (
        con.execute("select count(*) from raw.customers where customer_id = 13").fetchone()[0] == 0
    )


def test_line_numbers_stay_exact_across_csv_blocks(tmp_path, con, monkeypatch):
    """Malformed lines in different read blocks: good rows keep their physical lines."""
    monkeypatch.setattr(ingest_files, "CSV_BLOCK_BYTES", 4096)
    raw = tmp_path / "raw"
    lines = ["order_id,customer_id,ordered_at,status,amount,cost,currency"]
    bad_lines = {}
    for i in range(1, 3001):
        line_no = i + 1
        if i % 397 == 0:
            lines.append(f"{i},1,2025-01-01T00:00:00Z,completed,1,1,USD,oops")
            bad_lines[line_no] = "malformed_line"
        elif i % 211 == 0:
            lines.append(f"{i},1,2025-01-01T00:00:00Z,completed,-{i},1,USD")
            bad_lines[line_no] = "negative_amount"
        else:
            lines.append(f"{i},1,2025-01-01T00:00:00Z,completed,{i},1,USD")
    write_drop(raw, orders="\n".join(lines) + "\n")
    load_raw(con, raw, load_time=LOAD_TIME)
    held = dict(
        con.execute(
            "select source_line, reason from raw.quarantine where source_table = 'orders'"
        ).fetchall()
    )
    assert held == bad_lines
    # a clean row's amount encodes its line (amount i is on line i + 1): check via quarantine
    # neighbours by loading the clean table in file order
    amounts = [int(a) for (a,) in con.execute("select amount from raw.orders").fetchall()]
    expected = [i for i in range(1, 3001) if (i + 1) not in bad_lines]
    assert amounts == expected


def test_parquet_input_uses_row_numbers(tmp_path, con):
    raw = tmp_path / "raw"
    write_drop(raw)
    (raw / "orders.csv").unlink()
    pq.write_table(
        pa.table(
            {
                "order_id": pa.array([1, 2, 2, 3], pa.int64()),
                "customer_id": pa.array([1, 1, 1, 77], pa.int64()),
                "ordered_at": pa.array(
                    [dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)] * 4, pa.timestamp("us", tz="UTC")
                ),
                "status": ["completed", "completed", "completed", "completed"],
                "amount": [10.0, 5.0, 6.0, 1.0],
                "cost": [4.0, None, None, 1.0],
                "currency": ["USD"] * 4,
            }
        ),
        raw / "orders.parquet",
    )
    report = load_raw(con, raw, load_time=LOAD_TIME)
    assert report.tables["orders"].files == ["orders.parquet"]
    assert con.execute(
        "select source_line, reason from raw.quarantine where source_table = 'orders' order by 1"
    ).fetchall() == [
        (2, "conflicting_duplicate"),
        (3, "conflicting_duplicate"),
        (4, "unknown_customer_id"),
    ]
    assert con.execute("select order_id, ordered_at, amount from raw.orders").fetchall() == [
        (1, dt.datetime(2025, 1, 1, 12), 10)
    ]
    assert count_input_rows(raw / "orders.parquet") == 4


def _raw_state(con) -> dict[str, list]:
    return {
        t: con.execute(f"select * from raw.{t} order by all").fetchall()
        for t in ("customers", "orders", "marketing_spend", "quarantine")
    }


def test_incremental_loads_equal_a_full_load_at_every_step(tmp_path):
    """Daily order files: each load reads only new or changed files, yet after every step the
    raw tables and the quarantine equal a load of all files from scratch, including verdicts
    that span files (duplicates, conflicts, references, rows no longer in the future)."""
    raw = tmp_path / "raw"
    write_drop(raw)
    (raw / "orders.csv").unlink()
    (raw / "orders").mkdir()
    header = ORDERS.splitlines()[0]
    # day 1 without its far-future order: a file holding "future" rows is read again at every
    # load (they may have come due), which would hide which files a load reads
    day1 = ORDERS.replace("106,2,2099-01-01T00:00:00Z,completed,1,1,USD\n", "")
    assert day1 != ORDERS
    (raw / "orders" / "2025-01-01.csv").write_text(day1)
    day2 = "\n".join(
        [
            header,
            "200,1,2025-01-03T09:00:00Z,completed,12,4,USD",  # new
            "117,12,2025-01-05 08:30:00,cancelled,7.25,3,USD",  # exact copy of day 1's
            "101,1,2025-01-02T10:00:00+02:00,completed,20,,USD",  # conflicts with day 1's
            "201,13,2025-01-03T10:00:00Z,completed,5,1,USD",  # customer 13 not yet known
            "202,2,2026-01-02T00:00:00Z,completed,9,1,USD",  # future at the first load time
            "203,2,2025-01-03T11:00:00Z,completed,oops,1,USD",  # bad row
        ]
    )
    later = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)

    def add_day2():
        (raw / "orders" / "2025-01-02.csv").write_text(day2 + "\n")

    def add_customer_13_drop_12():
        text = CUSTOMERS.replace("12,,2025-01-03,referral,gb\n", "")
        (raw / "customers.csv").write_text(text + "13,m@x.com,2025-01-03,email,FR\n")

    def remove_day2():
        (raw / "orders" / "2025-01-02.csv").unlink()

    steps = [
        ("first load", None, LOAD_TIME),
        ("a new day with cross-file duplicates", add_day2, LOAD_TIME),
        ("nothing changed", lambda: None, LOAD_TIME),
        ("the future order is now in the past", lambda: None, later),
        ("customers change: a reference appears, another goes", add_customer_13_drop_12, later),
        ("a day file is withdrawn", remove_day2, later),
    ]
    incremental = duckdb.connect(str(tmp_path / "incremental.duckdb"))
    reads = {}
    for i, (label, change, load_time) in enumerate(steps):
        if change:
            change()
        report = load_raw(incremental, raw, load_time=load_time)
        reads[label] = report.tables["orders"].files_read
        with duckdb.connect(str(tmp_path / f"full{i}.duckdb")) as full:
            load_raw(full, raw, load_time=load_time)
            assert _raw_state(incremental) == _raw_state(full), label
        if label == "the future order is now in the past":
            order_202_clean = [
                n == 1
                for (n,) in incremental.execute(
                    "select count(*) from raw.orders where order_id = 202"
                ).fetchall()
            ]
    incremental.close()
    # the day-1 file was read once at first; later loads read only what changed
    assert reads == {
        "first load": ["orders/2025-01-01.csv"],
        "a new day with cross-file duplicates": ["orders/2025-01-02.csv"],
        "nothing changed": ["orders/2025-01-02.csv"],  # it holds a "future" order
        "the future order is now in the past": ["orders/2025-01-02.csv"],
        "customers change: a reference appears, another goes": [],
        "a day file is withdrawn": [],
    }
    assert order_202_clean == [True]


def test_cross_file_verdicts_after_a_new_day(tmp_path, con):
    """What the equality above relies on, spelled out for one night."""
    raw = tmp_path / "raw"
    write_drop(raw, orders=ORDERS.replace("106,2,2099-01-01T00:00:00Z,completed,1,1,USD\n", ""))
    load_raw(con, raw, load_time=LOAD_TIME)
    (raw / "orders").mkdir()
    (raw / "orders" / "2025-01-02.csv").write_text(
        ORDERS.splitlines()[0] + "\n101,1,2025-01-02T10:00:00+02:00,completed,20,,USD\n"
    )
    report = load_raw(con, raw, load_time=LOAD_TIME)
    assert report.tables["orders"].files_read == ["orders/2025-01-02.csv"]
    held = con.execute(
        "select source_file, source_line, reason, record from raw.quarantine "
        "where source_table = 'orders' and reason = 'conflicting_duplicate' and "
        "record like '%\"101\"%' order by 1, 2"
    ).fetchall()
    # day 1's copy was clean until now; its raw text is read back from its file
    assert [(f, line, reason) for f, line, reason, _ in held] == [
        ("orders.csv", 3, "conflicting_duplicate"),
        ("orders/2025-01-02.csv", 2, "conflicting_duplicate"),
    ]
    assert json.loads(held[0][3])["status"] == "Refunded"
    assert con.execute("select count(*) from raw.orders where order_id = 101").fetchone() == (0,)


def test_clean_rows_are_views_of_the_row_store(tmp_path, con):
    """Each table's clean rows are read from its row store less the quarantine, not kept as a
    second copy of every row. A warehouse whose clean rows are still tables (an older
    version) is loaded afresh once, into the views, with the same rows; the next load
    reads only what it read before."""
    raw = tmp_path / "raw"
    write_drop(raw)
    load_raw(con, raw, load_time=LOAD_TIME)
    tables = ("customers", "orders", "marketing_spend")
    kinds = dict(
        con.execute(
            "select table_name, 'table' from duckdb_tables() where schema_name = 'raw' "
            "union all select view_name, 'view' from duckdb_views() where schema_name = 'raw'"
        ).fetchall()
    )
    assert {t: kinds[t] for t in tables} == dict.fromkeys(tables, "view")
    # the drop's clean orders are 100, 101 and 117; the store also keeps the rows held for
    # their key or reference (two differing copies of 115, the second copy of 100, the
    # unknown customer 99's 116), which the view leaves out
    assert con.execute("select order_id from raw.orders order by 1").fetchall() == [
        (100,),
        (101,),
        (117,),
    ]
    held = con.execute(
        "select count(*) from raw.quarantine where source_table = 'orders' "
        "and list_contains(['conflicting_duplicate', 'exact_duplicate', 'unknown_customer_id', "
        "'ordered_before_signup'], reason)"
    ).fetchone()[0]
    assert held >= 4
    assert con.execute("select count(*) from raw._rows_orders").fetchone()[0] == 3 + held
    state = _raw_state(con)
    # a load with nothing new re-reads only files holding rows "in the future" (the drop's
    # orders and customers have some); the marketing spend is not reloaded
    report = load_raw(con, raw, load_time=LOAD_TIME)
    again = [report.tables[t].files_read for t in tables]
    assert again[2] == [] and _raw_state(con) == state

    # an older warehouse: the clean rows as tables
    for t in tables:
        con.execute(f"create table raw._{t}_copy as select * from raw.{t}")
        con.execute(f"drop view raw.{t}")
        con.execute(f"alter table raw._{t}_copy rename to {t}")
    report = load_raw(con, raw, load_time=LOAD_TIME)
    assert [report.tables[t].files_read for t in tables] == [
        ["customers.csv"],
        ["orders.csv"],
        ["marketing_spend.csv"],
    ]
    assert con.execute(
        "select count(*) from duckdb_views() where schema_name = 'raw' "
        "and list_contains(['customers', 'orders', 'marketing_spend'], view_name)"
    ).fetchone() == (3,)
    assert _raw_state(con) == state
    report = load_raw(con, raw, load_time=LOAD_TIME)
    assert [report.tables[t].files_read for t in tables] == again
    assert _raw_state(con) == state


def test_a_customer_whose_copy_arrives_in_another_file_re_decides_its_orders(tmp_path):
    """Customers in several files: a new file holding a differing copy of a customer that an
    unchanged file holds takes the customer out (conflicting_duplicate), so its orders become
    unknown_customer_id, as in a fresh load; when the file goes, they come back. The customer's
    state before the load is read from the unchanged file, as it was."""
    raw = tmp_path / "raw"
    # without the far-future order, whose file every load reads again (re-deciding every order)
    write_drop(raw, orders=ORDERS.replace("106,2,2099-01-01T00:00:00Z,completed,1,1,USD\n", ""))
    header, *lines = CUSTOMERS.splitlines()
    (raw / "customers.csv").unlink()
    (raw / "customers").mkdir()
    # without the customer signing up in the future, whose file every load reads again
    kept = [line for line in lines if not line.startswith("7,")]
    assert len(kept) == len(lines) - 1
    (raw / "customers" / "a.csv").write_text("\n".join([header, *kept]) + "\n")
    copy = raw / "customers" / "b.csv"
    orders_of_1 = "select order_id from raw.orders where customer_id = 1 order by 1"
    unknown = (
        "select source_line from raw.quarantine where source_table = 'orders' "
        "and reason = 'unknown_customer_id' order by 1"
    )
    with duckdb.connect(str(tmp_path / "night.duckdb")) as night:
        load_raw(night, raw, load_time=LOAD_TIME)
        assert night.execute(orders_of_1).fetchall() == [(100,), (101,)]
        unknown_before = night.execute(unknown).fetchall()
        for step in ("a differing copy of customer 1 arrives", "it goes again"):
            if copy.exists():
                copy.unlink()
            else:
                copy.write_text(header + "\n1,other@x.com,2025-01-01,Email,us\n")
            report = load_raw(night, raw, load_time=LOAD_TIME)
            # customer 1's own file is not read again: its row and verdict are the last load's;
            # the orders are re-decided for the customers that changed, their file not read
            assert report.tables["customers"].files_read == (
                ["customers/b.csv"] if copy.exists() else []
            )
            assert report.tables["orders"].files_read == []
            with duckdb.connect(str(tmp_path / f"fresh-{len(step)}.duckdb")) as fresh:
                load_raw(fresh, raw, load_time=LOAD_TIME)
                assert _raw_state(night) == _raw_state(fresh), step
            if copy.exists():
                # customer 1's orders on lines 2 (order 100) and 3 (101), and on line 24
                # order 118, dated before the signup, are now of an unknown customer; the
                # exact copy of 100 on line 21 stays exact_duplicate (keys are judged first),
                # and order 116 of the unknown customer 99 was on line 22 all along
                assert night.execute(orders_of_1).fetchall() == []
                assert unknown_before == [(22,)]
                assert night.execute(unknown).fetchall() == [(2,), (3,), (22,), (24,)]
            else:
                assert night.execute(orders_of_1).fetchall() == [(100,), (101,)]
                assert night.execute(unknown).fetchall() == unknown_before
