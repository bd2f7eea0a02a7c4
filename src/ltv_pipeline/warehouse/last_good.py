"""The last good night of a DuckDB warehouse: kept when a night begins, put back when a
night is not published.

Write-Audit-Publish for a warehouse that is one file. A night writes the raw layer and the
marts in the working file, where no reader looks (BI reads only the published snapshot), and
audits them (dbt tests, blocking checks); the snapshot is published only if every audit passed.
Before the raw load writes, the working file, which holds the last published night, is copied
to ``<stem>.last-good.duckdb`` and marked ``<file>.unaudited``; publishing removes the mark. A
mark left behind (a failed audit, a failed step, a kill, a run that loaded raw but did not
publish) means the file holds a night nobody vouched for: ``ltv run`` puts the last good night
back at once when its run fails, and the next raw load does in any case (a run from the UI or
the schedule). Without a good copy (no night published yet) the working file is removed.

The copy is taken when a night begins rather than when one is published, so a first run (a
new warehouse) copies nothing: at 100M orders that is a 15 GB copy, about 33 s. Between nights
the good copy is one night older than the working file; it is only read when a mark is left,
and then it is exactly the night before the unpublished one.

``ltv run`` takes the copy on a thread as it starts (:func:`begin_early`), while it imports
Dagster and loads the definitions on one core and dbt is imported on the other, and waits for
it before Dagster writes its first record (:func:`wait_early`: fsyncs on the same filesystem
wait for the copy's writeback); the raw load, the first writer, then finds the night begun
(a 10M-order warehouse is 1 GB, a 100M one 10-13 GB). Only the process that began the night
early takes it over.

Putting back is always safe: the raw layer is a function of the files in the drop and its file
registry comes back with it, so the next load re-reads whatever changed since (tested: a night
equals a fresh load). DuckDB has no table snapshots and ext4 no reflinks, so keeping is a full
copy of the file, once per night.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO

from ltv_pipeline.publish import fsync

#: The suffix of the files a copy is written to before it is renamed into place.
COPYING_SUFFIX = ".copying"

#: Nights begun early in this process (:func:`begin_early`), by the warehouse's real path.
_early: dict[str, Future[bool]] = {}
_early_lock = threading.Lock()


def good_copy(path: Path) -> Path:
    """Where the last good night of the warehouse at ``path`` is kept."""
    return path.with_name(f"{path.stem}.last-good{path.suffix}")


def unaudited_marker(path: Path) -> Path:
    """The file whose presence says the warehouse holds a night not (yet) published."""
    return path.with_name(path.name + ".unaudited")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _copying(target: Path) -> Path:
    return target.with_name(target.name + COPYING_SUFFIX)


def copy_bytes(src: BinaryIO, dst: BinaryIO) -> int:
    """Copy the rest of ``src`` to ``dst`` (both open, unbuffered positions at the start); the
    bytes copied.

    In the kernel where it can (``copy_file_range``: the file's pages never pass through this
    process), else through a buffer: a 10M-order warehouse is 1.7 GB, copied every night.
    """
    size = os.fstat(src.fileno()).st_size
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - done)
            if n == 0:
                break
            done += n
    except OSError:  # e.g. a filesystem or kernel without it: start over, the plain way
        src.seek(0)
        dst.seek(0)
        dst.truncate()
        shutil.copyfileobj(src, dst, 16 << 20)
        dst.flush()
        done = dst.tell()
    return done


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` onto ``target`` (mode 0600) through a temporary file renamed last."""
    temporary = _copying(target)
    previous = os.umask(0o077)
    try:
        with source.open("rb", buffering=0) as src, temporary.open("wb", buffering=0) as dst:
            copy_bytes(src, dst)
            os.fsync(dst.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        os.umask(previous)
    temporary.chmod(0o600)
    os.replace(temporary, target)
    fsync(target.parent)


def sweep(path: Path) -> list[Path]:
    """Remove the half-written copies a killed run or a full disk left; returns them."""
    left = [p for p in (_copying(path), _copying(good_copy(path))) if p.exists()]
    for p in left:
        p.unlink()
    return left


def _taken_over(path: Path) -> Future[bool] | None:
    """The night this process began early at ``path``, waited for and no longer pending."""
    with _early_lock:
        future = _early.pop(os.path.realpath(path), None)
    if future is not None:
        future.exception()  # waits; the caller decides what a failure means
    return future


def begin_early(path: Path) -> Future[bool] | None:
    """Begin the night at ``path`` (:func:`begin`) on a thread now; this process's next
    :func:`begin` of ``path`` takes it over and returns its result (or raises its error).

    For a process that will run the night itself (``ltv run``) and does other work first:
    nothing may open the warehouse until :func:`begin`, :func:`restore` or
    :func:`mark_published` has taken the night over. Where the write-ahead log holds writes of
    a published night, applying it needs the warehouse opened: nothing is begun early then
    (None), and :func:`begin` does it all as before.
    """
    wal = _wal(path)
    if not unaudited_marker(path).exists() and wal.exists() and wal.stat().st_size:
        return None
    _taken_over(path)  # a night begun early before and never taken over: superseded
    future: Future[bool] = Future()

    def work() -> None:
        try:
            future.set_result(_begin(path, None))
        except BaseException as exc:  # handed to the caller of begin()
            future.set_exception(exc)

    with _early_lock:
        _early[os.path.realpath(path)] = future
    threading.Thread(target=work, name="ltv-last-good", daemon=True).start()
    return future


def wait_early(path: Path) -> None:
    """Wait for the night this process began early at ``path`` to be begun (its copy written
    and synced), leaving it for :func:`begin` to take over; no wait if none was begun early.

    Call it before writing anything that fsyncs on the same filesystem: such an fsync waits
    for the copy's writeback. While 10 GiB were copied, one-row SQLite commits took 15.4 s over
    25 s against 4.9 s without (``bench/results/copy_fsync.md``), and a 100M-order night whose
    Dagster storage was written during the copy spent 59 s starting up instead of 8 s.
    """
    with _early_lock:
        future = _early.get(os.path.realpath(path))
    if future is not None:
        future.exception()


def begin(path: Path, checkpoint: Callable[[], None] | None = None) -> bool:
    """Before a night writes the warehouse at ``path``: put the last good night back if the
    last writer left its mark (:func:`restore`), keep the warehouse as it is then as the last
    good night (:func:`keep`), and mark it unaudited. A night this process began early
    (:func:`begin_early`) is taken over instead: its result, or its error.

    Parameters
    ----------
    path
        The working warehouse, closed.
    checkpoint
        Applies a non-empty write-ahead log to the file (e.g. one a killed reader left after
        the last publish); without it such a log fails the copy.

    Returns
    -------
    bool
        Whether the last good night was put back.
    """
    early = _taken_over(path)
    if early is not None:
        return early.result()
    return _begin(path, checkpoint)


def _begin(path: Path, checkpoint: Callable[[], None] | None) -> bool:
    restored = _restore(path)
    if path.exists():
        wal = _wal(path)
        if checkpoint is not None and wal.exists() and wal.stat().st_size:
            checkpoint()
        keep(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    unaudited_marker(path).touch(mode=0o600)
    fsync(path.parent)
    return restored


def restore(path: Path) -> bool:
    """Put the last good night back if the warehouse is marked unaudited.

    The warehouse must be closed. Its write-ahead log goes first (applied to the good copy it
    would corrupt it), the marker last, so a kill halfway through restores again. The good copy
    is renamed into place, not copied: the next night copies it again when it begins.

    Returns
    -------
    bool
        Whether the warehouse was put back (or, without a good copy, removed).
    """
    _taken_over(path)  # a night begun early must have finished before it is undone
    return _restore(path)


def _restore(path: Path) -> bool:
    sweep(path)
    if not unaudited_marker(path).exists():
        return False
    _wal(path).unlink(missing_ok=True)
    good = good_copy(path)
    if good.exists():
        os.replace(good, path)
    else:
        path.unlink(missing_ok=True)
    unaudited_marker(path).unlink()
    fsync(path.parent)
    return True


def keep(path: Path) -> None:
    """Copy the warehouse at ``path`` to its good copy (:func:`good_copy`).

    Call it with the file closed and checkpointed (an empty write-ahead log), so that the file
    alone holds the night.

    Raises
    ------
    RuntimeError
        The write-ahead log is not empty: a copy would lack its writes.
    """
    wal = _wal(path)
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{wal} is not empty: not keeping a copy that would lack its writes")
    _copy(path, good_copy(path))


def mark_published(path: Path) -> None:
    """The night in the warehouse at ``path`` is published: remove its unaudited mark."""
    _taken_over(path)  # else a night begun early could mark it after this
    unaudited_marker(path).unlink(missing_ok=True)
    fsync(path.parent)
