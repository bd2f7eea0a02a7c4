"""The DuckDB warehouse (the default): one file, connections opened per use and always closed."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from pydantic import Field

from ltv_pipeline import ingest, settings
from ltv_pipeline import publish as publish_
from ltv_pipeline.ingest import LoadReport
from ltv_pipeline.warehouse import last_good
from ltv_pipeline.warehouse.base import Warehouse


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

    def batches(self, sql: str, rows: int) -> Iterator[pd.DataFrame]:
        # a cursor of its own, so the connection can write while the result is read
        with self.con.cursor() as reader:
            result = reader.sql(sql).to_arrow_reader(rows)
            empty = True
            for batch in result:
                empty = False
                yield batch.to_pandas()
            if empty:
                yield result.schema.empty_table().to_pandas()

    def replace_table_batches(
        self, table: str, batches: Iterable[pd.DataFrame], order_by: str
    ) -> int:
        # appended in the order they come (the connection keeps insertion order), in one
        # transaction: readers see the old table until the commit, and a failure keeps it
        schema = table.split(".")[0]
        self.con.execute(f"create schema if not exists {schema}")
        rows = 0
        self.con.execute("begin transaction")
        try:
            for i, frame in enumerate(batches):
                self.con.register("_frame", frame)
                try:
                    self.con.execute(
                        f"create or replace table {table} as select * from _frame"
                        if i == 0
                        else f"insert into {table} select * from _frame"
                    )
                finally:
                    self.con.unregister("_frame")
                rows += len(frame)
            self.con.execute("commit")
        except BaseException:
            self.con.execute("rollback")
            raise
        return rows

    def replace_table_query(self, table: str, sql: str, inputs: Mapping[str, pd.DataFrame]) -> int:
        schema = table.split(".")[0]
        self.con.execute(f"create schema if not exists {schema}")
        for name, frame in inputs.items():
            self.con.register(name, frame)
        try:
            (rows,) = self.con.execute(f"create or replace table {table} as {sql}").fetchone()
        finally:
            for name in inputs:
                self.con.unregister(name)
        return int(rows)


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
        self,
        schema: str,
        tables: list[str],
        out_dir: Path,
        *,
        run_id: str,
        as_of_date: str,
        keys: Mapping[str, Sequence[str]] | None = None,
    ) -> publish_.Manifest:
        with self.connect() as con:
            return publish_.publish(
                con, schema, tables, out_dir, run_id=run_id, as_of_date=as_of_date, keys=keys
            )

    def begin_night(self) -> bool:
        def checkpoint() -> None:
            with self.connect() as con:
                con.execute("checkpoint")

        return last_good.begin(Path(self.path), checkpoint=checkpoint)

    def restore_last_good(self) -> bool:
        return last_good.restore(Path(self.path))

    def mark_published(self) -> None:
        last_good.mark_published(Path(self.path))


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
