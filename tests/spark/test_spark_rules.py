"""The raw-row rules, written once (``ingest.raw_tables``), type and judge every row the same way
on DuckDB and on Spark: same reason, same typed values, for a generated shop's bad rows and for
edge cases chosen where the two engines' casts could differ."""

import datetime as dt
import unicodedata
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from ltv_pipeline import ingest
from ltv_pipeline.ingest.spark import register_functions
from ltv_pipeline.sample.generate import generate_shop

LOAD_TIME = dt.datetime(2026, 6, 30, 12, 0, 0)
PARAMS = {
    "load_time": LOAD_TIME,
    "load_date": LOAD_TIME.date(),
    "currency": "USD",
    "earliest_date": dt.date(2000, 1, 1),
}
#: Words the engines' date casts take for special values: both must refuse them.
SENTINELS = ("epoch", "infinity", "-infinity", "now", "today", "tomorrow", "allballs")
#: One channel in its two Unicode forms (and upper case): one key on both engines.
ECOLE = (unicodedata.normalize("NFC", "école"), unicodedata.normalize("NFD", "école"), "ÉCOLE")


@pytest.fixture(autouse=True)
def _functions(spark):
    """The functions the rules call that Spark SQL lacks (NFC), as the loader registers them."""
    register_functions(spark)


