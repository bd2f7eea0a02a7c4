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
