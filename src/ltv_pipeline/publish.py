"""Publish the marts as a read-only snapshot for BI: one DuckDB file and one Parquet per mart.

BI tools must never open the working warehouse: DuckDB admits one writing process, and a
reader in another process blocks the writer too. So every night the marts are copied into a
new snapshot that BI reads instead.

The snapshot's files are swapped as one unit. Each publish writes a complete version folder
under a temporary name (``versions/.<id>.tmp/``: ``marts.duckdb``, ``parquet/<mart>.parquet``,
``manifest.json``), fsyncs it, renames it to ``versions/<id>/`` and then replaces one symlink,
``current -> versions/<id>``, with ``os.replace`` (an atomic rename on one filesystem). The
paths BI tools open, ``marts.duckdb``, ``parquet/`` and ``manifest.json``, are fixed symlinks
into ``current``: the one rename switches all of them at once, so a process killed at any
point leaves the old version or the new one, never a DuckDB file of one run beside the Parquet
files or manifest of another. A reader that has a file open keeps reading it (the inode lives
until it closes, even once its version is swept); the next open sees the new version. To read
several files of one version, resolve ``current`` once (:func:`snapshot_dir`).

What a killed publish leaves (a temporary folder or symlink, a half-removed old version) is
removed by the next publish, which also keeps only the newest :data:`KEEP_VERSIONS` versions
(never the current one). Publishes take an exclusive lock on ``.publish.lock``, so the sweep
never removes another publish's temporary folder.

The DuckDB file's ``_manifest`` table says which run wrote it and how many rows each mart has;
``manifest.json`` lists each file's row count and SHA-256 so a consumer can check that a set of
files belongs together. The snapshot is written in DuckDB's v1.2 storage format, which DuckDB
1.2+ and 2.x open alike: many BI drivers still bundle DuckDB 1.x and cannot read the 2.x format.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

#: Storage format of the published DuckDB file (readable by DuckDB >= 1.2).
STORAGE_VERSION = "v1.2.0"
#: Rows per Parquet row group: DuckDB's default. DuckDB writes row groups in parallel, and the
#: 4.2M-row customers mart of 10M orders took 1.66 s at 262,144 rows a group, 1.36 s at this
#: (2% larger file).
BATCH_ROWS = 122_880
#: The name the snapshot file is attached under while a version is written.
SNAPSHOT_ALIAS = "ltv_snapshot"
#: Complete versions kept, the current one included. The previous one stays on disk for a
#: night, so a reader that resolved a path just before a swap still finds its file.
KEEP_VERSIONS = 2
#: The one pointer a publish swaps: a symlink to ``versions/<id>``.
CURRENT = "current"
VERSIONS = "versions"
LOCK = ".publish.lock"
#: The fixed paths BI tools open, each a symlink ``<name> -> current/<name>`` that never changes.
LINKS = ("marts.duckdb", "parquet", "manifest.json")


@dataclass(frozen=True)
class PublishedTable:
    name: str
    rows: int
    columns: list[str]
    parquet: str
    parquet_sha256: str


@dataclass(frozen=True)
class Manifest:
    run_id: str
    as_of_date: str
    published_at: str
    duckdb_file: str
    duckdb_sha256: str
    tables: list[PublishedTable] = field(default_factory=list)
    #: The folder under ``versions/`` (empty in manifests written before versions existed).
    version: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def row_counts(self) -> dict[str, int]:
        return {t.name: t.rows for t in self.tables}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    """Flush a file or a folder (its entries: a rename in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quote(identifier: str) -> str:
    """A quoted SQL identifier: table names come from the catalog, but never trust text."""
    return '"' + identifier.replace('"', '""') + '"'


def mart_tables(con: duckdb.DuckDBPyConnection, schema: str, exclude: set[str]) -> list[str]:
    """Tables of ``schema`` to publish, by name."""
    rows = con.execute(
        "select table_name from duckdb_tables() where schema_name = ? order by table_name",
        [schema],
    ).fetchall()
    return [name for (name,) in rows if name not in exclude]


def snapshot_dir(out_dir: Path) -> Path:
    """The folder of the version ``current`` points to, read once.

    Every file read through the returned folder belongs to one version, whatever a publish does
    meanwhile (until the version is swept, :data:`KEEP_VERSIONS` publishes later). A folder
    without ``current`` (a version folder itself, or a snapshot published before versions
    existed) is returned as it is.
    """
    out_dir = Path(out_dir)
    current = out_dir / CURRENT
    if current.is_symlink():
        return out_dir / VERSIONS / Path(os.readlink(current)).name
    return out_dir


def versions(out_dir: Path) -> list[str]:
    """Names of the complete versions under ``out_dir/versions``, oldest first.

    Names start with the UTC time of the publish, so they sort by age; temporary folders
    (names starting with a dot) are not versions.
    """
    folder = Path(out_dir) / VERSIONS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())


