"""The Dagster instance ``ltv run`` records into: SQLite event logs that keep their connection.

Dagster's SQLite event log opens a new engine and connection for every event it stores (11.7
ms each on this project's 2-core machine). A run stores about 500 events and writes about 300
of them again into the cross-run index: some 7 s of every run, whatever the shop's size.
:class:`PooledSqliteEventLogStorage` is the same storage with the engine of each database kept
open (2.75 ms per event, ``bench/results/event_log.md``; ``tests/integration/test_instance.py``
reads what it writes back through Dagster's own class). The files, tables and everything the
UI reads are Dagster's own. It overrides ``_connect``, which Dagster does not document: the
pinned dagster version is the one it is tested on.

:func:`ensure_instance_config` writes the ``dagster.yaml`` that selects it into a
``DAGSTER_HOME`` that has none (or an empty one, as ``make ui`` used to leave); a
``dagster.yaml`` with any content is the user's and is left alone.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

#: Databases whose engine stays open at once (a run uses two: its own and the index); a
#: long-lived UI that reads many runs closes the least recently used.
OPEN_DATABASES = 8
#: As Dagster's own SQLite storages: how long a write waits for another process's lock.
BUSY_TIMEOUT_SECONDS = 15
CONFIG_FILE = "dagster.yaml"


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage, with one engine per database file kept open."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.pop(shard, None)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    connect_args={"timeout": BUSY_TIMEOUT_SECONDS},
                )
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
            self._engines[shard] = engine  # the most recently used last
            while len(self._engines) > OPEN_DATABASES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            with engine.connect() as conn, conn.begin():
                yield conn

    @property
    def open_databases(self) -> int:
        """How many database files have an engine open now."""
        return len(self._engines)

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_all()  # before the files go
        super().wipe()

    def delete_events(self, run_id: str) -> None:
        super().delete_events(run_id)
        self._close_all()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def instance_config(home: Path) -> str:
    """The ``dagster.yaml`` for ``home``: the pooled event log in Dagster's default folder."""
    events = Path(home).resolve() / "history" / "runs"
    return (
        "# Written by ltv (ltv_pipeline/instance.py) because this folder had no dagster.yaml:\n"
        "# Dagster's defaults, with the SQLite event log keeping its connections open.\n"
        "event_log_storage:\n"
        "  module: ltv_pipeline.instance\n"
        "  class: PooledSqliteEventLogStorage\n"
        "  config:\n"
        f"    base_dir: {json.dumps(str(events))}\n"
    )


def ensure_instance_config() -> Path | None:
    """Write :func:`instance_config` into ``$DAGSTER_HOME`` unless it has a non-empty one.

    Returns the file written, or None (no ``DAGSTER_HOME``, or the user's own file).
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return None
    config = Path(home) / CONFIG_FILE
    if config.exists() and config.read_text().strip():
        return None
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(instance_config(Path(home)))
    return config
