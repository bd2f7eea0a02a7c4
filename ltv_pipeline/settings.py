"""Where things live: every path is derived from this file or from two environment variables.

``LTV_DUCKDB_PATH`` names the DuckDB warehouse file and ``LTV_DATA_DIR`` the folder holding
``raw/`` input files and reports. Both default to ``<repo>/data``. Neither is ever resolved
against the current directory: a relative DuckDB path would silently create a second database,
so it is rejected.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DEFAULT_DATA_DIR = REPO_ROOT / "data"
DUCKDB_ENV = "LTV_DUCKDB_PATH"
DATA_DIR_ENV = "LTV_DATA_DIR"


def _absolute_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError(
            f"{name}={value!r} is relative; give an absolute path so every process "
            "(Dagster, dbt, BI) opens the same file"
        )
    return path


def data_dir() -> Path:
    """Folder with ``raw/`` input files, reports and the Dagster home."""
    return _absolute_from_env(DATA_DIR_ENV, DEFAULT_DATA_DIR)


def raw_dir() -> Path:
    """Folder the ingestion assets read ``customers``, ``orders`` and ``marketing_spend`` from."""
    return data_dir() / "raw"


def duckdb_path() -> Path:
    """The working DuckDB warehouse; dbt's profile falls back to the same default file."""
    return _absolute_from_env(DUCKDB_ENV, DEFAULT_DATA_DIR / "warehouse.duckdb")


def reports_dir() -> Path:
    """Charts written by the pipeline (cohort heatmap, LTV curves)."""
    return data_dir() / "reports"


def published_dir() -> Path:
    """The read-only snapshot for BI: ``marts.duckdb``, ``parquet/`` and ``manifest.json``."""
    return data_dir() / "published"


def dbt_executable() -> Path:
    """The dbt installed beside this Python, so a venv works without being on PATH."""
    return Path(sys.executable).with_name("dbt")
