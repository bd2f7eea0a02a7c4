"""Typed Parquet columns are typed from their values, as the text rules type their text.

The loader's rules read every column as text; for a Parquet column that is already typed the
loader skips printing and parsing (``ingest.rules.native_typed``). These tests hold the two
ways to the same result value by value, edges included, and then a whole load of a typed
Parquet shop to the load of the same shop with every column as text.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltv_pipeline import ingest
from ltv_pipeline.ingest import duckdb as ingest_duckdb
from ltv_pipeline.ingest.rules import TABLES, native_typed, typed_query, use_utc

#: (table, typed column) of each kind: its text rule is the reference.
RULES = {
    "id": ("orders", "order_id"),
    "timestamp": ("orders", "ordered_at"),
    "date": ("customers", "signup_date"),
    "money": ("orders", "amount"),
}


def _both_ways(kind: str, source_type: str, literals: list[str]) -> list[tuple]:
    """(value, text rule's result, native result) for each SQL literal of ``source_type``."""
    table, column = RULES[kind]
    text_rule = TABLES[table].typed[column]
    native = native_typed(kind, '"n"', source_type, text_rule)
    assert native is not None, (kind, source_type)
    values = ", ".join(f"({lit}::{source_type})" for lit in literals)
    with duckdb.connect() as con:
        use_utc(con)
        return con.execute(
            f"select n, {text_rule}, {native} from (select n, cast(n as varchar) as "
            f'"{column}" from (values {values}) as v(n))'
        ).fetchall()


def _assert_same(rows: list[tuple]) -> None:
    differ = [r for r in rows if r[1] != r[2]]
    assert not differ, differ[:10]


@pytest.mark.parametrize(
    ("source_type", "literals"),
    [
        (
            "BIGINT",
            ["-5", "0", "1", "42", "9223372036854775807", "(-9223372036854775807 - 1)", "null"],
        ),
        ("INTEGER", ["-1", "0", "7", "2147483647"]),
        ("UBIGINT", ["0", "1", "18446744073709551615"]),
        ("TINYINT", ["-127", "0", "3"]),
    ],
)
def test_ids(source_type, literals):
    rows = _both_ways("id", source_type, literals)
    _assert_same(rows)
    # positive and within BIGINT: the id; else null (invalid_<column>)
    for value, _, native in rows:
        valid = value is not None and 0 < value <= 2**63 - 1
        assert native == (value if valid else None), value


TIMESTAMPS = [
    "'2025-01-31 23:59:59.999999+00'",
    "'2024-02-29 12:00:00+05:30'",
    "'2025-06-30 00:00:00-11:00'",
    "'1000-01-01 00:00:00+00'",
    "'0999-12-31 23:00:00+00'",
    "'9999-12-31 23:59:59+00'",
    "'10000-01-01 00:00:00+00'",
    "'0001-01-01 00:00:00+00'",
    "('0001-01-01 00:00:00'::timestamp - interval 100 year)",
    "'infinity'",
    "'-infinity'",
    "null",
]


@pytest.mark.parametrize("source_type", ["TIMESTAMP WITH TIME ZONE", "TIMESTAMP"])
def test_timestamps(source_type):
    literals = TIMESTAMPS
    if source_type == "TIMESTAMP":
        literals = [
            lit.replace("+05:30", "").replace("-11:00", "").replace("+00", "") for lit in literals
        ]
    rows = _both_ways("timestamp", source_type, literals)
    _assert_same(rows)
    by_text = {str(r[0]): r[2] for r in rows}
    if source_type == "TIMESTAMP WITH TIME ZONE":
        # an offset is converted to UTC, as its text is
        assert by_text["2024-02-29 06:30:00+00:00"] == dt.datetime(2024, 2, 29, 6, 30)
        assert by_text["2025-06-30 11:00:00+00:00"] == dt.datetime(2025, 6, 30, 11)


@pytest.mark.parametrize("kind", ["timestamp", "date"])
def test_dates(kind):
    literals = [
        "'2025-01-31'",
        "'2024-02-29'",
        "'1000-01-01'",
        "'0999-12-31'",
        "'9999-12-31'",
        "'12000-01-01'",
        "('0001-01-01'::date - interval 100 year)",
        "'infinity'",
        "null",
    ]
    rows = _both_ways(kind, "DATE", literals)
    _assert_same(rows)
    assert rows[0][2] == (dt.datetime(2025, 1, 31) if kind == "timestamp" else dt.date(2025, 1, 31))


def test_money_doubles_at_the_edges():
    """At most 2 decimals in the shortest text: 70.605 and 1e-05 are not money, 0.29 is."""
    values = [
        0.0,
        -0.0,
        0.1,
        0.29,
        70.605,
        12.5,
        1e-05,
        0.005,
        1.005,
        2.675,
        0.015,
        100.0,
        -3.25,
        123456789012.34,
        9999999999999.99,
        5e12,
        1e12 + 0.01,
        1e13,
        1.5e13,
        1e15,
        1e16 + 2,
        1e20,
        1.7976931348623157e308,
        5e-324,
        0.1 + 0.2,
        1 / 3,
        float("nan"),
        float("inf"),
        float("-inf"),
    ]
    literals = [f"'{v!r}'" for v in values] + ["null"]
    rows = _both_ways("money", "DOUBLE", literals)
    _assert_same(rows)
    typed = {r[0]: r[2] for r in rows if r[0] is not None and not math.isnan(r[0])}
    assert typed[0.29] is not None and str(typed[0.29]) == "0.29"
    assert typed[70.605] is None and typed[1e-05] is None and typed[0.1 + 0.2] is None
    assert str(typed[9999999999999.99]) == "9999999999999.99"


def test_money_doubles_at_random():
    """20,000 doubles: cents values over 13 orders of magnitude, and values with more places."""
    rng = random.Random(18)
    values = []
    for _ in range(10_000):
        cents = rng.randrange(0, 10 ** rng.randrange(1, 16))
        values.append((cents if rng.random() < 0.9 else -cents) / 100)
        values.append(rng.uniform(0, 10 ** rng.randrange(0, 14)))
    rows = _both_ways("money", "DOUBLE", [f"'{v!r}'" for v in values])
    _assert_same(rows)
    assert sum(r[2] is not None for r in rows) > 9_000


@pytest.mark.parametrize(
    ("source_type", "literals"),
    [
        ("DECIMAL(10,2)", ["1.23", "-0.5", "99999999.99", "0"]),
        ("DECIMAL(38,0)", ["12", "99999999999999999999"]),
        ("DECIMAL(4,1)", ["12.5"]),
        ("BIGINT", ["0", "-3", "12", "100000000000000000"]),
        ("INTEGER", ["7"]),
    ],
)
def test_money_decimals_and_integers(source_type, literals):
    _assert_same(_both_ways("money", source_type, literals))


def test_what_only_the_text_can_type_is_read_as_text():
    text_rule = TABLES["orders"].typed["amount"]
    assert native_typed("money", '"n"', "DECIMAL(12,3)", text_rule) is None
    assert native_typed("money", '"n"', "FLOAT", text_rule) is None
    assert native_typed("id", '"n"', "DOUBLE", text_rule) is None
    assert native_typed("date", '"n"', "TIMESTAMP WITH TIME ZONE", text_rule) is None
    assert native_typed("timestamp", '"n"', "VARCHAR", text_rule) is None
    # another date format than ISO: dates are read as text only
    mapped = ingest.raw_tables(
        ingest.DUCKDB,
        ingest.InputMapping(tables={"orders": ingest.rules.TableMapping(date_format="dayfirst")}),
    )
    assert "ordered_at" not in mapped["orders"].kinds
    assert mapped["orders"].kinds["amount"] == "money"


def test_blank_tests_of_natively_typed_columns_read_the_native_value():
    """Printing every row's value to test it for blanks took 1.7 s of a 10M-order load."""
    orders = TABLES["orders"]
    native = {"order_id": native_typed("id", '"n_order_id"', "BIGINT", orders.typed["order_id"])}
    sql = typed_query(orders, "select 1", native)
    assert 'nullif(trim("order_id")' not in sql
    assert '"n_order_id" is null' in sql
    assert "nullif(trim(\"customer_id\"), '') is null" in sql  # read as text: tested as text


def test_the_text_of_a_natively_typed_column_is_printed_only_where_a_rule_reads_it():
    """The source carries no text column for it: printing every row's amount, time and ids
    took 1.3 s of the 3.2 s the 10M-order typing query takes. The rules still read the same
    text where the native value cannot decide (checked value by value by the typed and text
    shops below)."""
    orders = TABLES["orders"]
    native = {
        "amount": native_typed("money", '"n_amount"', "DOUBLE", orders.typed["amount"]),
        "order_id": native_typed("id", '"n_order_id"', "BIGINT", orders.typed["order_id"]),
    }
    sql = typed_query(orders, "select 1", native)
    assert '"amount"' not in sql and '"order_id"' not in sql
    # read inside the fallback branch and the precision rule only
    assert sql.count('cast("n_amount" as varchar)') == 3
    assert 'cast("n_order_id" as varchar)' not in sql  # an id's rule never needs its text
    assert '"customer_id"' in sql  # read as text: a column of the source


def _typed_and_text_shop(raw_typed: Path, raw_text: Path, variant: str) -> None:
    """One shop twice: Parquet columns typed, and every column as text. ``doubles``: ids
    BIGINT, times with a zone, money as doubles; ``others``: ids INTEGER, times without a zone,
    amounts DECIMAL(12, 2) in a column named ``total``, whole costs as BIGINT."""
    rng = random.Random(5)
    n = 3_000
    customers = {
        "customer_id": pa.array([i + 1 for i in range(200)] + [0, -4, 150], pa.int64()),
        "email": [f"c{i}@x.com" for i in range(203)],
        "signup_date": pa.array(
            [dt.date(2023, 1, 1) + dt.timedelta(days=i % 300) for i in range(200)]
            + [dt.date(2024, 5, 1), dt.date(2024, 5, 3), dt.date(2024, 5, 2)],
            pa.date32(),
        ),
        "acquisition_channel": ["email", "paid_search"] * 101 + ["email"],
        "country": ["US"] * 203,
    }
    customers["signup_date"] = pa.array(
        [
            dt.date(999, 1, 1) if i == 5 else d
            for i, d in enumerate(customers["signup_date"].to_pylist())
        ],
        pa.date32(),
    )
    amounts = [round(rng.uniform(1, 300), 2) for _ in range(n)]
    amounts[:8] = [70.605, -3.0, 1e-05, float("nan"), 2e13, 0.29, 1e20, float("inf")]
    stamps = [
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(0, 800_000))
        for _ in range(n)
    ]
    stamps[8] = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)  # in the future
    stamps[9] = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)  # too early
    orders = {
        "order_id": pa.array([i + 1 for i in range(n - 3)] + [5, 0, -9], pa.int64()),
        "customer_id": pa.array([rng.randrange(1, 210) for _ in range(n)], pa.int64()),
        "ordered_at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        "status": [rng.choice(["completed", "refunded", "Cancelled"]) for _ in range(n)],
        "amount": pa.array(amounts, pa.float64()),
        "cost": pa.array(
            [None if i % 7 == 0 else round(a * 0.6, 2) for i, a in enumerate(amounts)]
        ),
        "currency": ["USD"] * n,
    }
    if variant == "others":
        orders["order_id"] = orders["order_id"].cast(pa.int32())
        orders["customer_id"] = orders["customer_id"].cast(pa.int32())
        orders["ordered_at"] = pa.array(
            [t.replace(tzinfo=None) for t in stamps], pa.timestamp("us")
        )
        special = ["-3.00", "0.29", "9999999999.99", "12.50", "0", "1.00", "5.5", "7.25"]
        totals = [Decimal(v) for v in special] + [Decimal(f"{a:.2f}") for a in amounts[8:]]
        orders["total"] = pa.array(totals, pa.decimal128(12, 2))
        del orders["amount"]
        orders["cost"] = pa.array(
            [None if i % 7 == 0 or not abs(a) < 1e15 else int(a) for i, a in enumerate(amounts)]
        )
    # blanks in typed columns (each is blank exactly when null): an order without a customer,
    # a time or an amount, a row of nulls, a customer without a signup date, a day's spend
    amount = "total" if variant == "others" else "amount"
    blank = {"customer_id": {10}, "ordered_at": {11}, amount: {12}}
    for column, values in orders.items():
        array = values if isinstance(values, pa.Array) else pa.array(values)
        rows = blank.get(column, set()) | {13}
        orders[column] = pa.array(
            [None if i in rows else v for i, v in enumerate(array.to_pylist())], array.type
        )
    customers["signup_date"] = pa.array(
        [None if i == 6 else d for i, d in enumerate(customers["signup_date"].to_pylist())],
        pa.date32(),
    )
    spend = {
        "date": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(30)]),
        "channel": ["email"] * 30,
        "spend": pa.array([10.5, 70.605, -1.0, None] + [12.25] * 26, pa.float64()),
    }
    for name, columns in (("customers", customers), ("orders", orders), ("marketing_spend", spend)):
        typed = pa.table(columns)
        for raw in (raw_typed, raw_text):
            raw.mkdir(parents=True, exist_ok=True)
        pq.write_table(typed, raw_typed / f"{name}.parquet")
        with duckdb.connect() as con:
            use_utc(con)
            con.register("t", typed)
            text = con.sql(
                "select "
                + ", ".join(f'cast("{c}" as varchar) as "{c}"' for c in typed.column_names)
                + " from t"
            ).to_arrow_table()
        pq.write_table(text, raw_text / f"{name}.parquet")


