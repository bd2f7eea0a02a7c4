"""Compare every dbt model built on Spark with the DuckDB build of the same inputs.

For each model in the manifest (a ``dbt build`` on each engine must have run first, on the same
source rows: tests/spark_sources.py copies them), reads the table from Spark (dbt's warehouse and
metastore, see tests/spark_sources.py) and from DuckDB, and checks: the same column names, the
same row count, and equal values row by row after sorting both sides on every column, exact
columns first (floats last, so float noise cannot change the order). Floats are equal within
1e-9 relative (or 1e-12 absolute near zero); a float on one side and a decimal on the other is
compared as floats. Column types that differ between the engines are listed, not failed.

    SPARK_LOCAL_IP=127.0.0.1 DBT_PROJECT_DIR=$PWD/dbt_project .venv/bin/python \\
        tests/spark_compare.py --duckdb /path/warehouse.duckdb [--models fct_orders ...]

--duckdb-baseline OLD.duckdb skips Spark and checks instead that --duckdb is bit-identical to
another DuckDB build (e.g. of the main branch's models on the same sources).

--ansi also runs each model's compiled SQL (dbt's ``target/spark/compiled``) with
``spark.sql.ansi.enabled=true`` to show which models would fail under ANSI mode (dbt-spark's
session turns ANSI off for its own queries). Exit status 1 if any model differs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import math
import os
import sys
import time
from pathlib import Path

import duckdb

os.environ["TZ"] = "UTC"  # pyspark turns timestamps into naive datetimes in the local zone
time.tzset()

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_sources import PROJECT_DIR, spark_session  # noqa: E402

REL_TOL = 1e-9
ABS_TOL = 1e-12


def models(manifest: Path) -> list[tuple[str, str, str]]:
    """(schema, name, compiled path) of every model in the manifest, in name order."""
    nodes = json.loads(manifest.read_text())["nodes"].values()
    return sorted(
        (node["schema"], node["name"], node["original_file_path"])
        for node in nodes
        if node["resource_type"] == "model"
    )


def _is_float(value) -> bool:
    return isinstance(value, float)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _is_float(a) or _is_float(b):
        if not isinstance(a, (int, float, decimal.Decimal)) or not isinstance(
            b, (int, float, decimal.Decimal)
        ):
            return False
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
        return a == b
    return a == b  # Decimal == Decimal and Decimal == int compare by value


def _sort_key(row: tuple, exact: list[int], floats: list[int]):
    def key(value):
        if value is None:
            return (0, 0)
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            return (1, float(value))
        return (1, value)

    return tuple(key(row[i]) for i in exact) + tuple(key(row[i]) for i in floats)


def compare(spark, con, schema: str, name: str, max_report: int = 3) -> dict:
    spark_frame = spark.table(f"`{schema}`.`{name}`")
    spark_types = {f.name: f.dataType.simpleString() for f in spark_frame.schema.fields}
    duck_types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    )
    result = {"model": f"{schema}.{name}", "problems": [], "type_differences": []}
    if set(spark_types) != set(duck_types):
        result["problems"].append(
            f"columns differ: only spark {sorted(set(spark_types) - set(duck_types))}, "
            f"only duckdb {sorted(set(duck_types) - set(spark_types))}"
        )
        return result
    columns = list(duck_types)
    quoted = ", ".join(f'"{c}"' for c in columns)
    duck_rows = con.execute(f'select {quoted} from "{schema}"."{name}"').fetchall()
    spark_rows = [tuple(row) for row in spark_frame.select(*columns).collect()]
    result["rows_duckdb"], result["rows_spark"] = len(duck_rows), len(spark_rows)
    if len(duck_rows) != len(spark_rows):
        result["problems"].append(f"row counts differ: {len(duck_rows)} vs {len(spark_rows)}")
        return result

    def has_float(i: int) -> bool:
        return any(_is_float(r[i]) for r in duck_rows) or any(_is_float(r[i]) for r in spark_rows)

    floats = [i for i in range(len(columns)) if has_float(i)]
    exact = [i for i in range(len(columns)) if i not in floats]
    duck_rows.sort(key=lambda r: _sort_key(r, exact, floats))
    spark_rows.sort(key=lambda r: _sort_key(r, exact, floats))
    mismatches = 0
    for duck_row, spark_row in zip(duck_rows, spark_rows, strict=True):
        for i, column in enumerate(columns):
            if not _same(duck_row[i], spark_row[i]):
                mismatches += 1
                if mismatches <= max_report:
                    result["problems"].append(
                        f"{column}: duckdb {duck_row[i]!r} vs spark {spark_row[i]!r} "
                        f"(row {dict(zip(columns, duck_row, strict=True))})"
                    )
    if mismatches:
        result["problems"].append(f"{mismatches} values differ")
    for column in columns:
        result["type_differences"].append(f"{column} {duck_types[column]} / {spark_types[column]}")
    return result


def duckdb_identical(new: Path, baseline: Path, manifest: Path) -> int:
    """Every model of ``new`` bit-identical to ``baseline`` (same column types, EXCEPT ALL
    empty both ways): a change made for Spark must not move a DuckDB result."""
    failed = 0
    with duckdb.connect() as con:
        con.execute(f"attach '{new}' as new (read_only)")
        con.execute(f"attach '{baseline}' as old (read_only)")
        for schema, name, _ in models(manifest):
            types = [
                con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_catalog = ? and table_schema = ? and table_name = ? "
                    "order by ordinal_position",
                    [catalog, schema, name],
                ).fetchall()
                for catalog in ("new", "old")
            ]
            new_t, old_t = f'new."{schema}"."{name}"', f'old."{schema}"."{name}"'
            differing = con.execute(
                f"select (select count(*) from (from {new_t} except all from {old_t})) "
                f"+ (select count(*) from (from {old_t} except all from {new_t}))"
            ).fetchone()[0]
            rows = con.execute(f"select count(*) from {new_t}").fetchone()[0]
            same = types[0] == types[1] and differing == 0
            failed += not same
            print(
                f"{schema + '.' + name:<48} rows {rows:<7} "
                f"{'identical' if same else 'DIFFERS'}"
                + ("" if types[0] == types[1] else f" types {types[1]} -> {types[0]}")
                + (f" ({differing} rows differ)" if differing else "")
            )
    return 1 if failed else 0


def ansi_check(spark, compiled_dir: Path, path: str) -> str:
    sql = (compiled_dir / "ltv" / path).read_text()
    spark.conf.set("spark.sql.ansi.enabled", "true")
    try:
        spark.sql(sql).count()
        return "ok"
    except Exception as error:  # the Spark message is the finding
        return f"fails: {str(error).splitlines()[0][:300]}"
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "false")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duckdb", type=Path, required=True, help="DuckDB warehouse dbt built")
    parser.add_argument("--models", nargs="*", help="model names (default: every model)")
    parser.add_argument(
        "--spark-target-path",
        type=Path,
        default=PROJECT_DIR / "target" / "spark",
        help="dbt's target folder of the Spark build (manifest, compiled SQL)",
    )
    parser.add_argument("--ansi", action="store_true", help="also run compiled SQL in ANSI mode")
    parser.add_argument("--types", action="store_true", help="print every column's two types")
    parser.add_argument(
        "--duckdb-baseline",
        type=Path,
        help="instead of Spark: check that --duckdb is bit-identical to this DuckDB build",
    )
    args = parser.parse_args(argv)
    if args.duckdb_baseline:
        return duckdb_identical(
            args.duckdb, args.duckdb_baseline, args.spark_target_path / "manifest.json"
        )
    spark = spark_session()
    failed = 0
    try:
        with duckdb.connect(str(args.duckdb), read_only=True) as con:
            for schema, name, path in models(args.spark_target_path / "manifest.json"):
                if args.models and name not in args.models:
                    continue
                result = compare(spark, con, schema, name)
                status = "DIFFERS" if result["problems"] else "equal"
                failed += bool(result["problems"])
                rows = f"{result.get('rows_duckdb', '?')} / {result.get('rows_spark', '?')}"
                line = f"{result['model']:<48} rows duckdb/spark {rows:<15} {status}"
                if args.ansi:
                    compiled = args.spark_target_path / "compiled"
                    line += f"  ansi: {ansi_check(spark, compiled, path)}"
                print(line, flush=True)
                for problem in result["problems"]:
                    print(f"    {problem}")
                if args.types:
                    for difference in result["type_differences"]:
                        print(f"    {difference}")
    finally:
        spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
