"""Shared fixtures: a temporary warehouse and data folder per test, never the repo's data/.

Tests live in ``unit/`` (pure modules, DuckDB in process: seconds), ``integration/`` (dbt
builds, Dagster runs, subprocesses: minutes) and ``spark/`` (a local Spark, Java needed); each
test is marked with its folder's name, so ``pytest -m unit`` runs only the fast ones.
"""

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
        from ltv_pipeline.dbt_runner import prepare

        prepare()
    assert manifest.exists(), "dbt parse did not write target/manifest.json"
    return manifest


#: The folders tests live in; each is also a marker (pyproject.toml).
KINDS = ("unit", "integration", "spark")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the folder it lives in."""
    for item in items:
        kind = item.path.parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
