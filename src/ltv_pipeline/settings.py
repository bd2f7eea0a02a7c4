"""Where things live: every path is derived from this file or from two environment variables.

``LTV_DUCKDB_PATH`` names the DuckDB warehouse file and ``LTV_DATA_DIR`` the folder holding
``raw/`` input files and reports (three more tune DuckDB's memory, threads and spill folder:
:func:`duckdb_config`). Both default to ``<repo>/data``. Neither is ever resolved
against the current directory: a relative DuckDB path would silently create a second database,
so it is rejected. Two more shape the raw load: ``LTV_INPUT_MAPPING`` (the shop's column names
and formats: :func:`input_mapping_file`) and ``LTV_MAX_QUARANTINE_SHARE``
(:func:`max_quarantine_share`), ``LTV_EARLIEST_DATE`` the oldest date a row may carry
(:func:`earliest_date`) and ``LTV_DBT_THREADS`` dbt's threads (:func:`dbt_threads`).
:func:`check_environment` reads every one of them at once, so a bad value fails the start of
a run, named with its variable, instead of reaching SQL or dbt's profile.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    """The working DuckDB warehouse (``LTV_DUCKDB_PATH``; default ``<data dir>/warehouse.duckdb``,
    so ``LTV_DATA_DIR`` moves it as it moves Spark's); dbt's profile falls back to the same."""
    return _absolute_from_env(DUCKDB_ENV, data_dir() / "warehouse.duckdb")


def reports_dir() -> Path:
    """Charts written by the pipeline (cohort heatmap, LTV curves, LTV:CAC, backtest, segments)."""
    return data_dir() / "reports"


def published_dir() -> Path:
    """The read-only snapshot for BI: ``marts.duckdb``, ``parquet/`` and ``manifest.json``."""
    return data_dir() / "published"


WAREHOUSE_ENV = "LTV_WAREHOUSE"
WAREHOUSES = ("duckdb", "spark")


def warehouse() -> str:
    """The engine (``LTV_WAREHOUSE``: ``duckdb``, the default, or ``spark``); it names dbt's
    target and picks the resource Python assets read and write through.

    Raises
    ------
    ValueError
        Any other value.
    """
    value = os.environ.get(WAREHOUSE_ENV, "").strip() or WAREHOUSES[0]
    if value not in WAREHOUSES:
        raise ValueError(f"{WAREHOUSE_ENV}={value!r}: give one of {', '.join(WAREHOUSES)}")
    return value


def dbt_executable() -> Path:
    """The dbt installed beside this Python, so a venv works without being on PATH.

    That is ``ltv-dbt`` (dbt's own command line, exiting without the interpreter's teardown:
    :func:`ltv_pipeline.cli.dbt_entry`) where the install has made it, else dbt's ``dbt``.
    """
    quick = Path(sys.executable).with_name("ltv-dbt")
    return quick if quick.exists() else Path(sys.executable).with_name("dbt")


MEMORY_LIMIT_ENV = "LTV_DUCKDB_MEMORY_LIMIT"
THREADS_ENV = "LTV_DUCKDB_THREADS"
TEMP_DIR_ENV = "LTV_DUCKDB_TEMP_DIR"
#: What DuckDB's memory_limit accepts: an amount with a unit, or a share of the RAM.
MEMORY_LIMIT_PATTERN = r"[0-9]+(\.[0-9]+)? ?([KMGT]i?B|%)"


def duckdb_config() -> dict[str, str | int]:
    """DuckDB limits for every connection, Python's and dbt's (its ``on-run-start`` hook).

    ``LTV_DUCKDB_MEMORY_LIMIT`` (e.g. ``6GiB`` or ``50%``; DuckDB's default is 80% of RAM),
    ``LTV_DUCKDB_THREADS`` (default: all cores) and ``LTV_DUCKDB_TEMP_DIR`` (where work that
    does not fit spills; DuckDB's default is ``<warehouse>.tmp``). Unset means DuckDB's default.
    The same checks run in the dbt macro ``apply_duckdb_limits``.

    Raises
    ------
    ValueError
        A value DuckDB would not accept, named with its variable.
    """
    config: dict[str, str | int] = {}
    memory = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if memory:
        if not re.fullmatch(MEMORY_LIMIT_PATTERN, memory):
            raise ValueError(f"{MEMORY_LIMIT_ENV}={memory!r}: give an amount like 6GiB or 50%")
        config["memory_limit"] = memory
    if threads := _whole_number(THREADS_ENV, "threads"):
        config["threads"] = threads
    if os.environ.get(TEMP_DIR_ENV, "").strip():
        config["temp_directory"] = str(_absolute_from_env(TEMP_DIR_ENV, Path()))
    return config


INPUT_MAPPING_ENV = "LTV_INPUT_MAPPING"
MAX_QUARANTINE_SHARE_ENV = "LTV_MAX_QUARANTINE_SHARE"
DEFAULT_MAX_QUARANTINE_SHARE = 0.5


def input_mapping_file() -> Path | None:
    """The input mapping (``LTV_INPUT_MAPPING``, an absolute path to a TOML file) telling the
    loader the shop's own column names, status values and date formats; unset: ours.

    It is named by a variable rather than found beside the raw files because it is
    configuration, not data: it belongs with the deployment (and under version control), while
    ``raw/`` is a drop folder the shop's export job may overwrite or mirror, and a file
    appearing there should never change silently how every row is read. The file itself is
    read and checked by :func:`ltv_pipeline.ingest.read_input_mapping`.

    Raises
    ------
    ValueError
        A relative path.
    """
    if not os.environ.get(INPUT_MAPPING_ENV, "").strip():
        return None
    return _absolute_from_env(INPUT_MAPPING_ENV, Path())


def max_quarantine_share() -> float:
    """``LTV_MAX_QUARANTINE_SHARE``: the raw load fails when more than this share of a table's
    rows would be quarantined (default 0.5; 1 never fails). A share that large means the export
    changed, not that the shop has bad rows.

    Raises
    ------
    ValueError
        Not a number in (0, 1].
    """
    value = os.environ.get(MAX_QUARANTINE_SHARE_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_QUARANTINE_SHARE
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:  # also refuses nan
        raise ValueError(
            f"{MAX_QUARANTINE_SHARE_ENV}={value!r}: give a share in (0, 1], e.g. 0.5 "
            "(1 never fails the load)"
        )
    return share


EARLIEST_DATE_ENV = "LTV_EARLIEST_DATE"
DEFAULT_EARLIEST_DATE = dt.date(2000, 1, 1)


def earliest_date() -> dt.date:
    """``LTV_EARLIEST_DATE`` (``YYYY-MM-DD``, default 2000-01-01): rows dated before it are
    quarantined as ``too_early_<column>``.

    A date in 1900 is a placeholder or a typo, not a customer: loaded, it would stretch every
    monthly series back to it (one such row gave churn_monthly 1,000 months). Part of the load
    rules, so a change re-reads every file.

    Raises
    ------
    ValueError
        Not an ISO date, or before 1900-01-01 (the marts' month sequences end after 1,000
        months, and nobody's shop history is that long).
    """
    value = os.environ.get(EARLIEST_DATE_ENV, "").strip()
    if not value:
        return DEFAULT_EARLIEST_DATE
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        date = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{EARLIEST_DATE_ENV}={value!r}: give a date as YYYY-MM-DD") from None
    if date < dt.date(1900, 1, 1):
        raise ValueError(f"{EARLIEST_DATE_ENV}={value!r}: give a date on or after 1900-01-01")
    return date


DBT_THREADS_ENV = "LTV_DBT_THREADS"
DEFAULT_DBT_THREADS = 2


def dbt_threads() -> int:
    """``LTV_DBT_THREADS``: models dbt builds at once (default 2).

    dbt's profile reads the variable itself through ``| int``, which turns ``abc`` into 0
    without a word; this check runs before dbt is started (:func:`check_environment`).

    Raises
    ------
    ValueError
        Not a whole number >= 1.
    """
    return _whole_number(DBT_THREADS_ENV, "threads") or DEFAULT_DBT_THREADS


def _whole_number(name: str, unit: str) -> int | None:
    """The variable ``name`` as a whole number >= 1 of ``unit``; None when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: give a whole number of {unit} >= 1")
    return int(value)


SPARK_DRIVER_MEMORY_ENV = "LTV_SPARK_DRIVER_MEMORY"
DEFAULT_SPARK_DRIVER_MEMORY = "4g"


def spark_driver_memory() -> str:
    """``LTV_SPARK_DRIVER_MEMORY``: the heap of a local Spark session (default ``4g``). dbt's
    profile passes it to Spark as it is, and the JVM would fail to start far from the cause.

    Raises
    ------
    ValueError
        Not an amount like 4g, 512m or 8gb.
    """
    value = os.environ.get(SPARK_DRIVER_MEMORY_ENV, "").strip()
    if not value:
        return DEFAULT_SPARK_DRIVER_MEMORY
    if not re.fullmatch(r"[1-9][0-9]*([kmgtp]b?)?", value, flags=re.IGNORECASE):
        raise ValueError(f"{SPARK_DRIVER_MEMORY_ENV}={value!r}: give an amount like 4g or 512m")
    return value


SPARK_SHUFFLE_PARTITIONS_ENV = "LTV_SPARK_SHUFFLE_PARTITIONS"
DEFAULT_SPARK_SHUFFLE_PARTITIONS = 200


def spark_shuffle_partitions() -> int:
    """``LTV_SPARK_SHUFFLE_PARTITIONS``: the partitions of a Spark shuffle (default 200, Spark's
    own, meant for a cluster). On a small shop each shuffle's 200 tasks cost more than the data
    does: the test suite uses 2, which takes a 600-customer Spark run from 338 s to 267 s.

    Raises
    ------
    ValueError
        Not a whole number >= 1.
    """
    return _whole_number(SPARK_SHUFFLE_PARTITIONS_ENV, "partitions") or (
        DEFAULT_SPARK_SHUFFLE_PARTITIONS
    )


SPARK_JAVA_OPTIONS_ENV = "LTV_SPARK_JAVA_OPTIONS"


def spark_java_options() -> list[str]:
    """``LTV_SPARK_JAVA_OPTIONS``: more options for the local Spark driver's JVM (default none),
    e.g. ``-XX:TieredStopAtLevel=1`` for a session of short queries. dbt's profile passes them
    to Spark as they are, and the JVM would fail to start far from the cause.

    Raises
    ------
    ValueError
        A word that is not a JVM option (``-...``).
    """
    options = os.environ.get(SPARK_JAVA_OPTIONS_ENV, "").split()
    if not all(option.startswith("-") for option in options):
        raise ValueError(
            f"{SPARK_JAVA_OPTIONS_ENV}={' '.join(options)!r}: give JVM options, each starting "
            "with '-'"
        )
    return options


ALERT_WEBHOOK_ENV = "LTV_ALERT_WEBHOOK_URL"


def alert_webhook_url() -> str | None:
    """``LTV_ALERT_WEBHOOK_URL``: where a failed step of a run is reported, as a JSON POST
    (:mod:`ltv_pipeline.defs.alerts`); unset, no alert is sent.

    Raises
    ------
    ValueError
        A value that is not an http(s) URL with a host.
    """
    value = os.environ.get(ALERT_WEBHOOK_ENV, "").strip()
    if not value:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{ALERT_WEBHOOK_ENV}={value!r} is not an http(s) URL "
            "(e.g. https://hooks.example.com/ltv)"
        )
    return value


def check_environment() -> None:
    """Read every ``LTV_*`` setting once, so the first bad one fails now, named.

    Called when the definitions are built and by the CLI before dbt runs: a value read only
    deep inside a step (or only by dbt's profile) would otherwise fail late, or not at all.
    (``LTV_SCHEDULE_CRON`` is checked where the schedule is built,
    :mod:`ltv_pipeline.defs.schedules`, which needs Dagster.)

    Raises
    ------
    ValueError
        The first variable with a bad value.
    """
    data_dir()
    duckdb_path()
    warehouse()
    duckdb_config()
    input_mapping_file()
    max_quarantine_share()
    earliest_date()
    dbt_threads()
    spark_driver_memory()
    spark_shuffle_partitions()
    spark_java_options()
    alert_webhook_url()
