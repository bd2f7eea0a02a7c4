"""Dagster definitions, one module per concern, named as the pure modules they wrap: loaded by
:func:`dagster.load_from_defs_folder` (``definitions.py``). Each asset check sits next to its
asset."""

import datetime as dt
import importlib.metadata
import sys

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from dagster_shared.libraries import DagsterLibraryRegistry

from ltv_pipeline.warehouse.base import MARTS_SCHEMA, WarehouseSession


def import_dagster_dbt_without_dbt_core() -> None:
    """Import dagster-dbt without letting it import dbt-core, which this process never runs.

    dbt runs in its own process (``ltv-dbt``); here dagster-dbt reads the manifest, starts that
    process and reads its log lines. When dbt-core is importable, dagster-dbt imports it anyway
    (1.1 s of every run's start, bench/results/fixed_cost_ab_dbt_out.md) and evaluates its default
    selection, ``fqn:*``, with dbt's graph selector; without it, it takes every node of the
    manifest, which gives the same assets and checks
    (``test_the_dagster_process_leaves_dbt_core_out``). ``dbt.version``, the module
    dagster-dbt tries first, is hidden only while dagster-dbt is imported (an import of a name
    whose ``sys.modules`` entry is None fails), so dbt-core stays importable afterwards. Called
    below, before any module of this package imports dagster-dbt; a process that imported it
    earlier keeps it as it is.
    """
    if "dagster_dbt" in sys.modules:
        return
    hidden = "dbt.version" not in sys.modules
    if hidden:
        sys.modules["dbt.version"] = None  # type: ignore[assignment]
    try:
        import dagster_dbt  # noqa: F401
    finally:
        if hidden and sys.modules.get("dbt.version", ...) is None:
            del sys.modules["dbt.version"]
    # dagster-dbt then lists "dbt-fusion" among the code location's libraries; say which dbt
    DagsterLibraryRegistry.register(
        "dbt-core", importlib.metadata.version("dbt-core"), is_dagster_package=False
    )


import_dagster_dbt_without_dbt_core()


def check_result(problems: list[str], ok: str, **metadata) -> dg.AssetCheckResult:
    """Passed when ``problems`` is empty; the description lists them, or says ``ok``."""
    return dg.AssetCheckResult(
        passed=not problems, description="; ".join(problems) or ok, metadata=metadata
    )


#: The group of the Python marts: as every asset's, the schema it writes. They are marts like
#: dbt's, and in one group with them the UI's group graph runs one way, raw -> staging ->
#: intermediate -> marts -> published, although predictions feed marts built after them.
MARTS_GROUP = MARTS_SCHEMA


#: The one-row dbt model that says which day "today" is (the dbt var ``as_of_date``).
REPORTING_WINDOW = dg.AssetKey(["intermediate", "int_reporting_window"])


def read_as_of_date(db: WarehouseSession) -> dt.date:
    """The ``as_of_date`` the dbt marts were built for (``int_reporting_window``).

    Every Python mart stores it, so a mart left behind by a dbt-only rebuild at another date
    says so itself (``ltv dbt build`` warns; publishing refuses a mixed snapshot).
    """
    (value,) = db.row("select as_of_date from intermediate.int_reporting_window")
    return value.date() if isinstance(value, dt.datetime) else value


#: Day 0 of Arrow's ``date32``.
EPOCH = dt.date(1970, 1, 1)


def with_as_of_date(frame: pd.DataFrame, as_of_date: dt.date) -> pd.DataFrame:
    """``frame`` with a last column ``as_of_date``, typed as a date even when it is empty.

    An Arrow date column: DuckDB and Spark (through Arrow) both store it as DATE, where a
    column of Python dates would be untyped when there are no rows.
    """
    # from the day number, not a list of date objects: 0.44 s less for 3M predictions
    days = np.full(len(frame), (as_of_date - EPOCH).days, dtype=np.int32)
    out = frame.copy()
    out["as_of_date"] = pd.Series(
        pd.arrays.ArrowExtensionArray(pa.array(days, type=pa.int32()).cast(pa.date32())),
        index=out.index,
    )
    return out


def replace_mart(
    db: WarehouseSession, key: dg.AssetKey, frame: pd.DataFrame, as_of_date: dt.date, order_by: str
) -> int:
    """Replace the mart of asset ``key`` with ``frame`` and its ``as_of_date``; the rows."""
    table = ".".join(key.path)
    return db.replace_table(table, with_as_of_date(frame, as_of_date), order_by)


def not_fitted(what: str, status: str) -> dg.AssetCheckResult:
    # a shop too small to fit is a warning, not wrong numbers: the predictions are null
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{what} {status}",
    )
