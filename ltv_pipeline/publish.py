"""Publish the marts as a read-only snapshot for BI: one DuckDB file and one Parquet per mart.

BI tools must never open the working warehouse: DuckDB admits one writing process, and a
reader in another process blocks the writer too. So every night the marts are copied into
new files beside the published ones and swapped in with ``os.replace`` (an atomic rename on
one filesystem). A reader that has the old snapshot open keeps reading it (the old inode lives
until it closes); the next open sees the new one; nobody ever sees a half-written file, and
no reader can block the pipeline. The DuckDB snapshot is one file, so it is also consistent
across tables: its ``_manifest`` table says which run wrote it and how many rows each mart
has. The Parquet files are swapped one by one; ``manifest.json`` (written last) lists their
row counts and SHA-256 so a consumer can tell whether a set of files belongs together.

The snapshot is written in DuckDB's v1.2 storage format, which DuckDB 1.2+ and 2.x open alike:
many BI drivers still bundle DuckDB 1.x and cannot read files in the 2.x format.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

#: Storage format of the published DuckDB file (readable by DuckDB >= 1.2).
STORAGE_VERSION = "v1.2.0"
BATCH_ROWS = 262_144


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


def _fsync(path: Path) -> None:
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


def publish(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    tables: list[str],
    out_dir: Path,
    *,
    run_id: str,
    as_of_date: date | str,
) -> Manifest:
    """Copy ``schema.<table>`` for each table into ``out_dir``; swap each file in atomically.

    Layout: ``out_dir/marts.duckdb`` (the marts in its default schema, so a reader who opens
    it queries ``customers`` or ``marts.customers`` alike; plus a ``_manifest`` table),
    ``out_dir/parquet/<table>.parquet`` and ``out_dir/manifest.json``. Rows are written sorted
    by every column, so the same marts give the same Parquet bytes. Temporary files carry the
    run id and are removed on failure; a crash leaves at most such a file, never a torn one.
    """
    out_dir = Path(out_dir)
    parquet_dir = out_dir / "parquet"
    parquet_dir.mkdir(parents=True, exist_ok=True)
    tag = "".join(c for c in run_id if c.isalnum() or c == "-")[:64] or "run"
    db_final = out_dir / "marts.duckdb"
    db_tmp = out_dir / f".marts.duckdb.{tag}.tmp"
    written: list[Path] = [db_tmp]
    published: list[PublishedTable] = []
    staged: list[tuple[Path, Path]] = []
    try:
        db_tmp.unlink(missing_ok=True)
        with duckdb.connect(
            str(db_tmp), config={"storage_compatibility_version": STORAGE_VERSION}
        ) as snap:
            for table in tables:
                source = f"{quote(schema)}.{quote(table)}"
                columns = [
                    name
                    for (name,) in con.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema = ? and table_name = ? order by ordinal_position",
                        [schema, table],
                    ).fetchall()
                ]
                query = f"select * from {source} order by all"
                reader = con.sql(query).arrow()  # noqa: F841 - read by name below
                snap.execute(f"create table main.{quote(table)} as select * from reader")
                pq_tmp = parquet_dir / f".{table}.parquet.{tag}.tmp"
                written.append(pq_tmp)
                # from the snapshot's copy: already sorted (scans keep insertion order)
                rows = _write_parquet(
                    snap.sql(f"select * from main.{quote(table)}").arrow(), pq_tmp
                )
                staged.append((pq_tmp, parquet_dir / f"{table}.parquet"))
                published.append(
                    PublishedTable(
                        name=table,
                        rows=rows,
                        columns=columns,
                        parquet=f"parquet/{table}.parquet",
                        parquet_sha256=_sha256(pq_tmp),
                    )
                )
            snap.execute(
                "create table _manifest (run_id varchar, as_of_date date, published_at "
                "timestamp, table_name varchar, row_count bigint)"
            )
            now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
            snap.executemany(
                "insert into _manifest values (?, ?, ?, ?, ?)",
                [[run_id, str(as_of_date), now, t.name, t.rows] for t in published],
            )
            snap.execute("checkpoint")
        _fsync(db_tmp)
        manifest = Manifest(
            run_id=run_id,
            as_of_date=str(as_of_date),
            published_at=now.isoformat() + "Z",
            duckdb_file="marts.duckdb",
            duckdb_sha256=_sha256(db_tmp),
            tables=published,
        )
        manifest_tmp = out_dir / f".manifest.json.{tag}.tmp"
        written.append(manifest_tmp)
        manifest_tmp.write_text(manifest.to_json())
        _fsync(manifest_tmp)
        # everything is on disk: swap in, the manifest last
        os.replace(db_tmp, db_final)
        for tmp, final in staged:
            os.replace(tmp, final)
        os.replace(manifest_tmp, out_dir / "manifest.json")
        _fsync(out_dir)
        return manifest
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def _write_parquet(reader, path: Path) -> int:
    rows = 0
    writer = pq.ParquetWriter(path, reader.schema, compression="zstd")
    try:
        for batch in reader:
            writer.write_batch(batch, row_group_size=BATCH_ROWS)
            rows += batch.num_rows
    finally:
        writer.close()
    _fsync(path)
    return rows


def read_manifest(out_dir: Path) -> Manifest | None:
    """The published manifest, or None before the first publish."""
    path = Path(out_dir) / "manifest.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    tables = [PublishedTable(**t) for t in data.pop("tables")]
    return Manifest(**data, tables=tables)


def verify(out_dir: Path, manifest: Manifest) -> list[str]:
    """Differences between the published files and ``manifest`` (empty when they agree)."""
    out_dir = Path(out_dir)
    problems = []
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
