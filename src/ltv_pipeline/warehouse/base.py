"""The warehouse Python assets read and write through: one subclass per engine
(:mod:`.duckdb`, :mod:`.spark`), picked by ``LTV_WAREHOUSE`` where the resources are built
(:mod:`ltv_pipeline.defs.resources`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from dagster import ConfigurableResource

from ltv_pipeline import publish as publish_
from ltv_pipeline import settings
from ltv_pipeline.ingest import InputMapping, LoadReport

#: The schema of every mart, dbt's and Python's alike.
MARTS_SCHEMA = "marts"


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

    def batches(self, sql: str, rows: int) -> Iterator[pd.DataFrame]:
        """The result of ``sql`` in DataFrames of at most ``rows`` rows, each read when it is
        needed, so a result larger than memory can be worked through; at least one (empty if
        the result is)."""
        ...

    def replace_table_batches(
        self, table: str, batches: Iterable[pd.DataFrame], order_by: str
    ) -> int:
        """Replace ``schema.name`` with the rows of ``batches``, which come sorted by
        ``order_by``; returns the row count. The old table stays until the last batch is in."""
        ...

    def replace_table_query(self, table: str, sql: str, inputs: Mapping[str, pd.DataFrame]) -> int:
        """Replace ``schema.name`` with the result of ``sql``, which reads the warehouse and the
        small frames of ``inputs`` under their names; returns the row count. Rows are in no
        particular order (publishing sorts by the key)."""
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
        mapping: InputMapping | None = None,
        max_quarantine_share: float = settings.DEFAULT_MAX_QUARANTINE_SHARE,
        earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
    ) -> LoadReport:
        """Bring schema ``raw`` up to date with the files in ``raw_dir``
        (:mod:`ltv_pipeline.ingest`)."""
        raise NotImplementedError

    def mart_tables(self, schema: str) -> list[str]:
        """The tables of ``schema``, by name."""
        raise NotImplementedError

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
        """Publish ``schema.<table>`` for each table as the BI snapshot (:mod:`publish`)."""
        raise NotImplementedError

    def begin_night(self) -> bool:
        """Before the raw load writes: put the last good night back if the last night was not
        published, keep the warehouse as it is then as the last good night, and mark this
        night unaudited; whether it put back (:mod:`ltv_pipeline.warehouse.last_good`).
        Spark's tables are a metastore of folders: not kept (README)."""
        return False

    def restore_last_good(self) -> bool:
        """Put the last good night back if the last night was not published; whether it did."""
        return False

    def mark_published(self) -> None:
        """The night in the warehouse is published: the next night keeps it as the last good
        one."""
