"""The published snapshot switches as one unit, whenever the publishing process dies.

A subprocess publishes with every filesystem step it takes (mkdir, fsync, rename, replace,
symlink, unlink, rmdir) counted, and SIGKILLs itself before step k, for k = 1, 2, ... until a
publish completes. After each kill, what a reader opens through the fixed paths
(``marts.duckdb``, ``parquet/``, ``manifest.json``) must be one run's snapshot, the old or the
new: the ``_manifest`` table, ``manifest.json`` and every file's SHA-256 agree. The next publish
must then remove what the killed one left and keep a bounded number of versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ltv_pipeline import publish

REPO = Path(__file__).resolve().parents[2]
TABLES = ["customers", "orders_by_day"]

KILLER = r"""
import os, signal, sys
from pathlib import Path
import duckdb
from ltv_pipeline import publish
warehouse, out, run_id, kill_at = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
steps = 0
def counted(step):
    def call(*args, **kwargs):
        global steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(*args, **kwargs)
    return call
for name in ("mkdir", "fsync", "rename", "replace", "symlink", "unlink", "rmdir"):
    setattr(os, name, counted(getattr(os, name)))
with duckdb.connect(warehouse, read_only=True) as con:
    publish.publish(con, "marts", sys.argv[5:], out, run_id=run_id, as_of_date="2026-02-28")
