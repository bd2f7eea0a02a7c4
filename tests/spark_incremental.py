"""fct_orders incremental on Spark (insert_overwrite of whole days) equals a full refresh.

From a DuckDB warehouse the pipeline built (its sources), in a work folder:

1. copy it, register its sources on Spark, ``dbt build --full-refresh`` on Spark and DuckDB;
2. change raw.orders: a late order inside the lookback, a completed order refunded, two orders
   on a new day, and on the window's first day (the boundary day) its first completed order
   refunded and a late order at 23:59:59. A lookback of timestamps (newest order - 3 days)
   would miss the refund and, given the late order, overwrite that day's partition with only
   the rows after its cut-off, dropping the others;
3. register again and ``dbt build`` (incremental) on both engines; compare every model
   (tests/spark_compare.py) and check the changes landed in Spark's fct_orders;
4. ``dbt build --full-refresh`` on Spark and check fct_orders equals the incremental one.

    SPARK_LOCAL_IP=127.0.0.1 .venv/bin/python tests/spark_incremental.py \\
        --source /path/warehouse.duckdb --work /tmp/spark_incremental

Each Spark step runs in its own process (one Spark session on the Derby metastore at a time).
Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROJECT = REPO / "dbt_project"
BIN = Path(sys.executable).parent


def run(command: list[str], **env: str) -> None:
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    merged = {**os.environ, "DBT_PROJECT_DIR": str(PROJECT), **env}
    subprocess.run(command, check=True, env=merged, cwd=REPO)
    print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


def dbt_build(warehouse: str, duckdb_path: Path, *extra: str) -> None:
    target_path = PROJECT / "target" / ("spark" if warehouse == "spark" else "duckdb_incremental")
    run(
        [
            *(str(BIN / "dbt"), "build", "--quiet", "--project-dir", str(PROJECT)),
            *("--profiles-dir", str(PROJECT), "--target-path", str(target_path), *extra),
        ],
        LTV_WAREHOUSE=warehouse,
        LTV_DUCKDB_PATH=str(duckdb_path),
    )


def register(duckdb_path: Path, work: Path) -> None:
    run(
        [
            *(sys.executable, str(TESTS / "spark_sources.py"), "--duckdb", str(duckdb_path)),
            *("--parquet-dir", str(work / "sources")),
        ]
    )


def change_orders(duckdb_path: Path) -> dict[str, int]:
    """The changes of step 2; returns the order ids they touched."""
    with duckdb.connect(str(duckdb_path)) as con:
        newest, max_id = con.execute(
            "select max(cast(ordered_at as date)), max(order_id) from raw.orders"
        ).fetchone()
        lookback = con.execute(
            "select cast(? as date) - 3, cast(? as date) - 1", [newest, newest]
        ).fetchone()

        def first_completed(day) -> int:
            return con.execute(
                "select order_id from raw.orders where cast(ordered_at as date) = ? "
                "and status = 'completed' order by ordered_at, order_id limit 1",
                [day],
            ).fetchone()[0]

        ids = {
            "boundary_refund": first_completed(lookback[0]),
            "refund": first_completed(lookback[1]),
        }
        con.execute(
            "update raw.orders set status = 'refunded' where order_id in (?, ?)",
            [ids["boundary_refund"], ids["refund"]],
        )
        customer = con.execute("select min(customer_id) from raw.customers").fetchone()[0]
        ids |= {
            "late": max_id + 1,
            "new_day": max_id + 2,
            "new_day_no_cost": max_id + 3,
            "late_boundary": max_id + 4,
        }
        con.execute(
            "insert into raw.orders values "
            "(?, ?, cast(? as date) - 2 + interval 12 hour, 'completed', 50.00, 20.00, 'USD'), "
            "(?, ?, cast(? as date) + 1 + interval 8 hour, 'completed', 70.00, 30.00, 'USD'), "
            "(?, ?, cast(? as date) + 1 + interval 9 hour, 'completed', 15.50, null, 'USD'), "
            "(?, ?, cast(? as date) - 3 + interval 86399 second, 'completed', 9.99, 1.00, 'USD')",
            [
                *(ids["late"], customer, newest, ids["new_day"], customer, newest),
                *(ids["new_day_no_cost"], customer, newest),
                *(ids["late_boundary"], customer, newest),
            ],
        )
    print(f"changed orders (newest day was {newest}): {ids}", flush=True)
    return ids


def snapshot(out: Path) -> None:
    """(subcommand) Save Spark's fct_orders as Parquet."""
    from spark_sources import spark_session

    spark = spark_session()
    try:
        spark.table("marts.fct_orders").write.mode("overwrite").parquet(str(out))
    finally:
        spark.stop()


def check(saved: Path, expected: list[str]) -> int:
    """(subcommand) Spark's fct_orders equals the saved one, and each ``order_id=status``."""
    from spark_sources import spark_session

    spark = spark_session()
    try:
        current = spark.table("marts.fct_orders")
        before = spark.read.parquet(str(saved)).select(*current.columns)
        extra = current.exceptAll(before).count()
        missing = before.exceptAll(current).count()
        print(f"fct_orders: {current.count()} rows now, {before.count()} saved")
        print(f"rows only now: {extra}, rows only saved: {missing}")
        wanted = {int(order_id): status for order_id, status in (e.split("=") for e in expected)}
        rows = {
            row.order_id: row
            for row in current.where(current.order_id.isin(list(wanted))).collect()
        }
        wrong = 0
        for order_id, status in wanted.items():
            row = rows.get(order_id)
            wrong += row is None or row.order_status != status
            print(
                f"  order {order_id}: want {status}, have "
                + (
                    f"{row.order_status} on {row.ordered_date}, net {row.net_revenue}"
                    if row
                    else "none"
                )
            )
        return 0 if extra == missing == wrong == 0 else 1
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "snapshot":
        snapshot(Path(argv[1]))
        return 0
    if argv and argv[0] == "check":
        return check(Path(argv[1]), argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="a pipeline-built warehouse")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied)")
    args = parser.parse_args(argv)
    if os.environ.get("SPARK_LOCAL_IP") is None:
        raise SystemExit("set SPARK_LOCAL_IP=127.0.0.1")
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    duck = work / "warehouse.duckdb"
    shutil.copy(args.source, duck)
    me = [sys.executable, __file__]
    compare = [sys.executable, str(TESTS / "spark_compare.py"), "--duckdb", str(duck)]

    register(duck, work)
    dbt_build("spark", duck, "--full-refresh")
    dbt_build("duckdb", duck, "--full-refresh")
    ids = change_orders(duck)
    register(duck, work)
    dbt_build("spark", duck)
    dbt_build("duckdb", duck)
    failed = subprocess.run(compare, env={**os.environ, "DBT_PROJECT_DIR": str(PROJECT)}).returncode
    run([*me, "snapshot", str(work / "fct_orders_incremental")])
    dbt_build("spark", duck, "--full-refresh")
    result = subprocess.run(
        [*me, "check", str(work / "fct_orders_incremental")]
        + [
            f"{order_id}={'refunded' if 'refund' in name else 'completed'}"
            for name, order_id in ids.items()
        ],
        env={**os.environ, "DBT_PROJECT_DIR": str(PROJECT)},
    )
    failed |= result.returncode
    print("incremental == full refresh, Spark == DuckDB" if not failed else "FAILED")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
