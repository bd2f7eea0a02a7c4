"""Resources: the warehouse (DuckDB, or Spark: :mod:`ltv_pipeline.spark`), the raw file drop
and dbt."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd
from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource
from pydantic import Field

from ltv_pipeline import ingest, last_good, settings
from ltv_pipeline import publish as publish_
from ltv_pipeline.ingest import LoadReport
from ltv_pipeline.project import dbt_project


class WarehouseSession(Protocol):
    """What Python assets and checks do with the warehouse, on either engine. The SQL they pass
    is written to run on DuckDB and Spark alike."""

    def frame(self, sql: str) -> pd.DataFrame:
        """The result of ``sql`` as a DataFrame."""
        ...

    def row(self, sql: str) -> tuple[Any, ...]:
        """The first row of ``sql``'s result."""
        ...

    def replace_table(self, table: str, frame: pd.DataFrame, order_by: str) -> int:
        """Replace ``schema.name`` with ``frame``, sorted; returns the row count."""
        ...


class Warehouse(ConfigurableResource):
    """Where Python assets read and write: one subclass per engine, picked by LTV_WAREHOUSE
    (:func:`build_resources`)."""

    def session(self) -> AbstractContextManager[WarehouseSession]:
        raise NotImplementedError

    def release(self) -> None:
        """Let another process (dbt) use the warehouse; called before every dbt step."""

    def location(self) -> str:
        """Where the tables are, for people."""
        raise NotImplementedError

    def load_raw(
        self,
        raw_dir: Path,
        *,
        currency: str,
        log: Callable[[str], None],
        full_refresh: bool,
        mapping: ingest.InputMapping | None = None,
        max_quarantine_share: float = settings.DEFAULT_MAX_QUARANTINE_SHARE,
        earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
    ) -> LoadReport:
        """Bring schema ``raw`` up to date with the files in ``raw_dir`` (:mod:`ingest`)."""
        raise NotImplementedError

    def mart_tables(self, schema: str) -> list[str]:
        """The tables of ``schema``, by name."""
        raise NotImplementedError

    def publish(
        self, schema: str, tables: list[str], out_dir: Path, *, run_id: str, as_of_date: str
    ) -> publish_.Manifest:
        """Publish ``schema.<table>`` for each table as the BI snapshot (:mod:`publish`)."""
        raise NotImplementedError

    def begin_night(self) -> bool:
        """Before the raw load writes: put the last good night back if the last night was not
        published, and mark this one unaudited; whether it put back (:mod:`last_good`).
        Spark's tables are a metastore of folders: not kept (README)."""
        return False

    def restore_last_good(self) -> bool:
        """Put the last good night back if the last night was not published; whether it did."""
        return False

    def keep_last_good(self) -> None:
        """Keep the warehouse as it is now as the last good night (after publishing)."""