print(steps)
"""


def _warehouse(path: Path, customers: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.execute(
            "create or replace table marts.customers as select range as customer_id, "
            "range * 1.5 as net_revenue from range(?)",
            [customers],
        )
        con.execute(
            "create or replace table marts.orders_by_day as select range as day, "
            "range % 7 as orders from range(?)",
            [customers * 2],
        )


def _publish(warehouse: Path, out: Path, run_id: str, **kwargs) -> publish.Manifest:
    with duckdb.connect(str(warehouse)) as con:
        return publish.publish(
            con, "marts", TABLES, out, run_id=run_id, as_of_date="2026-02-28", **kwargs
        )


def _leftovers(out: Path) -> list[str]:
    """Every dot-named path under ``out`` but the lock: what publishing left behind."""
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*") if p.name != ".publish.lock")


def _versions(out: Path) -> list[str]:
    folder = out / "versions"
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if folder.is_dir()
        else []
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reader_sees(out: Path) -> str:
    """What a BI reader opening the fixed paths sees: the run id of one consistent snapshot."""
    manifest = json.loads((out / "manifest.json").read_text())
    with duckdb.connect(str(out / "marts.duckdb"), read_only=True) as snap:
        rows = snap.execute("select run_id, table_name, row_count from _manifest").fetchall()
        counts = {
            table: snap.execute(f'select count(*) from "{table}"').fetchone()[0]
            for _, table, _ in rows
        }
    listed = {t["name"]: t["rows"] for t in manifest["tables"]}
    assert {run_id for run_id, _, _ in rows} == {manifest["run_id"]}, "marts.duckdb, manifest.json"
    assert {table: n for _, table, n in rows} == listed == counts
    assert _sha(out / "marts.duckdb") == manifest["duckdb_sha256"]
    assert sorted(p.name for p in (out / "parquet").glob("*.parquet")) == sorted(
        f"{name}.parquet" for name in listed
    )
    for table in manifest["tables"]:
        assert _sha(out / table["parquet"]) == table["parquet_sha256"], table["name"]
        assert pq.read_metadata(out / table["parquet"]).num_rows == table["rows"]
    return manifest["run_id"]


def _reader_view(out: Path) -> str:
    """:func:`_reader_sees`, or ``torn: <why>`` when the files of two runs are mixed."""
    try:
        return _reader_sees(out)
    except AssertionError as exc:
        return f"torn: {exc}"


def test_a_publish_killed_at_any_step_leaves_one_snapshot_and_the_next_one_sweeps(tmp_path):
    warehouse, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(warehouse, 10)
    _publish(warehouse, out, "r0")
    previous, seen, left, swept, kept = "r0", {}, {}, {}, {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for step in range(1, 200):
        _warehouse(warehouse, 10 + step)  # every run publishes other row counts
        run_id = f"killed{step}"
        proc = subprocess.run(
            [sys.executable, "-c", KILLER, str(warehouse), str(out), run_id, str(step), *TABLES],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        view = _reader_view(out)
        if proc.returncode == 0:  # no step left to kill at: the publish completed
            assert view == run_id
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        seen[step] = "new" if view == run_id else "old" if view == previous else view
        left[step] = _leftovers(out)
        # the next publish takes over without clean-up and removes what the killed one left
        previous = f"after{step}"
        _publish(warehouse, out, previous)
        assert _reader_view(out) == previous
        swept[step], kept[step] = _leftovers(out), len(_versions(out))
    else:
        raise AssertionError("the publish never completed")
    assert len(seen) >= 15  # every filesystem step of a publish was a kill point
    # killed before the swap: the old snapshot; after it: the new one; never anything else
    assert {view for view in seen.values() if view not in ("old", "new")} == set()
    outcomes = list(seen.values())
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert outcomes == sorted(outcomes, key=["old", "new"].index)
    assert sum(bool(paths) for paths in left.values()) >= 5  # kills did leave temporaries
    assert {step: paths for step, paths in swept.items() if paths} == {}
    assert set(kept.values()) == {publish.KEEP_VERSIONS}


def test_kept_versions_are_bounded_and_an_open_reader_outlives_the_sweep(tmp_path):
    warehouse, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(warehouse, 10)
    first = _publish(warehouse, out, "r1")
    reader = duckdb.connect(str(out / "marts.duckdb"), read_only=True)
    try:
        for n in range(2, 6):
            _warehouse(warehouse, 10 + n)
            manifest = _publish(warehouse, out, f"r{n}")
            assert len(publish.versions(out)) == min(n, publish.KEEP_VERSIONS)
        assert publish.versions(out)[-1] == manifest.version
        assert not (out / "versions" / first.version).exists()
        # the reader opened r1 through the fixed path; its files are gone, its inodes are not
        assert reader.execute("select count(*) from customers").fetchone() == (10,)
        assert reader.execute("select distinct run_id from _manifest").fetchall() == [("r1",)]
    finally:
        reader.close()
    assert _reader_sees(out) == "r5"
    assert publish.verify(out, manifest) == []
    _publish(warehouse, out, "r6", keep=1)
    assert len(publish.versions(out)) == 1


def test_verify_reads_the_current_version_and_finds_a_broken_link(tmp_path):
    warehouse, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(warehouse, 10)
    first = _publish(warehouse, out, "r1")
    second = _publish(warehouse, out, "r2")
    assert publish.read_manifest(out) == second
    assert publish.snapshot_dir(out) == out / "versions" / second.version
    assert publish.verify(out, second) == []
    assert f"manifest is of version {first.version}, current is {second.version}" in (
        publish.verify(out, first)
    )
    # someone replaces the fixed path with a copy: it no longer follows the swaps
    (out / "marts.duckdb").unlink()
    shutil.copy(out / "current" / "marts.duckdb", out / "marts.duckdb")
    assert publish.verify(out, second) == ["marts.duckdb: not a symlink to current/marts.duckdb"]
    _publish(warehouse, out, "r3")  # the next publish puts the link back
    assert os.readlink(out / "marts.duckdb") == "current/marts.duckdb"


def test_a_snapshot_of_the_old_flat_layout_is_taken_over_and_its_temporaries_swept(tmp_path):
    warehouse, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(warehouse, 10)
    # what publishing wrote before versions: real files, and temporaries of a killed publish
    old = _publish(warehouse, tmp_path / "before", "r1")
    shutil.copytree(publish.snapshot_dir(tmp_path / "before"), out)
    (out / ".marts.duckdb.r0.tmp").write_bytes(b"torn")
    (out / ".manifest.json.r0.tmp").write_text("{")
    (out / ".marts.duckdb.r0.tmp.wal").write_bytes(b"torn")
    (out / "parquet" / ".customers.parquet.r0.tmp").write_bytes(b"torn")
    assert publish.read_manifest(out) == old and publish.verify(out, old) == []
    reader = duckdb.connect(str(out / "marts.duckdb"), read_only=True)
    try:
        _warehouse(warehouse, 20)
        new = _publish(warehouse, out, "r2")
        assert reader.execute("select count(*) from customers").fetchone() == (10,)
    finally:
        reader.close()
    assert _reader_sees(out) == "r2"
    for name in ("marts.duckdb", "parquet", "manifest.json"):
        assert os.readlink(out / name) == f"current/{name}"
    assert _leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == [
        ".publish.lock",
        "current",
        "manifest.json",
        "marts.duckdb",
        "parquet",
        "versions",
    ]
    assert publish.verify(out, new) == []


def test_rows_are_published_in_key_order_and_the_same_rows_give_the_same_bytes(tmp_path):
    """A table with a key is sorted by it (here not its first column, so sorting by every
    column would give another order); one without by every column. Two warehouses holding the
    same rows inserted in opposite orders publish byte-equal Parquet files."""
    rows = [(3, "a", 30.0), (1, "c", 10.0), (2, "b", 20.0), (5, "b", 50.0), (4, "a", 40.0)]
    shas = []
    for name, inserted in [("one", rows), ("two", rows[::-1])]:
        warehouse, out = tmp_path / f"{name}.duckdb", tmp_path / f"published_{name}"
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create schema marts")
            for table in ("keyed", "unkeyed"):
                con.execute(f"create table marts.{table} (label varchar, id int, value double)")
                con.executemany(
                    f"insert into marts.{table} values (?, ?, ?)",
                    [[label, key, value] for key, label, value in inserted],
                )
            manifest = publish.publish(
                con,
                "marts",
                ["keyed", "unkeyed"],
                out,
                run_id=name,
                as_of_date="2026-02-28",
                keys={"keyed": ["id"]},
            )
        parquet = {t.name: out / t.parquet for t in manifest.tables}
        assert pq.read_table(parquet["keyed"]).column("id").to_pylist() == [1, 2, 3, 4, 5]
        assert pq.read_table(parquet["unkeyed"]).to_pylist() == [
            {"label": label, "id": key, "value": value}
            for label, key, value in sorted((label, key, value) for key, label, value in rows)
        ]
        with duckdb.connect(str(out / "marts.duckdb"), read_only=True) as snap:
            assert [k for (k,) in snap.execute("select id from keyed").fetchall()] == [
                1,
                2,
                3,
                4,
                5,
            ]
        shas.append({t.name: t.parquet_sha256 for t in manifest.tables})
    assert shas[0] == shas[1]
