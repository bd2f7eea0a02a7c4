"""The whole pipeline with LTV_WAREHOUSE=spark (a local Spark session) equals the DuckDB build:
every raw, intermediate and mart table, the Python outputs, the quarantine and the published
snapshot, row for row (sorted; floats within 1e-9 relative), after a full run and after an
incremental night."""

import shutil
from datetime import date

from ltv_pipeline.sample.generate import generate_shop
from tests.engines import compare, difference, duckdb_tables
from tests.helpers import run_pipeline


def _new_night(raw) -> None:
    """The next day's orders as a new file: a new order, and a late one for the day before."""
    header, first = (raw / "orders.csv").read_text().splitlines()[:2]
    customer = first.split(",")[1]
    (raw / "orders").mkdir(exist_ok=True)
    (raw / "orders" / "2026-07-01.csv").write_text(
        f"{header}\n"
        f"9000001,{customer},2026-07-01T08:00:00Z,completed,42.50,20.00,USD\n"
        f"9000002,{customer},2026-06-29T23:59:59Z,completed,10.00,,USD\n"
    )


def _run_both(monkeypatch, duck_dir, spark_dir) -> None:
    for data_dir, engine in ((duck_dir, "duckdb"), (spark_dir, "spark")):
        monkeypatch.setenv("LTV_DATA_DIR", str(data_dir))
        monkeypatch.setenv("LTV_WAREHOUSE", engine)
        assert run_pipeline().success, engine


def _assert_same_build(duck_dir, spark_dir) -> None:
    rows = compare(duck_dir, spark_dir)
    differing = [row for row in rows if row[3] != "equal"]
    assert not differing, differing
    tables = {name: (a, b) for name, a, b, _ in rows}
    # the comparison covered what matters, with rows in it
    for name in ("raw.quarantine", "marts.fct_orders", "marts.customer_predictions"):
        assert tables[name][0] > 0, name
    assert sum(1 for name in tables if name.startswith("published ")) >= 10
    assert len(tables) >= 35  # 39 on this shop, published Parquet included


def test_the_pipeline_on_spark_equals_duckdb_after_a_full_run_and_a_night(workdir, monkeypatch):
    """Two nights on each engine: the history, then a new day's file with a late order. After
    each, Spark equals DuckDB; after the night both equal a build from scratch on the same
    files, so Spark's incremental night equals a full refresh."""
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    duck_dir, spark_dir = workdir, workdir / "spark_run"
    generate_shop(
        duck_dir / "raw", customers=600, seed=21, bad_share=0.02, start_date=date(2025, 7, 1)
    )
    shutil.copytree(duck_dir / "raw", spark_dir / "raw")
    _run_both(monkeypatch, duck_dir, spark_dir)
    _assert_same_build(duck_dir, spark_dir)

    _new_night(duck_dir / "raw")
    _new_night(spark_dir / "raw")
    _run_both(monkeypatch, duck_dir, spark_dir)
    _assert_same_build(duck_dir, spark_dir)

    # ... and both equal a build from scratch on the same files (here DuckDB's, in one run)
    fresh_dir = workdir / "fresh"
    shutil.copytree(duck_dir / "raw", fresh_dir / "raw")
    monkeypatch.setenv("LTV_DATA_DIR", str(fresh_dir))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(fresh_dir / "warehouse.duckdb"))
    monkeypatch.setenv("LTV_WAREHOUSE", "duckdb")
    assert run_pipeline().success
    nightly = duckdb_tables(duck_dir / "warehouse.duckdb")
    fresh = duckdb_tables(fresh_dir / "warehouse.duckdb")
    assert sorted(nightly) == sorted(fresh)
    assert {name: difference(fresh[name], nightly[name]) for name in fresh} == dict.fromkeys(fresh)
