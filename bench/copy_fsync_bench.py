"""What a copy of the warehouse does to the commits of a SQLite file beside it (issue 18).

Why ``ltv run``, which copies the last good night on a thread as it starts, waits for the copy
before Dagster opens its storage (``runs.run_all``): Dagster writes its run and events to SQLite,
a commit (and an fsync) each, and a large write on the same filesystem makes those fsyncs wait
for its writeback. This script copies a file of the given size the way the last good night is copied
(:func:`ltv_pipeline.warehouse.last_good.copy_bytes`, then an fsync) on a thread, while the
main thread commits one row at a time to a SQLite file (``synchronous=full``, as Dagster's
storage) for a fixed time; and the same commits with no copy. Commit latencies are reported.

    .venv/bin/python bench/copy_fsync_bench.py --gib 1 10 --workdir /work/lbench/cf --out r.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from ltv_pipeline.warehouse.last_good import copy_bytes

CHUNK = 64 << 20


def make_file(path: Path, gib: float) -> None:
    """A file of ``gib`` GiB of zeros, written and synced before the measurement."""
    size = int(gib * (1 << 30))
    block = bytes(CHUNK)
    with path.open("wb") as handle:
        left = size
        while left > 0:
            left -= handle.write(block[: min(CHUNK, left)])
        handle.flush()
        os.fsync(handle.fileno())


def copy(source: Path, target: Path, timing: dict) -> None:
    started = time.perf_counter()
    with source.open("rb", buffering=0) as src, target.open("wb", buffering=0) as dst:
        copy_bytes(src, dst)
        copied = time.perf_counter()
        os.fsync(dst.fileno())
    timing["copy"] = copied - started
    timing["fsync"] = time.perf_counter() - copied


def commits(db_path: Path, seconds: float) -> list[float]:
    """Latency of each one-row commit, one every 20 ms, for ``seconds``."""
    db_path.unlink(missing_ok=True)
    db = sqlite3.connect(db_path)
    db.execute("pragma synchronous=full")
    db.execute("create table t (x integer)")
    db.commit()
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        db.execute("insert into t values (1)")
        db.commit()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    db.close()
    return sorted(latencies)


def row(label: str, latencies: list[float], timing: dict | None) -> str:
    n = len(latencies)
    cells = [
        label,
        f"{n}",
        f"{latencies[n // 2] * 1000:.1f}",
        f"{latencies[int(n * 0.99)] * 1000:.0f}",
        f"{latencies[-1] * 1000:.0f}",
        f"{sum(latencies):.1f}",
        f"{timing['copy']:.1f} + {timing['fsync']:.1f}" if timing else "-",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / "events.sqlite"
    lines = [row("no copy", commits(db, args.seconds), None)]
    for gib in args.gib:
        source, target = args.workdir / "warehouse.bin", args.workdir / "copy.bin"
        make_file(source, gib)
        timing: dict = {}
        thread = threading.Thread(target=copy, args=(source, target, timing))
        thread.start()
        latencies = commits(db, args.seconds)
        thread.join()
        lines.append(row(f"while {gib:g} GiB are copied", latencies, timing))
        source.unlink()
        target.unlink()
    db.unlink(missing_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    text = [
        "# SQLite commits while the warehouse is copied (`bench/copy_fsync_bench.py`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} (UTC); git commit {commit}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}",
        f"- workdir: `{args.workdir}`; {args.seconds:g} s of one-row commits (synchronous=full), "
        "one every 20 ms; the copy on a thread as `last_good.copy_bytes`, then an fsync",
        "",
        "| while | commits | median ms | p99 ms | max ms | total s | copy + fsync s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *lines,
        "",
    ]
    args.out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
