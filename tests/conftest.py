"""Shared fixtures: a temporary warehouse and data folder per test, never the repo's data/.

Tests live in ``unit/`` (pure modules, DuckDB in process: seconds), ``integration/`` (dbt
builds, Dagster runs, subprocesses: minutes), ``spark/`` (a local Spark, Java needed) and
``dashboard/`` (the built Evidence site in headless Chromium); each
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
KINDS = ("unit", "integration", "spark", "dashboard")


#: The longest test files, longest first (measured with ``--durations`` on a 2-core machine):
#: they start first, so that no worker is left running one of them alone at the end while the
#: other idles. ``make test`` passes ``--no-loadscope-reorder``: xdist's loadfile scheduler
#: otherwise hands out the files with the most tests first, whatever this order.
LONGEST_FIRST = (
    "tests/spark/test_spark_pipeline.py",
    "tests/integration/test_incremental.py",
    "tests/integration/test_publishing.py",
    "tests/spark/test_spark_ingest.py",
    "tests/integration/test_strict_input.py",
    "tests/integration/test_pipeline_e2e.py",
    "tests/integration/test_last_good.py",
    "tests/integration/test_backfill.py",
    "tests/integration/test_lifespan.py",
    "tests/integration/test_settings.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the folder it lives in; put the longest files first."""
    for item in items:
        kind = item.path.parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))