# Values where number, date and time parsing could differ between the engines.
EDGE_CASES: dict[str, list[dict[str, str]]] = {
    "orders": [
        {"order_id": v, "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z"}
        for v in (" 12 ", "12.0", "12.5", "1e3", "+5", "-0", "0x1F", "9223372036854775808", "")
    ]
    + [
        {"order_id": v, "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z"}
        for v in ("-42", "0", "007", "+0")
    ]
    + [
        {"order_id": "1", "customer_id": "1", "ordered_at": v}
        for v in (
            "2025-01-10T09:00:00Z",
            "2025-01-10T09:00:00+02:00",
            "2025-01-10 09:00:00",
            "2025-01-10T09:00:00.123456Z",
            "2025-01-10",
            "2025-1-5T09:00:00Z",
            "2025-02-30T10:00:00Z",
            "2026-06-30T12:00:01Z",
            "2026-06-30T11:59:59Z",
            " 2025-01-10T09:00:00Z ",
            "10/01/2025 09:00",
            "yesterday",
            # ISO's basic form and Shopify's spaced offset parse; the rest must be refused by
            # both (Spark's own cast takes a bare year or month as January 1)
            "20250131",
            "20250230",
            "2025-01-31 14:05:00 -0500",
            "2025-01-31 14:05:00 -05:00",
            "2025-01-31 14:05:00 +05",
            "1735689600",
            "2025",
            "2025-01",
            "2025-01-31T10",
            # sentinels and dates before the earliest date (2000-01-01 here)
            *SENTINELS,
            "2025-01-10 09:00:00 infinity",
            "1900-01-01T00:00:00Z",
            "1999-12-31T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "2000-01-01 05:00:00+05:30",
        )
    ]
    + [
        {"order_id": "1", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z", "amount": v}
        for v in ("10", "10.005", "1e2", "-0.01", " 7.50 ", "1,000", "12.5.0", "abc", "")
    ]
    + [
        {"order_id": "1", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z", "amount": v}
        for v in ("12.345", "1e-3", "1_000", "10.500", ".25", "1.", "-0.001", "0x10", "NaN")
    ]
    + [
        {"order_id": "1", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z", "status": v}
        for v in ("Completed", " refunded ", "shipped", "")
    ]
    + [
        {"order_id": "1", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z", "currency": v}
        for v in ("usd", "EUR", "")
    ],
    "customers": [
        {"customer_id": "1", "signup_date": v}
        for v in (
            "2025-02-28",
            "2025-02-30",
            "2025-1-5",
            "31/12/2025",
            "2026-07-01",
            " 2025-03-01 ",
            "20250131",
            "20251301",
            "2025",
            "2025-01",
            *SENTINELS,
            "2025-01-01T00:00:00 infinity",
            "1900-01-01",
            "1999-12-31",
            "2000-01-01",
        )
    ]
    + [{"customer_id": "1", "signup_date": "2025-01-01", "acquisition_channel": v} for v in ECOLE]
    + [{"customer_id": "1", "signup_date": "2025-01-01", "country": v} for v in ("us", "USA", "U1")]
    + [
        {"customer_id": "1", "signup_date": "2025-01-01", "email": v}
        for v in ("a@b.c", "ab.c", "@b.c", "a@", " ")
    ],
    "marketing_spend": [
        {"date": v, "channel": "email", "spend": "5"}
        for v in ("2025-01-01", "2025-13-01", "", "20250101", "epoch", "-infinity", "1999-12-31")
    ]
    + [{"date": "2025-01-01", "channel": v, "spend": "5"} for v in ECOLE]
    + [{"date": "2025-01-01", "channel": "email", "spend": v} for v in ("5.125", "5e1", "5.10")],
}
DEFAULTS = {
    "orders": {"status": "completed", "amount": "10", "cost": "", "currency": "USD"},
    "customers": {"email": "a@x.com", "acquisition_channel": "email", "country": "US"},
    "marketing_spend": {},
}


def _text_rows(tmp_path) -> dict[str, pa.Table]:
    """Per table: a generated shop's rows (3% bad, every reason) plus the edge cases, as text."""
    generate_shop(tmp_path, customers=400, seed=5, bad_share=0.03)
    tables = {}
    for name, table in ingest.TABLES.items():
        batches = list(
            ingest.csv_batches(tmp_path / f"{name}.csv", table, f"{name}.csv", malformed=[])
        )
        generated = pa.concat_tables(batches)
        edge = [
            {**dict.fromkeys(table.columns, ""), **DEFAULTS[name], **e} for e in EDGE_CASES[name]
        ]
        edge_table = pa.table(
            {
                "source_file": ["edge"] * len(edge),
                "source_line": pa.array(range(1, len(edge) + 1), pa.int64()),
                **{c: pa.array([row[c] for row in edge], pa.string()) for c in table.columns},
            }
        )
        tables[name] = pa.concat_tables([generated, edge_table])
    return tables


def _results(rows: list[tuple], typed: list[str]) -> dict[tuple, tuple]:
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_rules_give_the_same_reasons_and_values_on_duckdb_and_spark(tmp_path, spark):
    tables = _text_rows(tmp_path)
    spark_tables = ingest.raw_tables(ingest.SPARK)
    for name, text in tables.items():
        duck_table, spark_table = ingest.TABLES[name], spark_tables[name]
        typed = list(duck_table.typed)
        select = (
            "select source_file, source_line, row_reason, "
            + ", ".join(f"t_{c}" for c in typed)
            + " from ({}) order by source_file, source_line"
        )
        with duckdb.connect() as con:
            con.register("src", text)
            query = ingest.typed_query(duck_table, "select * from src")
            used = {k: v for k, v in PARAMS.items() if f"${k}" in query}
            duck = con.execute(select.format(query), used or None).fetchall()
        spark.createDataFrame(text).createOrReplaceTempView("src")
        query = ingest.typed_query(spark_table, "select * from src")
        used = {k: v for k, v in PARAMS.items() if f":{k}" in query}
        sparked = [tuple(r) for r in spark.sql(select.format(query), args=used).collect()]

        assert len(duck) == len(sparked) == text.num_rows
        duck_by_row, spark_by_row = _results(duck, typed), _results(sparked, typed)
        differing = {
            key: (duck_by_row[key], spark_by_row[key])
            for key in duck_by_row
            if duck_by_row[key] != spark_by_row[key]
        }
        assert not differing, f"{name}: rows judged or typed differently: {differing}"
        reasons = {r[2] for r in duck if r[2] is not None}
        # the generated bad rows reach (nearly) every row rule; the test is not vacuous
        assert len(reasons) >= {"orders": 12, "customers": 7, "marketing_spend": 3}[name], reasons


def test_edge_values_are_typed_as_documented(tmp_path, spark):
    """A few of the edge cases pinned to their expected outcome on Spark (DuckDB equals it)."""
    table = ingest.raw_tables(ingest.SPARK)["orders"]
    rows = [
        {**dict.fromkeys(table.columns, ""), **DEFAULTS["orders"], **e}
        for e in (
            {"order_id": "7", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00+02:00"},
            {"order_id": "8", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z"},
            {"order_id": "9", "customer_id": "1", "ordered_at": "2026-06-30T12:00:01Z"},
            {"order_id": "10", "customer_id": "1", "ordered_at": "2025-01-10", "amount": "7.5"},
            {"order_id": "12.5", "customer_id": "1", "ordered_at": "2025-01-10T09:00:00Z"},
        )
    ]
    frame = pa.table(
        {
            "source_file": ["f"] * len(rows),
            "source_line": pa.array(range(len(rows)), pa.int64()),
            **{c: [r[c] for r in rows] for c in table.columns},
        }
    )
    spark.createDataFrame(frame).createOrReplaceTempView("src")
    got = spark.sql(
        f"select t_order_id, t_ordered_at, t_amount, row_reason "
        f"from ({ingest.typed_query(table, 'select * from src')}) order by source_line",
        args={"load_time": LOAD_TIME, "currency": "USD", "earliest_date": dt.date(2000, 1, 1)},
    ).collect()
    assert [tuple(r) for r in got] == [
        (7, dt.datetime(2025, 1, 10, 7, 0), Decimal("10.00"), None),
        (8, dt.datetime(2025, 1, 10, 9, 0), Decimal("10.00"), None),
        (9, dt.datetime(2026, 6, 30, 12, 0, 1), Decimal("10.00"), "future_ordered_at"),
        (10, dt.datetime(2025, 1, 10, 0, 0), Decimal("7.50"), None),
        (None, dt.datetime(2025, 1, 10, 9, 0), Decimal("10.00"), "invalid_order_id"),
    ]


# (date format, ordered_at text, signup_date text) -> the values both engines must give
CONFIGURED_DATES = {
    "dayfirst": [
        ("31/01/2025 14:05", "31/01/2025", dt.datetime(2025, 1, 31, 14, 5), dt.date(2025, 1, 31)),
        ("1.2.2025 09:30:15", "1.2.2025", dt.datetime(2025, 2, 1, 9, 30, 15), dt.date(2025, 2, 1)),
        ("31/02/2025", "01/31/2025", None, None),
        (
            "2025-01-31T10:00:00+01:00",
            "20250131",
            dt.datetime(2025, 1, 31, 9),
            dt.date(2025, 1, 31),
        ),
        ("31/01/2025 24:00", "31/01/25", None, None),
    ],
    "monthfirst": [
        ("01/31/2025 14:05", "12/31/2024", dt.datetime(2025, 1, 31, 14, 5), dt.date(2024, 12, 31)),
        ("31/01/2025", "13/01/2025", None, None),
    ],
    "epoch_seconds": [
        ("1735689600", "1735775999", dt.datetime(2025, 1, 1), dt.date(2025, 1, 1)),
        ("20250131", "0", dt.datetime(1970, 8, 23, 9, 2, 11), dt.date(1970, 1, 1)),
        ("1735689600.5", "-1", None, None),
        ("999999999999", "1e9", None, None),
    ],
    "%d.%m.%Y %H:%M:%S %z": [
        (
            "31.01.2025 14:05:00 -0500",
            "31.01.2025 23:00:00 +0100",
            dt.datetime(2025, 1, 31, 19, 5),
            dt.date(2025, 1, 31),
        ),
        (
            "31.01.2025 14:05:00 Z",
            "2025-01-31",
            dt.datetime(2025, 1, 31, 14, 5),
            dt.date(2025, 1, 31),
        ),
        ("31.01.2025 14:05", "31.01.2025", None, None),
    ],
}


def _both_engines(spark, table: str, mapping: ingest.InputMapping, rows: list[dict]) -> list:
    """(row_reason, typed values) per row, once per engine: DuckDB's, Spark's."""
    duck_table = ingest.raw_tables(ingest.DUCKDB, mapping)[table]
    spark_table = ingest.raw_tables(ingest.SPARK, mapping)[table]
    full = [{**dict.fromkeys(duck_table.columns, ""), **DEFAULTS[table], **r} for r in rows]
    text = pa.table(
        {
            "source_file": ["f"] * len(full),
            "source_line": pa.array(range(len(full)), pa.int64()),
            **{c: pa.array([r[c] for r in full], pa.string()) for c in duck_table.columns},
        }
    )
    select = (
        "select row_reason, "
        + ", ".join(f"t_{c}" for c in duck_table.typed)
        + " from ({}) order by source_line"
    )
    with duckdb.connect() as con:
        con.register("src", text)
        query = ingest.typed_query(duck_table, "select * from src")
        used = {k: v for k, v in PARAMS.items() if f"${k}" in query}
        duck = con.execute(select.format(query), used or None).fetchall()
    spark.createDataFrame(text).createOrReplaceTempView("src")
    query = ingest.typed_query(spark_table, "select * from src")
    used = {k: v for k, v in PARAMS.items() if f":{k}" in query}
    return [duck, [tuple(r) for r in spark.sql(select.format(query), args=used).collect()]]


def test_configured_date_formats_read_the_same_on_both_engines(tmp_path, spark):
    for date_format, cases in CONFIGURED_DATES.items():
        sections = "".join(f"[{t}]\ndate_format = '{date_format}'\n" for t in ingest.LOAD_ORDER)
        (tmp_path / "m.toml").write_text(sections)
        mapping = ingest.read_input_mapping(tmp_path / "m.toml")
        orders = [{"order_id": "1", "customer_id": "1", "ordered_at": c[0]} for c in cases]
        customers = [{"customer_id": "1", "signup_date": c[1]} for c in cases]
        duck, sparked = _both_engines(spark, "orders", mapping, orders)
        assert duck == sparked, date_format
        assert [r[3] for r in duck] == [c[2] for c in cases], date_format
        duck, sparked = _both_engines(spark, "customers", mapping, customers)
        assert duck == sparked, date_format
        assert [r[3] for r in duck] == [c[3] for c in cases], date_format


def test_mapped_status_values_read_the_same_on_both_engines(tmp_path, spark):
    (tmp_path / "m.toml").write_text(
        "[orders.status]\npaid = 'completed'\nvoided = 'cancelled'\n"
        "partially_refunded = 'completed'\n"
    )
    mapping = ingest.read_input_mapping(tmp_path / "m.toml")
    values = ["paid", " Voided ", "PARTIALLY_REFUNDED", "refunded", "pending", ""]
    orders = [
        {"order_id": "1", "customer_id": "1", "ordered_at": "2025-01-10", "status": v}
        for v in values
    ]
    duck, sparked = _both_engines(spark, "orders", mapping, orders)
    assert duck == sparked
    assert [(r[0], r[4]) for r in duck] == [
        (None, "completed"),
        (None, "cancelled"),
        (None, "completed"),
        (None, "refunded"),
        ("unknown_status", "pending"),
        ("unknown_status", ""),
    ]