def temporaries(out_dir: Path) -> list[Path]:
    """What killed or failed publishes left: temporary folders, symlinks and files.

    Everything temporary is named with a leading dot and a ``.tmp`` or ``.deleting`` suffix, in
    ``out_dir``, ``out_dir/versions`` or (published before versions existed) ``out_dir/parquet``;
    a publish of that time killed while DuckDB wrote also left ``.marts.duckdb.<run>.tmp.wal``.
    """
    out_dir = Path(out_dir)
    folders = [out_dir, out_dir / VERSIONS]
    if (out_dir / "parquet").is_dir() and not (out_dir / "parquet").is_symlink():
        folders.append(out_dir / "parquet")
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(
                (".tmp", ".tmp.wal", ".deleting")
            ):
                found.append(entry)
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def sweep(out_dir: Path, *, keep: int = KEEP_VERSIONS) -> list[str]:
    """Remove temporaries and every complete version but the newest ``keep``; never ``current``.

    Call it only under the publish lock (:func:`publish` does, before and after it swaps), or it
    could remove the temporary folder of a publish under way. An old version is first renamed
    to a temporary name, so a kill in the middle of its removal never leaves a torn folder that
    looks like a version. Returns the names removed, for the log.
    """
    out_dir = Path(out_dir)
    current = snapshot_dir(out_dir).name if (out_dir / CURRENT).is_symlink() else None
    complete = versions(out_dir)
    for name in complete[: max(len(complete) - keep, 0)]:
        if name != current:
            os.rename(out_dir / VERSIONS / name, out_dir / VERSIONS / f".{name}.deleting")
    removed = []
    for path in temporaries(out_dir):
        _remove(path)
        removed.append(str(path.relative_to(out_dir)))
    return removed


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) until the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the fd closes, or the process dies
        yield
    finally:
        os.close(fd)


