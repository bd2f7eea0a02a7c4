"""The last good night: a night that is not published leaves the warehouse where it was.

The unit tests drive :mod:`ltv_pipeline.warehouse.last_good` on plain files. The pipeline test
runs the real nightly path on one shop: a published night, then a night whose new files pass
the raw load but fail a dbt test (an order in 1900, let in by ``LTV_EARLIEST_DATE``). The raw
layer, the marts and the snapshot must be those of the first night, compared with fingerprints
taken before; the night after, with the bad rows gone, must equal a fresh load.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

import duckdb
import pytest

from ltv_pipeline import ingest, runs
from ltv_pipeline.sample.generate import generate_shop
from ltv_pipeline.warehouse import last_good
from tests.helpers import failure_messages, materialization_metadata, run_pipeline


def test_a_night_keeps_the_published_one_and_restore_puts_its_bytes_back(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    good = last_good.good_copy(wh)
    assert last_good.begin(wh) is False  # nothing to put back on a first night
    assert last_good.unaudited_marker(wh).exists()
    assert not good.exists()  # ...and nothing to keep: a first run copies nothing
    wh.write_bytes(b"night 1")
    last_good.mark_published(wh)
    assert not last_good.unaudited_marker(wh).exists()
    assert not good.exists()

    assert last_good.begin(wh) is False  # night 1 was published: nothing to put back
    assert good.read_bytes() == b"night 1"  # kept before night 2 writes
    assert good.stat().st_mode & 0o777 == 0o600
    wh.write_bytes(b"night 2, failed its audit")
    (tmp_path / "warehouse.duckdb.wal").write_bytes(b"log of night 2")
    assert last_good.restore(wh) is True
    assert wh.read_bytes() == b"night 1"
    assert not (tmp_path / "warehouse.duckdb.wal").exists()  # it belonged to night 2
    assert not last_good.unaudited_marker(wh).exists()
    assert last_good.restore(wh) is False  # idempotent

    # night 3 keeps night 1 again (restore moved the copy into place)
    assert last_good.begin(wh) is False
    assert good.read_bytes() == b"night 1"
    wh.write_bytes(b"night 3")
    last_good.mark_published(wh)
    assert last_good.begin(wh) is False
    assert good.read_bytes() == b"night 3"


def test_a_night_begun_over_a_write_ahead_log_checkpoints_it_unless_its_night_is_undone(
    tmp_path,
):
    """A log left after a published night (a killed reader) holds writes of the night to keep:
    it is checkpointed before the copy. A log of an unpublished night is dropped instead."""
    wh = tmp_path / "warehouse.duckdb"
    wal = tmp_path / "warehouse.duckdb.wal"
    wh.write_bytes(b"night 1")
    wal.write_bytes(b"writes of night 1")
    checkpoints = []

    def checkpoint():
        checkpoints.append(wal.read_bytes())
        wh.write_bytes(b"night 1, checkpointed")
        wal.unlink()

    with pytest.raises(RuntimeError, match="is not empty"):
        last_good.begin(wh)  # without a way to checkpoint, no copy that lacks the log
    assert not last_good.unaudited_marker(wh).exists()
    assert last_good.begin(wh, checkpoint=checkpoint) is False
    assert checkpoints == [b"writes of night 1"]
    assert last_good.good_copy(wh).read_bytes() == b"night 1, checkpointed"

    wh.write_bytes(b"night 2, never published")
    wal.write_bytes(b"writes of night 2")
    assert last_good.begin(wh, checkpoint=checkpoint) is True
    assert checkpoints == [b"writes of night 1"]  # night 2's log was dropped, not applied
    assert wh.read_bytes() == b"night 1, checkpointed"


@pytest.mark.parametrize("in_kernel", [True, False])
def test_a_kept_copy_holds_every_byte(tmp_path, monkeypatch, in_kernel):
    """9 MiB of varied bytes, copied in the kernel or, where copy_file_range fails (an old
    kernel, another filesystem), through a buffer after a partial attempt."""
    wh = tmp_path / "warehouse.duckdb"
    data = hashlib.shake_256(b"warehouse").digest(9 << 20)
    wh.write_bytes(data)
    if not in_kernel:
        real = last_good.os.copy_file_range
        calls = []

        def fails_on_the_second_call(src, dst, count, *args):
            calls.append(count)
            if len(calls) == 2:
                raise OSError(95, "Operation not supported")
            return real(src, dst, min(count, 1 << 20), *args)

        monkeypatch.setattr(last_good.os, "copy_file_range", fails_on_the_second_call)
    last_good.keep(wh)
    assert last_good.good_copy(wh).read_bytes() == data
    assert oct(last_good.good_copy(wh).stat().st_mode & 0o777) == "0o600"
    if not in_kernel:
        assert len(calls) == 2


def test_a_night_never_published_is_removed_and_half_copies_are_swept(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    last_good.begin(wh)
    wh.write_bytes(b"a first night that failed")
    stale = [tmp_path / "warehouse.duckdb.copying", tmp_path / "warehouse.last-good.duckdb.copying"]
    for path in stale:
        path.write_bytes(b"killed halfway")
    assert last_good.begin(wh) is True
    assert not wh.exists()
    assert not any(p.exists() for p in stale)
    assert last_good.unaudited_marker(wh).exists()  # the new night is marked in turn


def test_a_copy_is_refused_while_the_write_ahead_log_holds_writes(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    wh.write_bytes(b"night")
    (tmp_path / "warehouse.duckdb.wal").write_bytes(b"not checkpointed")
    with pytest.raises(RuntimeError, match=re.escape("warehouse.duckdb.wal is not empty")):
        last_good.keep(wh)
    assert not last_good.good_copy(wh).exists()


def _published_night(tmp_path: Path, data: bytes) -> Path:
    wh = tmp_path / "warehouse.duckdb"
    last_good.begin(wh)
    wh.write_bytes(data)
    last_good.mark_published(wh)
    return wh


def test_a_night_begun_early_is_taken_over_by_the_next_begin_and_not_begun_again(tmp_path):
    """``ltv run`` keeps the last good night on a thread as it starts; the raw load's begin()
    takes that night over. Begun again, it would find the mark the early begin left and put
    the copy back (True, and the bytes written since gone); the bytes below are written after
    the early copy, where nothing writes in a run, only to tell the two apart."""
    wh = _published_night(tmp_path, b"night 1")
    early = last_good.begin_early(wh)
    assert early is not None and early.result(timeout=10) is False
    assert last_good.good_copy(wh).read_bytes() == b"night 1"
    assert last_good.unaudited_marker(wh).exists()
    wh.write_bytes(b"night 1, then night 2's raw load")
    assert last_good.begin(wh) is False
    assert wh.read_bytes() == b"night 1, then night 2's raw load"
    assert last_good.good_copy(wh).read_bytes() == b"night 1"
    # taken over once: the next night begins on its own and keeps what is there then
    last_good.mark_published(wh)
    assert last_good.begin(wh) is False
    assert last_good.good_copy(wh).read_bytes() == b"night 1, then night 2's raw load"


def test_a_night_begun_early_puts_an_unpublished_night_back_and_says_so(tmp_path):
    wh = _published_night(tmp_path, b"night 1")
    last_good.begin(wh)
    wh.write_bytes(b"night 2, never published")
    assert last_good.begin_early(wh) is not None
    assert last_good.begin(wh) is True  # the raw load warns: the last night was not published
    assert wh.read_bytes() == b"night 1"
    assert last_good.good_copy(wh).read_bytes() == b"night 1"
    assert last_good.unaudited_marker(wh).exists()


def test_an_early_begin_that_failed_fails_the_begin_and_leaves_the_next_one_free(tmp_path):
    wh = _published_night(tmp_path, b"night 1")
    blocker = last_good.good_copy(wh)
    blocker.mkdir()
    (blocker / "in the way").write_bytes(b"")  # the copy cannot be renamed onto a folder
    assert last_good.begin_early(wh) is not None
    with pytest.raises(OSError):
        last_good.begin(wh)
    assert not last_good.unaudited_marker(wh).exists()
    (blocker / "in the way").unlink()
    blocker.rmdir()
    assert last_good.begin(wh) is False  # not the early failure again: a night of its own
    assert last_good.good_copy(wh).read_bytes() == b"night 1"
    assert not (tmp_path / "warehouse.last-good.duckdb.copying").exists()  # swept


def test_a_run_that_fails_before_its_raw_load_is_undone_after_its_early_begin(tmp_path):
    """``ltv run`` puts the last good night back when its run fails, also when the run never
    reached the raw load: restore() waits for the early begin, then undoes it."""
    wh = _published_night(tmp_path, b"night 1")
    assert last_good.begin_early(wh) is not None
    assert last_good.restore(wh) is True
    assert wh.read_bytes() == b"night 1"
    assert not last_good.unaudited_marker(wh).exists()
    assert not last_good.good_copy(wh).exists()  # renamed into place, as after any restore
    wh.write_bytes(b"night 1, checked")
    assert last_good.begin(wh) is False  # the next night begins anew
    assert last_good.good_copy(wh).read_bytes() == b"night 1, checked"


def _begin_early_held_in_its_copy(wh: Path, monkeypatch) -> threading.Event:
    """Begin the night at ``wh`` early, its thread held inside the copy until the returned
    event is set."""
    copying, release = threading.Event(), threading.Event()
    real = last_good.copy_bytes

    def held(src, dst):
        copying.set()
        assert release.wait(10)
        return real(src, dst)

    monkeypatch.setattr(last_good, "copy_bytes", held)
    assert last_good.begin_early(wh) is not None
    assert copying.wait(10)
    return release


def test_publishing_waits_for_an_early_begin_so_its_mark_never_outlives_the_publish(
    tmp_path, monkeypatch
):
    """Held inside its copy, the early begin would mark the night after a publish that did
    not wait for it: a published night left marked, put back by the next night."""
    wh = _published_night(tmp_path, b"night 1")
    release = _begin_early_held_in_its_copy(wh, monkeypatch)
    publishing = threading.Thread(target=last_good.mark_published, args=(wh,))
    publishing.start()
    publishing.join(0.3)
    assert publishing.is_alive()  # waiting for the copy
    release.set()
    publishing.join(10)
    assert not publishing.is_alive()
    assert not last_good.unaudited_marker(wh).exists()
    assert last_good.good_copy(wh).read_bytes() == b"night 1"


def test_a_run_waits_for_the_early_copy_before_dagster_writes_and_leaves_it_to_the_raw_load(
    tmp_path, monkeypatch
):
    """``runs.run_all`` calls wait_early() before Dagster's storage is opened: its fsyncs
    would wait for the copy's writeback (bench/results/early_copy_ab.md)."""
    wh = _published_night(tmp_path, b"night 1")
    release = _begin_early_held_in_its_copy(wh, monkeypatch)
    waiting = threading.Thread(target=last_good.wait_early, args=(wh,))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive()  # the copy is not written yet
    release.set()
    waiting.join(10)
    assert not waiting.is_alive()
    assert last_good.good_copy(wh).read_bytes() == b"night 1"
    assert last_good.unaudited_marker(wh).exists()
    wh.write_bytes(b"night 2's raw load")
    assert last_good.begin(wh) is False  # taken over, not begun again (which would restore)
    assert wh.read_bytes() == b"night 2's raw load"
    last_good.wait_early(wh)  # nothing begun early any more: no wait


