"""Compare what the pipeline built on DuckDB with what it built on Spark, table by table.

Used by tests/test_spark_pipeline.py and by ``make spark-check``, which runs the pipeline on
both engines on the sample shop and prints, per table, the row counts and whether they agree:

    .venv/bin/python -m tests.engines [--customers 5000] [--workdir /tmp/ltv-spark-check]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ltv_pipeline import publish, settings

SCHEMAS = ("raw", "intermediate", "marts")


def duckdb_tables(path: Path) -> dict[str, pd.DataFrame]:
    """Every table the pipeline built in ``raw``, ``intermediate`` and ``marts`` (the DuckDB
    loader's own state, ``raw._*``, left out)."""
    with duckdb.connect(str(path), read_only=True) as con:
        # views too (marts.fct_orders): Spark's catalog lists them beside the tables
        names = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            f"where table_schema in {SCHEMAS} and not starts_with(table_name, '_') order by 1"
        ).fetchall()
        return {name: con.execute(f"select * from {name}").df() for (name,) in names}


def spark_tables() -> dict[str, pd.DataFrame]:
    """The same from the Spark warehouse the environment points at (LTV_DATA_DIR)."""
    from ltv_pipeline.warehouse.spark import SparkWarehouse, spark_conf

    warehouse = SparkWarehouse(conf=spark_conf())
    try:
        with warehouse.session() as db:
            names = sorted(
                f"{schema}.{t.name}"
                for schema in SCHEMAS
                if db.spark.catalog.databaseExists(schema)
                for t in db.spark.catalog.listTables(schema)
                if not t.isTemporary and not t.name.startswith("_")
            )
            return {name: db.frame(f"select * from {name}") for name in names}
    finally:
        warehouse.release()


def published_tables(folder: Path) -> dict[str, pd.DataFrame]:
    manifest = publish.read_manifest(folder)
    if manifest is None:
        return {}
    return {f"published {t.name}": pd.read_parquet(folder / t.parquet) for t in manifest.tables}


def _canonical(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Columns by name; numbers as floats; UTC times as naive datetimes (microseconds); rows
    sorted by ``keys``, then by the other columns rounded (floats may differ in the last bits)."""
    frame = frame[sorted(frame.columns)].copy()
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.astype("datetime64[us]")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            values = values.astype(float)
        frame[column] = values
    rest = [c for c in frame.columns if c not in keys]
    for column in rest:
        values = frame[column]
        frame[f"_r_{column}"] = (
            values.map(lambda v: float(f"{v:.9g}")) if values.dtype == float else values
        )
    rounded = [f"_r_{c}" for c in rest]
    frame = frame.sort_values(keys + rounded, na_position="first").reset_index(drop=True)
    return frame.drop(columns=rounded)


def difference(want: pd.DataFrame, got: pd.DataFrame) -> str | None:
    """How ``got`` (Spark) differs from ``want`` (DuckDB), or None: same columns and rows, values
    equal after sorting, floats within 1e-9 relative."""
    keys = sorted(c for c in want.columns if not pd.api.types.is_float_dtype(want[c]))
    if sorted(want.columns) != sorted(got.columns):
        return f"columns {sorted(want.columns)} vs {sorted(got.columns)}"
    if len(want) != len(got):
        return f"{len(want)} rows vs {len(got)}"
    want, got = _canonical(want, keys), _canonical(got, keys)
    for column in want.columns:
        a, b = want[column], got[column]
        if a.dtype == float and b.dtype == float:
            close = np.isclose(b, a, rtol=1e-9, atol=0, equal_nan=True)
            if not close.all():
                i = int(np.argmin(close))
                return f"{column}: {(~close).sum()} values differ, e.g. {a[i]!r} vs {b[i]!r}"
        else:
            left = a.astype(object).where(a.notna(), None).tolist()
            right = b.astype(object).where(b.notna(), None).tolist()
            if left != right:
                i = next(k for k, (x, y) in enumerate(zip(left, right, strict=True)) if x != y)
                return f"{column}: e.g. {left[i]!r} vs {right[i]!r}"
    return None


def compare(duck_dir: Path, spark_dir: Path) -> list[tuple[str, int | None, int | None, str]]:
    """Per table: (name, rows on DuckDB, rows on Spark, "equal" or the difference)."""
    want = {
        **duckdb_tables(duck_dir / "warehouse.duckdb"),
        **published_tables(duck_dir / "published"),
    }
    got = {**spark_tables(), **published_tables(spark_dir / "published")}
    rows = []
    for name in sorted(set(want) | set(got)):
        a = len(want[name]) if name in want else None
        b = len(got[name]) if name in got else None
        if a is None or b is None:
            result = "missing on one engine"
        else:
            result = difference(want[name], got[name]) or "equal"
        rows.append((name, a, b, result))
    return rows


def _run(data_dir: Path, engine: str) -> None:
    env = {
        **os.environ,
        settings.DATA_DIR_ENV: str(data_dir),
        settings.DUCKDB_ENV: str(data_dir / "warehouse.duckdb"),
        settings.WAREHOUSE_ENV: engine,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
    }
    (data_dir / "dagster_home").mkdir(parents=True, exist_ok=True)
    subprocess.run([str(Path(sys.executable).with_name("ltv")), "run"], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    from ltv_pipeline.sample.generate import generate_shop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000, help="sample shop size")
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp folder)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ltv-spark-check-"))
    duck_dir, spark_dir = workdir / "duckdb", workdir / "spark"
    generate_shop(duck_dir / "raw", customers=args.customers, seed=42, bad_share=0.02)
    shutil.copytree(duck_dir / "raw", spark_dir / "raw", dirs_exist_ok=True)
    for data_dir, engine in ((duck_dir, "duckdb"), (spark_dir, "spark")):
        print(f"ltv run on {engine} ({data_dir})", flush=True)
        _run(data_dir, engine)
    os.environ[settings.DATA_DIR_ENV] = str(spark_dir)
    rows = compare(duck_dir, spark_dir)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'table':<{width}}  {'duckdb':>8}  {'spark':>8}  result")
    for name, a, b, result in rows:
        counts = "  ".join(f"{'-' if n is None else n:>8}" for n in (a, b))
        print(f"{name:<{width}}  {counts}  {result}")
    bad = [r for r in rows if r[3] != "equal"]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} tables equal")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