def _point(link: Path, target: str, tag: str) -> None:
    """Make ``link`` a symlink to ``target`` in one rename (a temporary symlink replaces it)."""
    tmp = link.with_name(f".{link.name}.{tag}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link_fixed_paths(out_dir: Path, tag: str) -> None:
    """Make each of :data:`LINKS` a symlink into ``current``; a no-op once they are.

    A snapshot published before versions existed has real files there: each file is replaced
    by its link in one rename, but a folder cannot be renamed over, so the old ``parquet/``
    folder is moved aside first and for an instant ``parquet`` does not exist. That happens once.
    """
    for name in LINKS:
        link, target = out_dir / name, f"{CURRENT}/{name}"
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.is_dir() and not link.is_symlink():
            os.rename(link, out_dir / f".{name}.legacy-{tag}.tmp")
        _point(link, target, tag)
    fsync(out_dir)


def publish(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    tables: list[str],
    out_dir: Path,
    *,
    run_id: str,
    as_of_date: date | str,
    keys: Mapping[str, Sequence[str]] | None = None,
    keep: int = KEEP_VERSIONS,
) -> Manifest:
    """Copy ``schema.<table>`` for each table into a new version of the snapshot; swap it in.

    Layout of ``out_dir``: ``versions/<id>/`` with ``marts.duckdb`` (the marts in its default
    schema, so a reader who opens it queries ``customers`` or ``marts.customers`` alike; plus a
    ``_manifest`` table), ``parquet/<table>.parquet`` and ``manifest.json``; ``current`` points
    to the newest; ``marts.duckdb``, ``parquet`` and ``manifest.json`` are symlinks into
    ``current``. Rows are written sorted by the table's unique key in ``keys``, else by every
    column, so the same marts give the same Parquet bytes (a key must be unique: ties would
    leave the order to DuckDB's threads). Temporaries of killed publishes and versions beyond
    the newest ``keep`` are swept first; a failure removes this publish's temporary folder and
    leaves the published version as it was.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    out_dir = Path(out_dir)
    (out_dir / VERSIONS).mkdir(parents=True, exist_ok=True)
    tag = "".join(c for c in run_id if c.isalnum() or c == "-")[:64] or "run"
    with _exclusive(out_dir / LOCK):
        sweep(out_dir, keep=keep)
        version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + f"-{tag}"
        staging = out_dir / VERSIONS / f".{version}.tmp"
        try:
            manifest = _write_version(
                con,
                schema,
                tables,
                staging,
                run_id=run_id,
                as_of_date=as_of_date,
                version=version,
                keys=keys or {},
            )
            os.rename(staging, out_dir / VERSIONS / version)  # fails rather than merge folders
            fsync(out_dir / VERSIONS)
            _point(out_dir / CURRENT, f"{VERSIONS}/{version}", tag)  # the one swap
            fsync(out_dir)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        _link_fixed_paths(out_dir, tag)
        sweep(out_dir, keep=keep)
        return manifest


def _write_version(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    tables: list[str],
    folder: Path,
    *,
    run_id: str,
    as_of_date: date | str,
    version: str,
    keys: Mapping[str, Sequence[str]],
) -> Manifest:
    """Write one complete version into the new folder ``folder`` and fsync every file of it.

    The snapshot file is attached to ``con`` and filled and exported by DuckDB itself, on all
    its threads: no mart passes through Python (1.6 s instead of 2.8 s for the marts of 1M
    orders, bench/results/publish.md).
    """
    parquet_dir = folder / "parquet"
    parquet_dir.mkdir(parents=True)
    db_path = folder / "marts.duckdb"
    published: list[PublishedTable] = []
    con.execute(
        f"attach {_literal(db_path)} as {SNAPSHOT_ALIAS} "
        f"(read_write, storage_version '{STORAGE_VERSION}')"
    )
    try:
        for table in tables:
            columns = [
                name
                for (name,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_catalog = current_database() and table_schema = ? "
                    "and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            copy = f"{SNAPSHOT_ALIAS}.main.{quote(table)}"
            # sorted, so the same marts give the same Parquet bytes; a scan of the copy keeps
            # that order (insertion order is preserved). By the key where there is one: sorting
            # the 4.2M customers of 10M orders by every column took 1.75 s, by the key 1.48 s
            order = ", ".join(quote(c) for c in keys[table]) if keys.get(table) else "all"
            con.execute(
                f"create table {copy} as select * from {quote(schema)}.{quote(table)} "
                f"order by {order}"
            )
            parquet = parquet_dir / f"{table}.parquet"
            (rows,) = con.execute(
                f"copy {copy} to {_literal(parquet)} "
                f"(format parquet, compression zstd, row_group_size {BATCH_ROWS})"
            ).fetchone()
            fsync(parquet)
            published.append(
                PublishedTable(
                    name=table,
                    rows=int(rows),
                    columns=columns,
                    parquet=f"parquet/{table}.parquet",
                    parquet_sha256=_sha256(parquet),
                )
            )
        con.execute(
            f"create table {SNAPSHOT_ALIAS}.main._manifest (run_id varchar, as_of_date date, "
            "published_at timestamp, table_name varchar, row_count bigint)"
        )
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        con.executemany(
            f"insert into {SNAPSHOT_ALIAS}.main._manifest values (?, ?, ?, ?, ?)",
            [[run_id, str(as_of_date), now, t.name, t.rows] for t in published],
        )
        con.execute(f"checkpoint {SNAPSHOT_ALIAS}")
    finally:
        con.execute(f"detach database if exists {SNAPSHOT_ALIAS}")
    fsync(db_path)
    manifest = Manifest(
        run_id=run_id,
        as_of_date=str(as_of_date),
        published_at=now.isoformat() + "Z",
        duckdb_file="marts.duckdb",
        duckdb_sha256=_sha256(db_path),
        tables=published,
        version=version,
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    fsync(folder / "manifest.json")
    fsync(parquet_dir)
    fsync(folder)
    return manifest


def _literal(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def read_manifest(out_dir: Path) -> Manifest | None:
    """The manifest of the current version, or None before the first publish."""
    path = snapshot_dir(out_dir) / "manifest.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    tables = [PublishedTable(**t) for t in data.pop("tables")]
    return Manifest(**data, tables=tables)


def verify(out_dir: Path, manifest: Manifest) -> list[str]:
    """Differences between the current version's files and ``manifest`` (empty when they agree).

    Also reports a fixed path (:data:`LINKS`) that no longer leads into ``current``, and a
    manifest of another version than the current one.
    """
    root = Path(out_dir)
    out_dir = snapshot_dir(root)
    problems = []
    if (root / CURRENT).is_symlink():
        if manifest.version and manifest.version != out_dir.name:
            problems.append(f"manifest is of version {manifest.version}, current is {out_dir.name}")
        for name in LINKS:
            link = root / name
            if not link.is_symlink() or os.readlink(link) != f"{CURRENT}/{name}":
                problems.append(f"{name}: not a symlink to {CURRENT}/{name}")
    if _sha256(out_dir / manifest.duckdb_file) != manifest.duckdb_sha256:
        problems.append(f"{manifest.duckdb_file}: checksum differs from the manifest")
    for table in manifest.tables:
        path = out_dir / table.parquet
        if not path.exists():
            problems.append(f"{table.parquet}: missing")
        elif _sha256(path) != table.parquet_sha256:
            problems.append(f"{table.parquet}: checksum differs from the manifest")
    with duckdb.connect(str(out_dir / manifest.duckdb_file), read_only=True) as snap:
        counts = dict(snap.execute("select table_name, row_count from _manifest").fetchall())
        ids = {r for (r,) in snap.execute("select distinct run_id from _manifest").fetchall()}
    if ids != {manifest.run_id}:
        problems.append(
            f"marts.duckdb was written by {sorted(ids)}, manifest.json by {manifest.run_id}"
        )
    if counts != manifest.row_counts():
        problems.append("marts.duckdb row counts differ from manifest.json")
    return problems
