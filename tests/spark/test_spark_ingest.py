"""Spark's raw load equals DuckDB's on the same files: clean tables and quarantine, row for row."""

import datetime as dt
import shutil

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ltv_pipeline import ingest
from ltv_pipeline.ingest.spark import load_raw_spark
from ltv_pipeline.sample.generate import generate_shop

LOAD_TIME = dt.datetime(2026, 6, 30, 12, 0, 0)


def _drop(tmp_path):
    """A generated shop with every kind of bad row, its orders split over a CSV, a Parquet file
    of typed columns and a CSV in a sub-folder (cross-file duplicates included)."""
    raw = tmp_path / "raw"
    generate_shop(raw, customers=600, seed=11, bad_share=0.03)
    orders = pacsv.read_csv(
        raw / "orders.csv",
        parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
        convert_options=pacsv.ConvertOptions(
            column_types={c: "string" for c in ingest.TABLES["orders"].columns}
        ),
    )
    lines = (raw / "orders.csv").read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    third = len(body) // 3
    (raw / "orders.csv").write_text(header + "".join(body[:third]))
    (raw / "orders").mkdir()
    (raw / "orders" / "late.csv").write_text(header + "".join(body[third : 2 * third]))
    # the same rows again in Parquet: every one becomes a cross-file duplicate of the CSV copy
    pq.write_table(orders.slice(0, 50), raw / "orders" / "copy.parquet")
    (raw / "orders" / "rest.csv").write_text(header + "".join(body[2 * third :]))
    return raw


def _duckdb_state(raw) -> dict[str, list[tuple]]:
    with duckdb.connect() as con:
        ingest.load_raw(con, raw, load_time=LOAD_TIME)
        return {
            name: con.execute(f"select * from raw.{name} order by all").fetchall()
            for name in (*ingest.LOAD_ORDER, ingest.QUARANTINE_TABLE)
        }


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: tuple((v is not None, v) for v in row))


def test_spark_loads_and_quarantines_exactly_what_duckdb_does(tmp_path, spark):
    raw = _drop(tmp_path)
    want = _duckdb_state(raw)
    report = load_raw_spark(spark, raw, load_time=LOAD_TIME)
    for name in want:
        got = [tuple(r) for r in spark.table(f"raw.{name}").collect()]
        assert _sorted(got) == _sorted(want[name]), name
    reasons = {r[3] for r in want[ingest.QUARANTINE_TABLE]}
    assert {"malformed_line", "exact_duplicate", "conflicting_duplicate"} <= reasons
    assert len(reasons) >= 20
    files = {r[1] for r in want[ingest.QUARANTINE_TABLE]}
    assert "orders/copy.parquet" in files  # Parquet rows are named by path and row number
    orders = report.tables["orders"]
    assert orders.rows_loaded == len(want["orders"])
    assert orders.rows_quarantined == sum(
        1 for r in want[ingest.QUARANTINE_TABLE] if r[0] == "orders"
    )


def test_a_bad_header_is_refused_before_anything_is_written(tmp_path, spark):
    raw = _drop(tmp_path)
    shutil.copy(raw / "customers.csv", raw / "orders" / "wrong.csv")
    with pytest.raises(ingest.RawInputError, match=r"wrong\.csv: missing column 'order_id'"):
        load_raw_spark(spark, raw, load_time=LOAD_TIME)


def test_typed_parquet_loads_the_same_on_both_engines(tmp_path, spark):
    """The generator's typed Parquet (int64 ids, UTC timestamps, doubles), plus a file repeating
    some orders (exact duplicates, quarantined with their text) and one changing them."""
    raw = tmp_path / "raw"
    generate_shop(raw, customers=300, seed=3, fmt="parquet")
    orders = pq.read_table(raw / "orders.parquet")
    (raw / "orders").mkdir()
    pq.write_table(orders.slice(0, 20), raw / "orders" / "repeat.parquet")
    changed = orders.slice(20, 5).set_column(4, "amount", pa.array([1.25] * 5, pa.float64()))
    pq.write_table(changed, raw / "orders" / "changed.parquet")
    want = _duckdb_state(raw)
    load_raw_spark(spark, raw, load_time=LOAD_TIME)
    for name in want:
        got = [tuple(r) for r in spark.table(f"raw.{name}").collect()]
        assert _sorted(got) == _sorted(want[name]), name
    reasons = [r[3] for r in want[ingest.QUARANTINE_TABLE]]
    assert reasons.count("exact_duplicate") == 20
    assert reasons.count("conflicting_duplicate") == 10


