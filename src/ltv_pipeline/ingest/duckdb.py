"""Load raw shop files into DuckDB schema ``raw``, quarantining every row that breaks a rule.

Every input row ends in exactly one place: the clean rows (typed) or ``raw.quarantine`` with
its source file, line and a reason code. The typed rows are kept in a row store,
``raw._rows_<table>``, and ``raw.<table>`` is a view of it less the quarantine. Rules are data
(:data:`TABLES`): a reason code and a SQL predicate over the row's raw text, checked in order
so a row gets the first reason that applies. After the row rules come duplicate keys (an
identical copy is quarantined as ``exact_duplicate``, the first stays; copies that differ are
all quarantined as ``conflicting_duplicate``, since nobody can tell which is right) and
references (``unknown_customer_id``).

A file with a missing or unexpected column is refused before anything is written, naming the
file and the column; any error rolls the whole load back, so the tables of the last good load
stay as they were.

Line numbers are physical lines of a CSV file (the header is line 1; a record whose quoted
value holds a line break is numbered by its first line) and row numbers (from 1) of a Parquet
file. A record with the wrong number of fields is quarantined whole as ``malformed_line``;
a file with CR-only line endings is refused, naming the line.

A shop's own export is read through an input mapping (:func:`read_input_mapping`): its column
names, status values and date format per table. Dates parse in ISO (also 20250131), or a
configured day-first, month-first, epoch-seconds or strftime layout (:func:`parse_date`). A
load that would quarantine more than a set share of a table fails at once
(:func:`check_quarantine_share`): that is a changed export, not bad rows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import duckdb
import pyarrow as pa

from ltv_pipeline import settings
from ltv_pipeline.ingest.files import (
    Malformed,
    csv_batches,
    ignored_files,
    input_files,
    is_parquet,
)
from ltv_pipeline.ingest.rules import (
    DUCKDB,
    KEY_REASONS,
    LOAD_ORDER,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    InputMapping,
    LoadReport,
    RawInputError,
    RawTable,
    TableLoad,
    check_has_rows,
    check_quarantine_share,
    load_parameters,
    native_typed,
    raw_tables,
    typed_query,
    use_utc,
)

#: Which files the last load read (size, modification time), per table.
FILES_TABLE = "_files"
#: What the loads since the staging key tests last passed may have changed, per table:
#: ``every_key`` (a load re-decided every key: a first load, a full refresh, new rules), else
#: the keys they re-decided, in :data:`SCOPE_KEYS_TABLE` (tables keyed by one column). Those
#: tests (dbt macro ``loaded_keys``) check these keys alone: every other key passed them
#: before. dbt's on-run-end hook empties a table's scope once all its tests passed together.
SCOPE_TABLE = "_load_scope"
SCOPE_KEYS_TABLE = "_load_scope_keys"
#: Bumped when the stored row state changes shape, so old warehouses are reloaded.
STATE_VERSION = 3

_q, _t = DUCKDB.q, DUCKDB.t


def _rows_table(table: RawTable) -> str:
    return f"{RAW_SCHEMA}._rows_{table.name}"


ALL_KEYS = -1


def _note_scope(
    con: duckdb.DuckDBPyConnection, table: RawTable, *, every_key: bool, affected: bool
) -> None:
    """Add what this load may have changed in ``table`` to :data:`SCOPE_TABLE`: every key, the
    keys of temp table ``_affected`` (``affected``), or nothing.

    Added to, not replaced: the scope holds every key re-decided since the tests that read it
    last passed together (dbt's on-run-end hook ``clear_tested_load_scope`` empties it then),
    so a night whose tests did not run or failed leaves its keys for the next test. A table
    without a row yet (a warehouse loaded before scopes were kept) starts from nothing.
    """
    if len(table.key) != 1:
        return  # marketing spend (date and channel): a small table its tests read whole
    scope, keys = f"{RAW_SCHEMA}.{SCOPE_TABLE}", f"{RAW_SCHEMA}.{SCOPE_KEYS_TABLE}"
    (before,) = con.execute(
        f"select bool_or(every_key) from {scope} where source_table = ?", [table.name]
    ).fetchone()
    every_key = every_key or bool(before)
    con.execute(f"delete from {scope} where source_table = ?", [table.name])
    con.execute(f"insert into {scope} values (?, ?)", [table.name, every_key])
    if every_key:
        con.execute(f"delete from {keys} where source_table = ?", [table.name])
    elif affected:
        con.execute(
            f"insert into {keys} select ?, * from (select {_keys_of(table)} from _affected "
            f"except select key_value from {keys} where source_table = ?)",
            [table.name, table.name],
        )


def _stored_columns(table: RawTable) -> str:
    """What the row store keeps of a row: its place, typed values and row rule verdict (null
    once the load is done: a held row leaves the store). Not the typed query's content hash:
    the duplicate verdicts hash the typed values of the few keys held twice again
    (:func:`_content_hash`), and without a stored hash column the 10M-order raw layer's file
    is 162 MB instead of 286 MB (random 64-bit values do not compress)."""
    return ", ".join(["source_file", "source_line", *(_t(n) for n in table.typed), "row_reason"])


def _content_hash(table: RawTable) -> str:
    """SQL: the hash of a stored row's typed values, the typed query's ``content_hash``."""
    return DUCKDB.row_hash(", ".join(_t(name) for name in table.typed))


def _quarantined_lines(table: RawTable) -> str:
    """SQL: the (source_file, source_line) of the table's quarantined rows."""
    return (
        f"select source_file, source_line from {RAW_SCHEMA}.{QUARANTINE_TABLE} "
        f"where source_table = '{table.name}'"
    )


def _clean_view_sql(table: RawTable) -> str:
    """The clean rows, read from the row store: every stored row but those quarantined (the
    store keeps the rows held for their key or reference, whose verdict a later file may
    change; rows that broke a row rule have left it).

    A view, not a second copy: writing the 10M orders again into a clean table took 1.3 s of
    the 9 s load and a quarter of the raw layer's file, while reading them through the view
    costs 0.01-0.08 s more (none held, 20k held).
    """
    return (
        f"select {_clean_columns(table)} from {_rows_table(table)} as r "
        f"anti join ({_quarantined_lines(table)}) as q using (source_file, source_line)"
    )


def _empty_source(table: RawTable) -> str:
    text = ", ".join(f"null::varchar as {_q(c)}" for c in table.columns)
    return f"select null::varchar as source_file, null::bigint as source_line, {text} where false"


def _used_params(table: RawTable, params: dict) -> dict:
    return {k: v for k, v in params.items() if any(f"${k}" in r.predicate for r in table.rules)}


def _clean_columns(table: RawTable) -> str:
    """The clean relation's columns, from the row store's typed ones."""
    return ", ".join(f"{_t(name)} as {_q(name)}" for name in table.typed)


def _relation_kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """``TABLE``, ``VIEW`` or None: what ``raw.<name>`` is in the warehouse."""
    found = con.execute(
        "select 'TABLE' from duckdb_tables() where database_name = current_database() "
        "and schema_name = $s and table_name = $n union all "
        "select 'VIEW' from duckdb_views() where database_name = current_database() "
        "and schema_name = $s and view_name = $n",
        {"s": RAW_SCHEMA, "n": name},
    ).fetchall()
    return found[0][0] if found else None


def _create_state(con: duckdb.DuckDBPyConnection, table: RawTable, params: dict) -> None:
    """(Re)create the table's row store, empty, typed by the rules, and its clean view
    (:func:`_clean_view_sql`), in place of whatever held the clean rows before."""
    clean = f"{RAW_SCHEMA}.{_q(table.name)}"
    kind = _relation_kind(con, table.name)
    if kind is not None:
        con.execute(f"drop {kind.lower()} {clean}")
    con.execute(f"drop table if exists {_rows_table(table)}")
    con.execute(
        f"create table {_rows_table(table)} as select {_stored_columns(table)} "
        f"from ({typed_query(table, _empty_source(table))})",
        _used_params(table, params) or None,
    )
    con.execute(f"create view {clean} as {_clean_view_sql(table)}")
    con.execute(f"delete from {RAW_SCHEMA}.{QUARANTINE_TABLE} where source_table = ?", [table.name])
    con.execute(f"delete from {RAW_SCHEMA}.{FILES_TABLE} where source_table = ?", [table.name])


def _source(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    files: Sequence[Path],
    raw_dir: Path,
    malformed: list[Malformed],
    *,
    typed: bool = True,
) -> tuple[str, dict, dict[str, str]]:
    """SQL (and its parameters) giving the raw text of ``files``, one row per record, and
    SQL typing some columns from their native values instead (see below).

    Parquet files are scanned by DuckDB in one pass, as text, so that one set of rules serves
    both formats; CSV files are streamed through pyarrow (which reports malformed lines) into
    a temp table. When every file is Parquet, a column Parquet types (an integer id, a
    timestamp, money as a double) also comes as ``n_<column>``, its native value, and is
    typed from that (:func:`native_typed`: the same value the text rule gives, without
    printing and parsing it); not with ``typed=False``, for the raw text alone. Call
    :func:`_drop_source` when done.
    """
    if not files:
        return _empty_source(table), {}, {}
    parts, params, native = [], {}, {}
    parquet = [p for p in files if is_parquet(p)]
    if typed and parquet and len(parquet) == len(files):
        types = dict(
            con.execute(
                "select column_name, column_type from (describe select * from "
                "read_parquet($paths, union_by_name = true))",
                {"paths": [str(p) for p in parquet]},
            ).fetchall()
        )
        for ours, kind in table.kinds.items():
            src = table.source_columns.get(ours)
            if src is None or src not in types:
                continue
            sql = native_typed(kind, _q(f"n_{ours}"), types[src], table.typed[ours])
            if sql is not None:
                native[ours] = sql
    if parquet:
        con.execute("create or replace temp table _paths (filename varchar, source_file varchar)")
        con.executemany(
            "insert into _paths values (?, ?)",
            [[str(p), p.relative_to(raw_dir).as_posix()] for p in parquet],
        )
        # a natively typed column comes as its value only: typed_query prints it where a rule
        # reads its text
        casts = ", ".join(
            [
                f"null::varchar as {_q(ours)}"
                if src is None
                else f"cast({_q(src)} as varchar) as {_q(ours)}"
                for ours, src in table.source_columns.items()
                if ours not in native
            ]
            + [f"{_q(table.source_columns[ours])} as {_q(f'n_{ours}')}" for ours in native]
        )
        parts.append(
            f"select p.source_file, f.file_row_number + 1 as source_line, {casts} "
            "from read_parquet($paths, filename = true, file_row_number = true, "
            "union_by_name = true) as f join _paths as p using (filename)"
        )
        params["paths"] = [str(p) for p in parquet]
    csv_files = [p for p in files if not is_parquet(p)]
    if csv_files:
        text_columns = ", ".join(f"{_q(c)} varchar" for c in table.columns)
        con.execute(
            "create or replace temp table _csv_text (source_file varchar, source_line bigint, "
            f"{text_columns})"
        )
        for path in csv_files:
            source_file = path.relative_to(raw_dir).as_posix()
            try:
                for batch in csv_batches(path, table, source_file, malformed):
                    con.register("_batch", batch)
                    con.execute("insert into _csv_text select * from _batch")
                    con.unregister("_batch")
            except (pa.ArrowInvalid, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
                raise RawInputError(f"{path}: cannot be read as CSV ({exc})") from exc
        parts.append("select * from _csv_text")
    return " union all ".join(parts), params, native


def _drop_source(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("drop table if exists _paths")
    con.execute("drop table if exists _csv_text")


def _stage(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    files: Sequence[Path],
    raw_dir: Path,
    params: dict,
) -> int:
    """Type and check the rows of ``files`` into the row store; returns the rows read.

    Rows that break a row rule are put in temp table ``_held`` with their reason; the others
    stay in the row store, where duplicate and reference verdicts are made over all files. No
    raw text is kept (at 100M orders it would not fit in memory): :func:`_quarantine_held`
    reads it back for the held rows only. Every row is written to the store once and the few
    held ones deleted, rather than written to a temp table and copied (2 s of a 10M-order
    load).
    """
    malformed: list[Malformed] = []
    source, source_params, native = _source(con, table, files, raw_dir, malformed)
    store = _rows_table(table)
    (rows,) = con.execute(
        f"insert into {store} select {_stored_columns(table)} "
        f"from ({typed_query(table, source, native)})",
        {**_used_params(table, params), **source_params} or None,
    ).fetchone()
    _drop_source(con)
    con.execute(
        f"insert into _held select source_file, source_line, row_reason from {store} "
        "where row_reason is not null"
    )
    con.execute(f"delete from {store} where row_reason is not null")
    if malformed:
        con.executemany(
            f"insert into {RAW_SCHEMA}.{QUARANTINE_TABLE} values (?, ?, ?, 'malformed_line', ?)",
            [[table.name, m.source_file, m.source_line, m.text] for m in malformed],
        )
    return int(rows) + len(malformed)


def _quarantine_held(con: duckdb.DuckDBPyConnection, table: RawTable, raw_dir: Path) -> None:
    """Quarantine the rows in ``_held`` with their raw text, read again from their files."""
    files = [
        raw_dir / f
        for (f,) in con.execute("select distinct source_file from _held order by 1").fetchall()
    ]
    if not files:
        return
    source, source_params, _ = _source(con, table, files, raw_dir, [], typed=False)
    con.execute(
        f"insert into {RAW_SCHEMA}.{QUARANTINE_TABLE} select $table, h.source_file, "
        f"h.source_line, h.reason, {_record(table)} from _held as h "
        f"join ({source}) as t using (source_file, source_line)",
        {"table": table.name, **source_params},
    )
    _drop_source(con)


def _record(table: RawTable) -> str:
    """The row's raw text as a JSON object, as kept in quarantine."""
    fields = ", ".join(f"{_q(c)} := {_q(c)}" for c in table.columns)
    return f"to_json(struct_pack({fields}))::varchar"


def _keys_of(table: RawTable) -> str:
    """The typed key columns of the row store."""
    return ", ".join(_t(k) for k in table.key)


def _key_match(table: RawTable, left: str, right: str, *, left_typed: bool = True) -> str:
    return " and ".join(
        f"{left}.{_t(k) if left_typed else _q(k)} = {right}.{_t(k)}" for k in table.key
    )


def _classify_keys(con: duckdb.DuckDBPyConnection, table: RawTable, *, every_key: bool) -> None:
    """Decide duplicate and reference verdicts again for every key or the keys in ``_affected``,
    into temp table ``_held`` (the held rows; :func:`_quarantine_held` quarantines them, which
    takes them out of the clean view).

    A key's rows can sit in any file, so its verdict is recomputed over all of them: the
    first copy (by file, line) of identical rows stays, differing copies are all held, and
    a row whose reference is missing (or, with ``not_before``, dated after it) is held.
    """
    rows = _rows_table(table)
    quarantine = f"{RAW_SCHEMA}.{QUARANTINE_TABLE}"
    keys = _keys_of(table)
    in_scope = "" if every_key else f"semi join _affected as a on {_key_match(table, 'r', 'a')}"
    reasons = [*KEY_REASONS, *(table.reference.reasons if table.reference else ())]
    if every_key:
        con.execute(
            f"delete from {quarantine} where source_table = ? and list_contains(?, reason)",
            [table.name, reasons],
        )
    else:
        con.execute(
            f"delete from {quarantine} as q using (select r.source_file, r.source_line "
            f"from {rows} as r {in_scope}) as x where q.source_table = ? and "
            "q.source_file = x.source_file and q.source_line = x.source_line",
            [table.name],
        )
    reference_join, reference_case = "", ""
    if table.reference is not None:
        ref = table.reference
        reference_join = (
            f"left join {RAW_SCHEMA}.{_q(ref.table)} as ref "
            f"on r.{_t(ref.column)} = ref.{_q(ref.target_column)}"
        )
        reference_case = ref.verdicts(DUCKDB, "r", "ref")
    # Only keys held more than once need the per-key comparison (the generated 10M shop has
    # none): a count per key finds them, and only their rows are compared. The verdicts are
    # written for the held rows alone, and the clean rows are the row store less those. No
    # copy of every row is materialized on the way: `scoped` is read twice, and DuckDB would
    # otherwise materialize it (at 10M orders these verdicts took 5.7 s that way, 1.1 s so).
    con.execute(
        f"""
        insert into _held
        with scoped as not materialized (select * from {rows} as r {in_scope}),
        repeated_keys as (select {keys} from scoped group by all having count(*) > 1),
        repeated as (
            select {keys}, min({_content_hash(table)}) as min_hash,
                max({_content_hash(table)}) as max_hash,
                min((source_file, source_line)) as first_copy
            from scoped as r semi join repeated_keys as k on {_key_match(table, "r", "k")}
            group by all
        ),
        verdicts as (
            select r.source_file, r.source_line,
                case
                    when k.min_hash <> k.max_hash then 'conflicting_duplicate'
                    when (r.source_file, r.source_line) <> k.first_copy then 'exact_duplicate'
                    {reference_case}
                end as reason
            from scoped as r
            left join repeated as k on {_key_match(table, "r", "k")}
            {reference_join}
        )
        select * from verdicts where reason is not null
        """
    )


def _keep_before(con: duckdb.DuckDBPyConnection, table: RawTable, *, staged: bool) -> None:
    """Add to temp table ``_before`` the clean rows, as they were before this load, of the keys
    it may change, so that :func:`_changed_keys` can tell which changed.

    Called twice. Before the rows of re-read and removed files leave the store (``staged``
    false): the clean rows of the keys those files held (``_old_keys``). After the new rows
    are staged and before any verdict is decided again (``staged``): for the other keys in
    ``_affected``, their rows in the files not re-read, less the quarantined ones; those rows
    and their verdicts are still the last load's, and the key had no row in a re-read file.
    """
    clean = f"{RAW_SCHEMA}.{_q(table.name)}"
    if not staged:
        con.execute(
            f"create temp table _before as select * from {clean} as c semi join _old_keys as o "
            f"on {_key_match(table, 'c', 'o', left_typed=False)}"
        )
        return
    con.execute(
        f"insert into _before select {_clean_columns(table)} from {_rows_table(table)} as r "
        f"semi join _affected as a on {_key_match(table, 'r', 'a')} "
        f"anti join _old_keys as o on {_key_match(table, 'r', 'o')} "
        f"anti join ({_quarantined_lines(table)}) as q using (source_file, source_line) "
        "where r.source_file not in (select source_file from _gone)"
    )


def _changed_keys(con: duckdb.DuckDBPyConnection, table: RawTable) -> int:
    """How many keys of ``_affected`` entered or left the clean rows or changed there, left in
    temp table ``_changed_<table>`` for the tables that reference this one: a customer whose
    signup date moved re-decides its orders' ``ordered_before_signup`` as a customer who
    appeared decides ``unknown_customer_id``. Read once the held rows are quarantined."""
    clean = f"{RAW_SCHEMA}.{_q(table.name)}"
    in_scope = f"semi join _affected as a on {_key_match(table, 'c', 'a', left_typed=False)}"
    key_columns = ", ".join(_q(k) for k in table.key)
    con.execute(
        f"create or replace temp table _changed_{table.name} as select distinct {key_columns} "
        f"from ((select * from _before except select * from {clean} as c {in_scope}) "
        f"union all (select * from {clean} as c {in_scope} except select * from _before))"
    )
    con.execute("drop table _before")
    (n,) = con.execute(f"select count(*) from _changed_{table.name}").fetchone()
    return int(n)


def _fingerprint(table: RawTable, params: dict) -> str:
    """Changes whenever a rule, a type, the currency, the earliest date or the input mapping
    (which columns are read, how dates and statuses are read) changes: then every file is
    re-read."""
    spec = {
        "version": STATE_VERSION,
        "columns": table.columns,
        "sources": table.source_columns,
        "ignore_other_columns": table.ignore_other_columns,
        "typed": table.typed,
        "key": table.key,
        "rules": [(r.reason, r.predicate) for r in table.row_rules],
        "reference": None if table.reference is None else asdict(table.reference),
        "currency": params["currency"],
        "earliest_date": params["earliest_date"].isoformat(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _time_reasons(table: RawTable) -> list[str]:
    """Reasons that depend on the load time: such rows are checked again on every load."""
    return [r.reason for r in table.rules if "$load_" in r.predicate]


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (n,) = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = ? and table_name = ?",
        [RAW_SCHEMA, name],
    ).fetchone()
    return n > 0


def _plan(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    current: dict[str, tuple[int, int]],
    params: dict,
    full_refresh: bool,
) -> tuple[bool, list[str], list[str]]:
    """(fresh, files to read, files gone) for one table, from the file registry. Clean rows
    kept in a table, as an older version did, start the table afresh (into the view)."""
    fingerprint = _fingerprint(table, params)
    known = {
        f: (size, mtime, fp, loaded_at)
        for f, size, mtime, fp, loaded_at in con.execute(
            f"select source_file, size_bytes, modified_ns, fingerprint, load_time "
            f"from {RAW_SCHEMA}.{FILES_TABLE} where source_table = ?",
            [table.name],
        ).fetchall()
    }
    time_reasons = _time_reasons(table)
    fresh = (
        full_refresh
        or not known
        or not _table_exists(con, f"_rows_{table.name}")
        or _relation_kind(con, table.name) != "VIEW"
        or any(v[2] != fingerprint for v in known.values())
        # "future" rows of a later load would not be future now: start again
        or (bool(time_reasons) and any(v[3] > params["load_time"] for v in known.values()))
    )
    if fresh:
        return True, sorted(current), []
    read = {f for f, state in current.items() if known.get(f, (None, None))[:2] != state}
    if time_reasons:
        held = con.execute(
            f"select distinct source_file from {RAW_SCHEMA}.{QUARANTINE_TABLE} "
            "where source_table = ? and list_contains(?, reason)",
            [table.name, time_reasons],
        ).fetchall()
        read |= {f for (f,) in held if f in current}
    return False, sorted(read), sorted(set(known) - set(current))


def _check_share(
    con: duckdb.DuckDBPyConnection, table: str, max_share: float, files: Sequence[str]
) -> None:
    """:func:`check_quarantine_share` and :func:`check_has_rows` on the tables as this load
    left them."""
    quarantine = f"{RAW_SCHEMA}.{QUARANTINE_TABLE}"
    (loaded,) = con.execute(f"select count(*) from {RAW_SCHEMA}.{_q(table)}").fetchone()
    reasons = dict(
        con.execute(
            f"select reason, count(*) from {quarantine} where source_table = ? group by all",
            [table],
        ).fetchall()
    )

    def examples(wanted: list[str]) -> dict[str, tuple[str, int, str]]:
        rows = con.execute(
            f"select reason, arg_min((source_file, source_line, record), "
            f"(source_file, source_line)) from {quarantine} "
            "where source_table = ? and list_contains(?, reason) group by all",
            [table, wanted],
        ).fetchall()
        return {reason: (ex[0], int(ex[1]), ex[2]) for reason, ex in rows}

    check_quarantine_share(table, int(loaded), reasons, max_share, examples)
    check_has_rows(table, int(loaded), sum(reasons.values()), files)


def load_raw(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    *,
    currency: str = "USD",
    load_time: dt.datetime | None = None,
    log: Callable[[str], None] | None = None,
    full_refresh: bool = False,
    mapping: InputMapping | None = None,
    max_quarantine_share: float = settings.DEFAULT_MAX_QUARANTINE_SHARE,
    earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
) -> LoadReport:
    """Bring the ``raw`` tables up to date with the files in ``raw_dir``, all or nothing.

    Only new files, changed files (size or modification time) and files holding rows that
    were "in the future" at the last load are read; rows of removed files are taken out.
    Duplicate and reference verdicts are then recomputed for every key those rows touch,
    wherever its other copies are, so the result equals a load of all files from scratch
    (tested). Daily files (``orders/2026-06-30.parquet``, ...) make a night's load read one
    day. ``full_refresh`` re-reads everything; so does a change of the rules or currency.

    Parameters
    ----------
    con
        An open read-write connection to the warehouse.
    raw_dir
        Folder holding the raw files (see :func:`find_files`).
    currency
        The shop's currency; orders in any other are quarantined (no FX conversion here).
    load_time
        "Now" for the future-date rules, in UTC; defaults to the wall clock.
    log
        Receives a progress line per step, for long loads.
    full_refresh
        Forget what earlier loads read and load every file again.
    mapping
        The shop's column names, status values and date formats
        (:func:`read_input_mapping`); by default ours and ISO. A changed mapping re-reads
        every file.
    max_quarantine_share
        The load fails when more than this share of a table's rows is quarantined
        (:func:`check_quarantine_share`); 1 never fails.
    earliest_date
        Rows dated before it are quarantined as ``too_early_<column>``
        (``LTV_EARLIEST_DATE``); a change re-reads every file.

    Returns
    -------
    LoadReport
        Per table: rows in the current files, loaded and quarantined (with counts per
        reason), and which files this load read.

    Raises
    ------
    RawInputError
        A file is missing, empty, not a CSV/Parquet file or has a wrong header, or too large
        a share of a table's rows would be quarantined. Nothing was written.
    """
    say = log or (lambda _msg: None)
    params = load_parameters(currency, load_time, earliest_date)
    load_time = params["load_time"]
    tables = raw_tables(DUCKDB, mapping)
    use_utc(con)
    files = input_files(raw_dir, tables)

    report = LoadReport(
        load_time=load_time,
        tables={
            name: TableLoad(name, [p.relative_to(raw_dir).as_posix() for p in files[name]])
            for name in LOAD_ORDER
        },
    )
    report.ignored = ignored_files(raw_dir)
    if report.ignored:
        say(f"ignored {len(report.ignored)} file(s) no table reads: {', '.join(report.ignored)}")
    referenced = {t.reference.table for t in tables.values() if t.reference is not None}
    # No statement of the load, and no reader of the clean tables, relies on the order of rows
    # (dbt runs with the same setting, profiles.yml): letting DuckDB reorder took a 10M-order
    # load from 28 s to 21 s, and not sorting the clean tables by file and line saved 1 s more
    # (many more at 100M, where the sort spills). The setting is the database instance's
    # (every connection to it sees it): the one found is restored after.
    (keep_order,) = con.execute("select current_setting('preserve_insertion_order')").fetchone()
    con.execute("set preserve_insertion_order = false")
    con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute(
            f"create table if not exists {RAW_SCHEMA}.{QUARANTINE_TABLE} (source_table varchar, "
            "source_file varchar, source_line bigint, reason varchar, record varchar)"
        )
        con.execute(
            f"create table if not exists {RAW_SCHEMA}.{FILES_TABLE} (source_table varchar, "
            "source_file varchar, size_bytes bigint, modified_ns bigint, fingerprint varchar, "
            "load_time timestamp)"
        )
        con.execute(
            f"create table if not exists {RAW_SCHEMA}.{SCOPE_TABLE} "
            "(source_table varchar, every_key boolean)"
        )
        con.execute(
            f"create table if not exists {RAW_SCHEMA}.{SCOPE_KEYS_TABLE} "
            "(source_table varchar, key_value bigint)"
        )
        changed: dict[str, int] = {}
        for name in LOAD_ORDER:
            table, entry = tables[name], report.tables[name]
            by_name = {p.relative_to(raw_dir).as_posix(): p for p in files[name]}
            current = {f: (p.stat().st_size, p.stat().st_mtime_ns) for f, p in by_name.items()}
            fresh, read, gone = _plan(con, table, current, params, full_refresh)
            ref = table.reference
            ref_changed = 0 if ref is None else changed.get(ref.table, 0)
            entry.files_read = read
            if fresh:
                _create_state(con, table, params)
            if not (read or gone or ref_changed):
                say(f"{name}: no new or changed files")
                changed[name] = 0
                _note_scope(con, table, every_key=False, affected=False)
                _check_share(con, name, max_quarantine_share, entry.files)
                continue
            say(f"{name}: reading {len(read)} of {len(current)} file(s)")
            every_key = fresh or ref_changed == ALL_KEYS
            rows = _rows_table(table)
            con.execute("create or replace temp table _gone (source_file varchar)")
            if read or gone:
                con.executemany("insert into _gone values (?)", [[f] for f in (*read, *gone)])
            scope = []  # queries giving the keys whose verdicts may change
            track = name in referenced and not every_key
            if not every_key:
                con.execute(
                    f"create temp table _old_keys as select distinct {_keys_of(table)} "
                    f"from {rows} semi join _gone using (source_file)"
                )
                scope.append("select * from _old_keys")
            if track:
                _keep_before(con, table, staged=False)
            con.execute(f"delete from {rows} where source_file in (select * from _gone)")
            con.execute(
                f"delete from {RAW_SCHEMA}.{QUARANTINE_TABLE} where source_table = ? "
                "and source_file in (select * from _gone)",
                [name],
            )
            con.execute(
                "create or replace temp table _held "
                "(source_file varchar, source_line bigint, reason varchar)"
            )
            entry.rows_read = _stage(con, table, [by_name[f] for f in read], raw_dir, params)
            say(f"{name}: checking keys")
            if not every_key:
                scope.append(
                    f"select {_keys_of(table)} from {rows} semi join _gone using (source_file)"
                )
                if ref_changed:
                    scope.append(
                        f"select {_keys_of(table)} from {rows} as r "
                        f"semi join _changed_{ref.table} as c "
                        f"on r.{_t(ref.column)} = c.{_q(ref.target_column)}"
                    )
                con.execute(
                    "create temp table _affected as select distinct * from ("
                    + " union all ".join(scope)
                    + ")"
                )
            if track:
                _keep_before(con, table, staged=True)
            _classify_keys(con, table, every_key=every_key)
            _quarantine_held(con, table, raw_dir)
            changed[name] = ALL_KEYS if every_key else _changed_keys(con, table) if track else 0
            _note_scope(con, table, every_key=every_key, affected=not every_key)
            for temp in ("_affected", "_old_keys", "_gone", "_held"):
                con.execute(f"drop table if exists {temp}")
            _check_share(con, name, max_quarantine_share, entry.files)
            con.execute(f"delete from {RAW_SCHEMA}.{FILES_TABLE} where source_table = ?", [name])
            con.executemany(
                f"insert into {RAW_SCHEMA}.{FILES_TABLE} values (?, ?, ?, ?, ?, ?)",
                [
                    [name, f, size, mtime, _fingerprint(table, params), load_time]
                    for f, (size, mtime) in current.items()
                ],
            )
        for name in referenced:
            con.execute(f"drop table if exists _changed_{name}")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.execute(f"set preserve_insertion_order = {bool(keep_order)}")

    for name in LOAD_ORDER:
        report.tables[name].rows_loaded = con.execute(
            f"select count(*) from {RAW_SCHEMA}.{_q(name)}"
        ).fetchone()[0]
    for source_table, reason, rows in con.execute(
        f"select source_table, reason, count(*) from {RAW_SCHEMA}.{QUARANTINE_TABLE} "
        "group by all order by all"
    ).fetchall():
        entry = report.tables[source_table]
        entry.reasons[reason] = int(rows)
        entry.rows_quarantined += int(rows)
    for entry in report.tables.values():
        entry.rows_in = entry.rows_loaded + entry.rows_quarantined
    say(f"loaded {report.rows_loaded:,} rows, quarantined {report.rows_quarantined:,}")
    return report
