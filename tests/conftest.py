"""Shared fixtures: a temporary warehouse and data folder per test, never the repo's data/."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltv_pipeline import settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point LTV_DATA_DIR and LTV_DUCKDB_PATH at a fresh temporary folder."""
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(settings.DUCKDB_ENV, str(tmp_path / "warehouse.duckdb"))
    (tmp_path / "raw").mkdir()
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest Dagster loads; parsed once if `make test` did not already."""
    manifest = settings.DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        from ltv_pipeline.cli import prepare

        prepare()
    assert manifest.exists(), "dbt parse did not write target/manifest.json"
    return manifest


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """A local Spark session (UTC, no UI, scratch in a temp folder), its JVM shut down after
    the module so a dbt-spark subprocess can open the metastore later."""
    import os

    from pyspark.sql import SparkSession

    from ltv_pipeline.spark import SparkWarehouse

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    scratch = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={scratch}")
        .getOrCreate()
    )
    yield session
    SparkWarehouse().release()
