"""The hand-written baseline (bench/baseline.sql) equals the pipeline's marts bit for bit.

Two independent implementations on the same files: the pipeline (loader, dbt, Python assets)
into its warehouse, and the one-script baseline into a fresh DuckDB of its own. Every listed
table must match row for row and column for column (names, types, values; doubles exactly),
leaving out only the columns that come from the fitted model. Two shops:

* the generator's shop as CSV with bad rows of every kind it injects;
* a bursty shop (every customer acquired in the first quarter, many one-time buyers, a
  reliable lifespan) in the bench's layout, typed Parquet with the orders in one file per
  month, with typed bad rows added (duplicates, unknown or not-yet-signed-up customers,
  negative or too precise amounts, unknown status or currency, too early or future dates),
  refunds, cancellations and missing costs; built as of an earlier day with other vars.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ltv_pipeline.sample.generate import generate_shop
from tests.helpers import failure_messages, run_pipeline
from tests.shops import Behaviour, write_shop

_SPEC = importlib.util.spec_from_file_location(
    "bench_baseline", Path(__file__).parents[2] / "bench" / "baseline.py"
)
assert _SPEC is not None and _SPEC.loader is not None
baseline = sys.modules.setdefault("bench_baseline", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(baseline)

#: Every table the baseline reproduces, and the columns of each it leaves out (from the model).
TABLES: dict[str, tuple[str, ...]] = {
    "marts.fct_orders": (),
    "marts.customers": (),
    "marts.ltv_summary": (),
    "marts.churn_monthly": (),
    "marts.cac_monthly": (),
    "marts.ltv_cac_by_channel": (),
    "marts.ltv_cac_by_channel_month": (),
    "marts.cohort_activity": (),
    "marts.customer_segments": (),
    "intermediate.int_customer_purchases_summarized": (),
}


def _run_both(root: Path, run: baseline.Run, **pipeline_args) -> dict:
    """The pipeline's and the baseline's tables on ``root / 'raw'``, with wall times."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_DATA_DIR", str(root))
        mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        started = time.perf_counter()
        result = run_pipeline(**pipeline_args)
        pipeline_seconds = time.perf_counter() - started
    assert result.success, failure_messages(result)
    with duckdb.connect() as con:
        baseline_seconds = baseline.build(con, root / "raw", run)
        ours = {t: _table(con, "baseline." + t.split(".")[1], ()) for t in TABLES}
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        theirs = {t: _table(con, t, left_out) for t, left_out in TABLES.items()}
    return {
        "ours": ours,
        "theirs": theirs,
        "pipeline_seconds": pipeline_seconds,
        "baseline_seconds": baseline_seconds,
    }


def _table(con: duckdb.DuckDBPyConnection, table: str, left_out: tuple[str, ...]) -> dict:
    """Columns (name, type) and rows sorted by every column, without ``left_out``."""
    columns = [(r[0], r[1]) for r in con.execute(f"describe {table}").fetchall()]
    columns = [c for c in columns if c[0] not in left_out]
    names = ", ".join(f'"{name}"' for name, _ in columns)
    rows = con.execute(f"select {names} from {table} order by all").fetchall()
    return {"columns": columns, "rows": rows}


def _assert_equal(built: dict) -> None:
    for table in TABLES:
        ours, theirs = built["ours"][table], built["theirs"][table]
        assert ours["columns"] == theirs["columns"], table
        assert len(ours["rows"]) == len(theirs["rows"]), table
        assert len(theirs["rows"]) > 0, table
        for mine, want in zip(ours["rows"], theirs["rows"], strict=True):
            assert mine == want, (table, mine, want)


