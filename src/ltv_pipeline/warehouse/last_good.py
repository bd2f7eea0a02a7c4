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

Putting back is always safe: the raw layer is a function of the files in the drop and its file
registry comes back with it, so the next load re-reads whatever changed since (tested: a night
equals a fresh load). DuckDB has no table snapshots and ext4 no reflinks, so keeping is a full
copy of the file, once per night.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ltv_pipeline.publish import fsync

#: The suffix of the files a copy is written to before it is renamed into place.
COPYING_SUFFIX = ".copying"


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


def begin(path: Path, checkpoint: Callable[[], None] | None = None) -> bool:
    """Before a night writes the warehouse at ``path``: put the last good night back if the
    last writer left its mark (:func:`restore`), keep the warehouse as it is then as the last
    good night (:func:`keep`), and mark it unaudited.

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
    restored = restore(path)
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
    unaudited_marker(path).unlink(missing_ok=True)
    fsync(path.parent)