@pytest.mark.parametrize("variant", ["doubles", "others"])
def test_a_typed_parquet_shop_loads_as_the_same_shop_in_text(tmp_path, monkeypatch, variant):
    """Every clean row and every quarantined row with its reason and raw record: the same; and
    the typed shop's columns were typed from their values."""
    _typed_and_text_shop(tmp_path / "typed", tmp_path / "text", variant)
    mapping = ingest.InputMapping(
        tables={"orders": ingest.rules.TableMapping(columns={"amount": "total"})}
        if variant == "others"
        else {}
    )
    natively = []

    def spy(kind, value, source_type, text_typed):
        sql = native_typed(kind, value, source_type, text_typed)
        natively.append((kind, source_type, sql is not None))
        return sql

    monkeypatch.setattr(ingest_duckdb, "native_typed", spy)
    load_time = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    states = []
    for name in ("typed", "text"):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            ingest.load_raw(
                con, tmp_path / name, load_time=load_time, max_quarantine_share=1.0, mapping=mapping
            )
            states.append(
                {
                    t: con.execute(f"select * from raw.{t} order by all").fetchall()
                    for t in ("customers", "orders", "marketing_spend", "quarantine")
                }
            )
    typed, text = states
    for table in typed:
        assert typed[table] == text[table], table
    # the typed shop's 9 typed columns (ids, dates, money) were typed natively; none of the
    # text shop's (VARCHAR) were
    assert sorted(k for k, _, native in natively if native) == sorted(
        ["id", "date", "id", "id", "timestamp", "money", "money", "date", "money"]
    )
    assert {t for _, t, native in natively if not native} == {"VARCHAR"}
    reasons = {r[3] for r in typed["quarantine"]}
    expected = {
        "negative_amount",
        "future_ordered_at",
        "too_early_ordered_at",
        "invalid_order_id",
        "invalid_customer_id",
        "too_early_signup_date",
        "too_precise_spend",
        "negative_spend",
        "empty_line",
        "missing_customer_id",
        "missing_ordered_at",
        "missing_amount",
        "missing_signup_date",
        "missing_spend",
    }
    if variant == "doubles":
        expected |= {"too_precise_amount", "non_numeric_amount"}
    assert expected <= reasons, reasons
    assert len(typed["orders"]) > 2_000