@pytest.fixture(scope="module")
def dirty_csv(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dirty_csv")
    generate_shop(root / "raw", customers=3000, seed=5, bad_share=0.03)
    return _run_both(root, baseline.Run())


#: Typed bad rows added to the bursty shop's Parquet files, each dropped by one loader rule:
#: (copied row's key, replaced columns). A copy with nothing replaced is an exact duplicate
#: (one copy stays); one with the same key and other values a conflicting one (both go).
BAD_ORDERS = (
    (3, ""),
    (5, "amount + 1 as amount"),
    (7, "9000001 as order_id, 999999 as customer_id"),  # unknown customer
    (9, "9000002 as order_id, ordered_at - interval 400 day as ordered_at"),  # before signup
    (11, "9000003 as order_id, -amount as amount"),
    (13, "9000004 as order_id, 12.345 as amount"),  # too precise
    (15, "9000005 as order_id, 'shipped' as status"),
    (17, "9000006 as order_id, 'EUR' as currency"),
    (19, "9000007 as order_id, timestamptz '1999-12-31 23:00:00+00' as ordered_at"),
    (21, "9000008 as order_id, timestamptz '2099-01-01 00:00:00+00' as ordered_at"),
    (23, "9000009 as order_id, null as customer_id"),
    (25, "0 as order_id"),
    (27, "9000010 as order_id, -cost as cost"),
)
BAD_CUSTOMERS = (
    (4, "email || '.dup' as email"),  # conflicting: customer 4 and their orders go
    (6, ""),
    (8, "900001 as customer_id, date '1900-01-01' as signup_date"),
    (10, "900002 as customer_id, 'USA' as country"),
    (12, "900003 as customer_id, ' ' as acquisition_channel"),
)


def _copies(table: str, key: str, rows: tuple[tuple[int, str], ...]) -> str:
    parts = [
        f"(select * {f'replace ({columns})' if columns else ''} from {table} where {key} = {k})"
        for k, columns in rows
    ]
    return f"insert into {table} " + " union all ".join(parts)


def _to_bench_parquet(csv_dir: Path, raw: Path) -> None:
    """The bench's layout of a CSV shop: typed Parquet, orders in one file per month; with
    refunds, cancellations, missing costs and typed bad rows."""
    (raw / "orders").mkdir(parents=True)
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        f"""
        create table orders as
        with text as (
            select * replace (order_id::bigint as order_id)
            from read_csv('{csv_dir / "orders.csv"}', all_varchar = true)
        )
        select
            order_id,
            customer_id::bigint as customer_id,
            ordered_at::timestamptz as ordered_at,
            case when order_id % 13 = 0 then 'refunded'
                when order_id % 17 = 0 then 'cancelled' else status end as status,
            amount::double as amount,
            case when order_id % 5 = 0 then null else cost::double end as cost,
            currency
        from text
        """
    )
    con.execute(
        f"""
        create table customers as
        select customer_id::bigint as customer_id, email, signup_date::date as signup_date,
            acquisition_channel, country
        from read_csv('{csv_dir / "customers.csv"}', all_varchar = true)
        """
    )
    con.execute(_copies("orders", "order_id", BAD_ORDERS))
    con.execute(_copies("customers", "customer_id", BAD_CUSTOMERS))
    con.execute(f"copy customers to '{raw / 'customers.parquet'}' (format parquet)")
    con.execute(
        f"""
        copy (
            select date::date as date, channel, spend::double as spend
            from read_csv('{csv_dir / "marketing_spend.csv"}', all_varchar = true)
            union all select date '2023-02-01', 'paid_search', 40.0
            union all select date '2023-02-02', 'paid_search', -3.0
        ) to '{raw / "marketing_spend.parquet"}' (format parquet)
        """
    )
    months = con.execute(
        "select distinct strftime(ordered_at, '%Y-%m') from orders order by 1"
    ).fetchall()
    for (month,) in months:
        con.execute(
            f"copy (select * from orders where strftime(ordered_at, '%Y-%m') = $m) "
            f"to '{raw / 'orders' / (month + '.parquet')}' (format parquet, compression zstd)",
            {"m": month},
        )
    con.close()


AS_OF = "2025-10-31"
VARS = {"churn_inactivity_days": 120, "default_margin_rate": 0.4, "ltv_lookback_months": 6}


@pytest.fixture(scope="module")
def bursty_parquet(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("bursty_parquet")
    write_shop(
        root / "csv",
        customers=2500,
        acquisition="bursty",
        start=dt.date(2023, 1, 1),
        months=36,
        seed=3,
        behaviour=Behaviour(r=4.0, alpha=120.0, a=20.0, b=60.0),
    )
    _to_bench_parquet(root / "csv", root / "raw")
    run = baseline.Run(as_of_date=dt.date.fromisoformat(AS_OF), vars=VARS)
    return _run_both(root, run, as_of_date=AS_OF, dbt_vars=VARS)


def test_baseline_equals_the_marts_on_a_dirty_csv_shop(dirty_csv):
    _assert_equal(dirty_csv)
    print(
        f"dirty csv: pipeline {dirty_csv['pipeline_seconds']:.1f}s, "
        f"baseline {dirty_csv['baseline_seconds']:.2f}s"
    )


def test_baseline_equals_the_marts_on_a_bursty_bench_parquet_shop(bursty_parquet):
    _assert_equal(bursty_parquet)
    summary = bursty_parquet["theirs"]["marts.ltv_summary"]
    names = [name for name, _ in summary["columns"]]
    reliable = [row for row in summary["rows"] if row[names.index("is_reliable")]]
    assert reliable, "the bursty shop should show a reliable lifespan somewhere"
    print(
        f"bursty parquet: pipeline {bursty_parquet['pipeline_seconds']:.1f}s, "
        f"baseline {bursty_parquet['baseline_seconds']:.2f}s"
    )
