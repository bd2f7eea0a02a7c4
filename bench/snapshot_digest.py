"""A digest of a published snapshot and of the warehouse's marts, to compare two checkouts.

    python bench/snapshot_digest.py <data dir> [<other data dir>]

Prints, as JSON, the SHA-256 of every published Parquet file and of every table's rows (in a
fixed order) in the published DuckDB file and in the warehouse's ``marts`` schema; with two data
dirs, it compares them and exits 1 on any difference. The DuckDB files' own bytes are not
compared: they hold more than their rows (block layout, free lists) and differ between two runs
of the same code on the same input.

The layout change was checked this way: ``ltv run`` on the sample shop by the commit before it
and by the commit after it, each into its own data dir, then this script on both.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import duckdb


def _rows_sha(con: duckdb.DuckDBPyConnection, table: str) -> str:
    rows = con.execute(f"select * from {table} order by all").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def digest(data_dir: Path) -> dict[str, str]:
    """File or table -> SHA-256, for the snapshot under ``data_dir/published`` and the marts of
    ``data_dir/warehouse.duckdb``."""
    published = data_dir / "published"
    out = {
        f"parquet/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((published / "parquet").glob("*.parquet"))
    }
    with duckdb.connect(str(published / "marts.duckdb"), read_only=True) as con:
        tables = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main' "
            "and table_name <> '_manifest' order by 1"
        ).fetchall()
        out.update({f"snapshot/{t}": _rows_sha(con, t) for (t,) in tables})
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
        ).fetchall()
        out.update({f"warehouse/marts.{t}": _rows_sha(con, f"marts.{t}") for (t,) in tables})
    return out


def main(argv: list[str]) -> int:
    digests = [digest(Path(a).resolve()) for a in argv]
    if len(digests) == 1:
        print(json.dumps(digests[0], indent=2))
        return 0
    left, right = digests
    differing = sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))
    print(json.dumps({"compared": len(left), "differing": differing}, indent=2))
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
