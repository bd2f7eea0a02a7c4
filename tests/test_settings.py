"""Paths: absolute, from one variable each, and the same file for Python and dbt."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ltv_pipeline import settings


def test_defaults_live_under_the_repo_data_folder(monkeypatch):
    monkeypatch.delenv(settings.DUCKDB_ENV, raising=False)
    monkeypatch.delenv(settings.DATA_DIR_ENV, raising=False)
    assert settings.duckdb_path() == settings.REPO_ROOT / "data" / "warehouse.duckdb"
    assert settings.raw_dir() == settings.REPO_ROOT / "data" / "raw"


def test_relative_duckdb_path_is_refused(monkeypatch):
    monkeypatch.setenv(settings.DUCKDB_ENV, "warehouse.duckdb")
    with pytest.raises(ValueError, match="relative"):
        settings.duckdb_path()


def _dbt_warehouse_path(project_copy: Path, env: dict[str, str]) -> Path:
    """The warehouse path dbt's profile resolves to, printed by dbt itself."""
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "compile",
            "--quiet",
            "--inline",
            "select '{{ target.path }}' as warehouse_path",
            "--project-dir",
            str(project_copy),
            "--profiles-dir",
            str(project_copy),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    printed = next(line for line in out.splitlines() if "warehouse_path" in line)
    return Path(printed.split("'")[1]).resolve()


@pytest.mark.parametrize("from_env", [False, True])
def test_dbt_profile_opens_the_same_file_as_python(tmp_path, from_env):
    """dbt's default is <repo>/data/warehouse.duckdb too, found via DBT_PROJECT_DIR (which
    dagster-dbt always sets), never via the working directory."""
    copy = tmp_path / "repo" / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target"))
    (tmp_path / "repo" / "data").mkdir()
    env = {k: v for k, v in os.environ.items() if k != settings.DUCKDB_ENV}
    env["DBT_PROJECT_DIR"] = str(copy)
    expected = tmp_path / "repo" / "data" / "warehouse.duckdb"
    if from_env:
        expected = tmp_path / "elsewhere.duckdb"
        env[settings.DUCKDB_ENV] = str(expected)
    assert _dbt_warehouse_path(copy, env) == expected.resolve()