class DuckDBSession:
    """:class:`WarehouseSession` on one open DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def row(self, sql: str) -> tuple[Any, ...]:
        return self.con.execute(sql).fetchone()

    def replace_table(self, table: str, frame: pd.DataFrame, order_by: str) -> int:
        return replace_table(self.con, table, frame, order_by)


class DuckDBWarehouse(Warehouse):
    """The working warehouse. Connections are opened per use and always closed.

    DuckDB admits one writing process, and dbt runs as a subprocess: never keep a connection
    open across a dbt step, and run with the in-process executor.
    """

    path: str = Field(description="Absolute path of the DuckDB file.")
    threads: int | None = Field(default=None, description="DuckDB threads (default: all cores).")
    memory_limit: str | None = Field(
        default=None, description="e.g. '6GiB' or '50%' (default: 80% of RAM)."
    )
    temp_directory: str | None = Field(
        default=None, description="Where DuckDB spills (default: <warehouse>.tmp)."
    )

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection whose session time zone is UTC, to a file only its owner
        can read.

        The warehouse holds every customer's email, so it is created with mode 0600 (a
        umask of 077 while DuckDB creates it; an older, wider file is narrowed) and a folder
        made for it is 0700. The time zone is set on the connection because DuckDB starts
        from the host's (``TZ``), and a timestamp without an offset is read in it.
        """
        path = Path(self.path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        config: dict[str, str | int] = {}
        if self.threads:
            config["threads"] = self.threads
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        if self.temp_directory:
            config["temp_directory"] = self.temp_directory
        previous = os.umask(0o077)
        try:
            con = duckdb.connect(self.path, config=config)
        finally:
            os.umask(previous)
        with con:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            ingest.use_utc(con)
            yield con

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        with self.connect() as con:
            yield DuckDBSession(con)

    def load_raw(
        self,
        raw_dir: Path,
        *,
        currency: str,
        log: Callable[[str], None],
        full_refresh: bool,
        mapping: ingest.InputMapping | None = None,
        max_quarantine_share: float = settings.DEFAULT_MAX_QUARANTINE_SHARE,
        earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
    ) -> LoadReport:
        with self.connect() as con:
            return ingest.load_raw(
                con,
                raw_dir,
                currency=currency,
                log=log,
                full_refresh=full_refresh,
                mapping=mapping,
                max_quarantine_share=max_quarantine_share,
                earliest_date=earliest_date,
            )

    def location(self) -> str:
        return self.path

    def mart_tables(self, schema: str) -> list[str]:
        with self.connect() as con:
            return publish_.mart_tables(con, schema, set())

    def publish(
        self, schema: str, tables: list[str], out_dir: Path, *, run_id: str, as_of_date: str
    ) -> publish_.Manifest:
        with self.connect() as con:
            return publish_.publish(
                con, schema, tables, out_dir, run_id=run_id, as_of_date=as_of_date
            )

    def begin_night(self) -> bool:
        return last_good.begin(Path(self.path))

    def restore_last_good(self) -> bool:
        return last_good.restore(Path(self.path))

    def keep_last_good(self) -> None:
        with self.connect() as con:
            con.execute("checkpoint")
        last_good.keep(Path(self.path))


def replace_table(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, order_by: str
) -> int:
    """Replace ``schema.name`` with ``frame`` in one statement; returns the row count."""
    schema = table.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame", frame)
    try:
        con.execute(f"create or replace table {table} as select * from _frame order by {order_by}")
    finally:
        con.unregister("_frame")
    return len(frame)


class RawFiles(ConfigurableResource):
    """The folder the shop's raw files are dropped into."""

    directory: str = Field(description="Absolute path of the raw drop folder.")
    currency: str = Field(default="USD", description="The shop currency; others are held.")
    mapping_file: str | None = Field(
        default=None,
        description="Absolute path of the input mapping (TOML): the shop's column names, "
        "status values and date formats (LTV_INPUT_MAPPING).",
    )
    max_quarantine_share: float = Field(
        default=settings.DEFAULT_MAX_QUARANTINE_SHARE,
        description="Fail the load when more than this share of a table's rows would be "
        "quarantined (LTV_MAX_QUARANTINE_SHARE).",
    )
    earliest_date: str = Field(
        default=settings.DEFAULT_EARLIEST_DATE.isoformat(),
        description="Rows dated before this day (YYYY-MM-DD) are quarantined as "
        "too_early_<column> (LTV_EARLIEST_DATE).",
    )

    @property
    def earliest(self) -> dt.date:
        """:attr:`earliest_date` as a date."""
        return dt.date.fromisoformat(self.earliest_date)

    @property
    def path(self) -> Path:
        return Path(self.directory)

    def mapping(self) -> ingest.InputMapping | None:
        """The input mapping, read and checked now (:func:`ingest.read_input_mapping`)."""
        if not self.mapping_file:
            return None
        return ingest.read_input_mapping(Path(self.mapping_file))


class ReportsDir(ConfigurableResource):
    """Where charts are written (also shown in the Dagster UI as metadata)."""

    directory: str = Field(description="Absolute path of the reports folder.")

    @property
    def path(self) -> Path:
        return Path(self.directory)


class PublishedDir(ConfigurableResource):
    """Where the BI snapshot is published; BI opens only files under it, read-only."""

    directory: str = Field(description="Absolute path of the published folder.")

    @property
    def path(self) -> Path:
        return Path(self.directory)


def build_resources() -> dict[str, object]:
    """Resources for the configured environment (read when definitions load); the only place
    that picks the engine (LTV_WAREHOUSE). Every ``LTV_*`` setting is checked first
    (:func:`settings.check_environment`)."""
    settings.check_environment()
    warehouse: Warehouse
    if settings.warehouse() == "spark":
        from ltv_pipeline.spark import SparkWarehouse, spark_conf

        warehouse = SparkWarehouse(conf=spark_conf())
    else:
        warehouse = DuckDBWarehouse(path=str(settings.duckdb_path()), **settings.duckdb_config())
    return {
        "warehouse": warehouse,
        "raw_files": RawFiles(
            directory=str(settings.raw_dir()),
            mapping_file=str(mapping) if (mapping := settings.input_mapping_file()) else None,
            max_quarantine_share=settings.max_quarantine_share(),
            earliest_date=settings.earliest_date().isoformat(),
        ),
        "reports": ReportsDir(directory=str(settings.reports_dir())),
        "published": PublishedDir(directory=str(settings.published_dir())),
        "dbt": DbtCliResource(
            project_dir=dbt_project, dbt_executable=str(settings.dbt_executable())
        ),
    }