def test_no_night_is_begun_early_over_a_log_of_a_published_night(tmp_path):
    """Applying such a log needs the warehouse opened: begin() does it in the raw load."""
    wh = _published_night(tmp_path, b"night 1")
    wal = tmp_path / "warehouse.duckdb.wal"
    wal.write_bytes(b"writes of night 1")
    assert last_good.begin_early(wh) is None
    assert not last_good.unaudited_marker(wh).exists()

    def checkpoint():
        wh.write_bytes(b"night 1, checkpointed")
        wal.unlink()

    assert last_good.begin(wh, checkpoint=checkpoint) is False
    assert last_good.good_copy(wh).read_bytes() == b"night 1, checkpointed"


# ---------------------------------------------------------------------------------------------
# the pipeline


def fingerprints(path: Path, schemas: tuple[str, ...]) -> dict[str, str]:
    """Table -> sha256 of its rows in a fixed order, for every table and view of ``schemas``
    (the clean orders are a view of the row store)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select schema_name || '.' || table_name from (select schema_name, table_name "
            "from duckdb_tables() union all select schema_name, view_name from duckdb_views() "
            "where not internal) where list_contains(?, schema_name) order by 1",
            [list(schemas)],
        ).fetchall()
        return {
            table: hashlib.sha256(
                "\n".join(
                    repr(row)
                    for row in con.execute(f"select * from {table} order by all").fetchall()
                ).encode()
            ).hexdigest()
            for (table,) in tables
        }


def published_files(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


#: What the raw load writes: the data tables and the quarantine (the registry holds load times).
RAW_TABLES = tuple(f"raw.{t}" for t in (*ingest.LOAD_ORDER, ingest.QUARANTINE_TABLE))


def raw_and_marts(path: Path) -> dict[str, str]:
    prints = fingerprints(path, ("raw", "marts"))
    return {t: h for t, h in prints.items() if t.startswith("marts.") or t in RAW_TABLES}


def test_a_failed_audit_leaves_raw_marts_and_snapshot_at_the_last_good_night(tmp_path, monkeypatch):
    root = tmp_path
    raw = root / "raw"
    generate_shop(raw, customers=600, seed=31)
    monkeypatch.setenv("LTV_DATA_DIR", str(root))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
    monkeypatch.setenv("LTV_EARLIEST_DATE", "1900-01-01")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # an ephemeral instance, not the repo's
    wh = root / "warehouse.duckdb"

    assert runs.run_all(), "the first night failed"
    assert not last_good.good_copy(wh).exists()  # a first run copies nothing
    night_1 = raw_and_marts(wh)
    snapshot_1 = published_files(root / "published")
    assert any(t.startswith("marts.") for t in night_1) and set(RAW_TABLES) <= set(night_1)

    # night 2: good late orders, and a customer and an order from 1900, which pass the raw
    # load (LTV_EARLIEST_DATE) and fail the dbt test on the month sequences
    customers = raw / "customers.csv"
    original_customers = customers.read_bytes()
    late = (raw / "orders.csv").read_text().splitlines()[1:51]
    late_orders = [
        ",".join([str(9_000_000 + i), *line.split(",")[1:]]) for i, line in enumerate(late)
    ]
    header = (raw / "orders.csv").read_text().splitlines()[0]
    (raw / "orders").mkdir()
    (raw / "orders" / "late.csv").write_text("\n".join([header, *late_orders]) + "\n")
    with customers.open("a") as handle:
        handle.write("9001,old@x.com,1900-01-01,email,US\n")
    (raw / "orders" / "1900.csv").write_text(
        header + "\n900001,9001,1900-01-02T10:00:00Z,completed,10.00,5.00,USD\n"
    )

    assert not runs.run_all(), "a 1,518-month history was published"
    assert raw_and_marts(wh) == night_1
    assert published_files(root / "published") == snapshot_1
    assert not last_good.unaudited_marker(wh).exists()

    # the same night from the UI or the schedule: no `ltv run` to put it back at once...
    failed = run_pipeline()
    assert not failed.success
    assert "int_reporting_window_history_fits_month_sequences" in failure_messages(failed)
    assert raw_and_marts(wh) != night_1
    assert last_good.unaudited_marker(wh).exists()

    # ...so the next night starts from the last good one; with the 1900 rows gone, it equals a
    # fresh load of the same files, raw layer and marts alike
    customers.write_bytes(original_customers)
    (raw / "orders" / "1900.csv").unlink()
    night_3 = run_pipeline()
    assert night_3.success, failure_messages(night_3)
    assert materialization_metadata(night_3, "raw/orders")["restored_last_good_night"] is True
    incremental = raw_and_marts(wh)

    fresh_root = root / "fresh"
    fresh_root.mkdir()
    monkeypatch.setenv("LTV_DATA_DIR", str(fresh_root))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(fresh_root / "warehouse.duckdb"))
    (fresh_root / "raw").symlink_to(raw)
    fresh = run_pipeline()
    assert fresh.success, failure_messages(fresh)
    assert incremental == raw_and_marts(fresh_root / "warehouse.duckdb")
