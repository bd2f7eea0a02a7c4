"""Dagster's SQLite event log against ltv's pooled one (``ltv_pipeline/instance.py``).

Run: ``.venv/bin/python bench/event_log_bench.py [--events 300] [--out bench/results/event_log.md]``

Each round stores the same number of plain log events into a new run database of each storage,
alternating, in one process, on one disk; the figure is milliseconds per stored event. A run of
``ltv run`` stores about 500 events and writes about 300 of them again into the index.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from ltv_pipeline.instance import PooledSqliteEventLogStorage

ROUNDS = 5


def per_event_ms(storage, run_id: str, events: int) -> float:
    started = time.perf_counter()
    for i in range(events):
        storage.store_event(
            EventLogEntry(
                error_info=None,
                level=10,
                user_message=f"m{i}",
                run_id=run_id,
                timestamp=time.time(),
            )
        )
    return (time.perf_counter() - started) / events * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storages = {
            "dagster SqliteEventLogStorage": SqliteEventLogStorage(f"{tmp}/plain"),
            "ltv PooledSqliteEventLogStorage": PooledSqliteEventLogStorage(f"{tmp}/pooled"),
        }
        times: dict[str, list[float]] = {name: [] for name in storages}
        for round_ in range(ROUNDS):
            for name, storage in storages.items():
                times[name].append(per_event_ms(storage, f"run{round_}", args.events))
        for storage in storages.values():
            storage.dispose()
    plain, pooled = (statistics.median(v) for v in times.values())
    lines = [
        "# Event log: Dagster's SQLite storage against the pooled one",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} (UTC); {ROUNDS} rounds of {args.events} "
        "events each, alternating, one process",
        "",
        "| storage | ms per event (median) | rounds |",
        "|---|---:|---|",
        *(
            f"| {name} | {statistics.median(v):.2f} | {', '.join(f'{x:.2f}' for x in v)} |"
            for name, v in times.items()
        ),
        "",
        f"Pooled / Dagster's: {pooled / plain:.2f}; at 800 writes a run that is "
        f"{(plain - pooled) * 800 / 1000:.1f} s saved.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