def test_a_mapped_export_and_a_failed_share_are_the_same_on_both_engines(tmp_path, spark):
    """The Shopify-style export of tests/test_ingest_exports.py through its mapping file loads
    the same on Spark; a drop with most orders unparseable fails on Spark with DuckDB's message,
    before anything is written."""
    from tests.unit.test_ingest_exports import SHOPIFY_MAPPING, shopify_drop, write

    raw = shopify_drop(tmp_path)
    (tmp_path / "mapping.toml").write_text(SHOPIFY_MAPPING)
    mapping = ingest.read_input_mapping(tmp_path / "mapping.toml")
    with duckdb.connect() as con:
        ingest.load_raw(con, raw, load_time=LOAD_TIME, mapping=mapping)
        want = {
            name: con.execute(f"select * from raw.{name} order by all").fetchall()
            for name in (*ingest.LOAD_ORDER, ingest.QUARANTINE_TABLE)
        }
    load_raw_spark(spark, raw, load_time=LOAD_TIME, mapping=mapping)
    for name in want:
        got = [tuple(r) for r in spark.table(f"raw.{name}").collect()]
        assert _sorted(got) == _sorted(want[name]), name
    assert len(want["orders"]) == 4

    bad = tmp_path / "bad"
    write(
        bad,
        customers=["1,a@x.com,2025-01-01,email,US"],
        orders=["10,1,31/01/2025,completed,10,,USD", "11,1,2025-01-02,completed,10,,USD"],
        spend=["2025-01-01,email,3"],
    )
    messages = []
    with duckdb.connect() as con, pytest.raises(ingest.RawInputError) as duck_error:
        ingest.load_raw(con, bad, load_time=LOAD_TIME, max_quarantine_share=0.4)
    messages.append(str(duck_error.value))
    with pytest.raises(ingest.RawInputError) as spark_error:
        load_raw_spark(spark, bad, load_time=LOAD_TIME, max_quarantine_share=0.4)
    messages.append(str(spark_error.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("orders: 1 of 2 rows (50%)")
    assert "unparseable_ordered_at: 1 rows, e.g. orders.csv:2 " in messages[0]
    # the mapped load above is still what Spark's raw tables hold
    assert len(spark.table("raw.orders").collect()) == 4


def test_nested_gzip_multiline_and_before_signup_rows_load_the_same_on_both_engines(
    tmp_path, spark
):
    """Issue 16: the files find_files now reads, records with quoted line breaks and the
    ordered_before_signup verdict, on both engines."""
    import gzip

    raw = tmp_path / "raw"
    (raw / "orders" / "2026" / "07").mkdir(parents=True)
    header = "order_id,customer_id,ordered_at,status,amount,cost,currency\n"
    (raw / "customers.csv").write_text(
        "customer_id,email,signup_date,acquisition_channel,country\n"
        '1,a@x.com,2025-01-01,"paid\nsearch",US\n'
        "2,b@x.com,2025-02-01,email,US\n"
        "3,c@x.com,,email,US\n"
    )
    (raw / "marketing_spend.CSV").write_text("date,channel,spend\n2025-01-01,email,10\n")
    (raw / "orders" / "2026" / "07" / "01.csv").write_text(
        header + "1,1,2025-01-05T10:00:00Z,completed,10,4,USD\n"
    )
    (raw / "orders" / "late.csv.gz").write_bytes(
        gzip.compress(
            (
                header + "2,2,2025-01-31T23:00:00-05:00,completed,10,4,USD\n"
                "3,2,2025-01-31T18:00:00-05:00,completed,10,4,USD\n"
                "4,2,never,completed,10,4,USD\n"
            ).encode()
        )
    )
    (raw / "orders" / "notes.txt").write_text("by hand\n")
    want = _duckdb_state(raw)
    report = load_raw_spark(spark, raw, load_time=LOAD_TIME)
    for name in want:
        got = [tuple(r) for r in spark.table(f"raw.{name}").collect()]
        assert _sorted(got) == _sorted(want[name]), name
    held = {(r[1], r[2], r[3]) for r in want[ingest.QUARANTINE_TABLE]}
    assert held == {
        ("customers.csv", 5, "missing_signup_date"),
        ("orders/late.csv.gz", 3, "ordered_before_signup"),
        ("orders/late.csv.gz", 4, "unparseable_ordered_at"),
    }
    assert report.ignored == ["orders/notes.txt"]
