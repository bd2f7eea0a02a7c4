"""Load raw shop files into DuckDB schema ``raw``, quarantining every row that breaks a rule.

Every input row ends in exactly one place: the clean table (typed) or ``raw.quarantine`` with
its source file, line and a reason code. Rules are data (:data:`TABLES`): a reason code and a
SQL predicate over the row's raw text, checked in order so a row gets the first reason that
applies. After the row rules come duplicate keys (an identical copy is quarantined as
``exact_duplicate``, the first stays; copies that differ are all quarantined as
``conflicting_duplicate``, since nobody can tell which is right) and references
(``unknown_customer_id``).

A file with a missing or unexpected column is refused before anything is written, naming the
file and the column; any error rolls the whole load back, so the tables of the last good load
stay as they were.

Line numbers are physical lines of a CSV file (the header is line 1) and row numbers (from 1)
of a Parquet file. CSV records must fit on one line; a line with the wrong number of fields is
quarantined whole as ``malformed_line``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

RAW_SCHEMA = "raw"
QUARANTINE_TABLE = "quarantine"
#: Which files the last load read (size, modification time), per table.
FILES_TABLE = "_files"
#: Bumped when the stored row state changes shape, so old warehouses are reloaded.
STATE_VERSION = 1
CSV_BLOCK_BYTES = 16 << 20


class RawInputError(ValueError):
    """A raw file that cannot be loaded at all (missing, wrong header, not a CSV)."""


@dataclass(frozen=True)
class Rule:
    """A row-level check: ``predicate`` is SQL that is true when the row is bad."""

    reason: str
    predicate: str


@dataclass(frozen=True)
class Reference:
    """Rows whose ``column`` is absent from ``table.target_column`` get ``reason``."""

    column: str
    table: str
    target_column: str
    reason: str


@dataclass(frozen=True)
class RawTable:
    """How one raw entity is read, checked and typed."""

    name: str
    columns: tuple[str, ...]
    typed: dict[str, str]
    key: tuple[str, ...]
    rules: tuple[Rule, ...]
    reference: Reference | None = None
    dialect: Dialect = field(default_factory=lambda: DUCKDB, compare=False)

    @property
    def row_rules(self) -> tuple[Rule, ...]:
        """The rules in precedence order, a blank line first."""
        empty = Rule("empty_line", " and ".join(self.dialect.blank(c) for c in self.columns))
        return (empty, *self.rules)


class Dialect:
    """How one engine spells what the rules use. The rules themselves are written once, in
    :func:`raw_tables`, and rendered for DuckDB (:data:`DUCKDB`) or Spark (:data:`SPARK`)."""

    name = "duckdb"
    quote_char = '"'
    param_prefix = "$"

    def q(self, column: str) -> str:
        """A quoted identifier."""
        return (
            self.quote_char
            + column.replace(self.quote_char, self.quote_char * 2)
            + (self.quote_char)
        )

    def param(self, name: str) -> str:
        """A named query parameter (the values are bound, never pasted into SQL)."""
        return self.param_prefix + name

    def t(self, column: str) -> str:
        """The typed value of ``column`` (see :attr:`RawTable.typed`), computed once per row."""
        return self.q("t_" + column)

    def blank(self, column: str) -> str:
        return f"nullif(trim({self.q(column)}), '') is null"

    def not_blank(self, column: str) -> str:
        return f"nullif(trim({self.q(column)}), '') is not null"

    def full_match(self, expr: str, pattern: str) -> str:
        return f"regexp_full_match({expr}, '{pattern}')"

    def utc_timestamp(self, expr: str) -> str:
        # Offsets are honoured and converted; a timestamp without one is taken as UTC.
        return f"timezone('UTC', try_cast({expr} as timestamptz))"

    def row_hash(self, columns: str) -> str:
        return f"hash({columns})"


class SparkDialect(Dialect):
    """Spark SQL (4.x, ANSI or not); the session time zone must be UTC."""

    name = "spark"
    quote_char = "`"
    param_prefix = ":"

    def full_match(self, expr: str, pattern: str) -> str:
        return f"({expr} rlike '^(?:{pattern})$')"

    def utc_timestamp(self, expr: str) -> str:
        # with the session time zone UTC, an offset is converted and none means UTC
        return f"try_cast({expr} as timestamp)"

    def row_hash(self, columns: str) -> str:
        return f"xxhash64({columns})"


DUCKDB = Dialect()
SPARK = SparkDialect()


def raw_tables(d: Dialect) -> dict[str, RawTable]:
    """How each raw table is typed and checked, rendered in dialect ``d``: the one definition of
    every rule. ``load_date``, ``load_time`` and ``currency`` are query parameters."""
    q, t, not_blank = d.q, d.t, d.not_blank

    def bigint(column: str) -> str:
        # digits only: DuckDB's cast alone would take "12.5" (as 13), "1e3" and "0x1F"
        text = f"trim({q(column)})"
        return f"case when {d.full_match(text, '[+-]?[0-9]+')} then try_cast({text} as bigint) end"

    def date(column: str) -> str:
        return f"try_cast(trim({q(column)}) as date)"

    def money(column: str) -> str:
        return f"try_cast(nullif(trim({q(column)}), '') as decimal(18, 2))"

    def required(column: str) -> Rule:
        return Rule(f"missing_{column}", d.blank(column))

    def id_rules(column: str) -> tuple[Rule, ...]:
        return (required(column), Rule(f"invalid_{column}", f"{t(column)} is null"))

    def money_rules(column: str, *, required_: bool) -> tuple[Rule, ...]:
        rules = (
            Rule(f"non_numeric_{column}", f"{not_blank(column)} and {t(column)} is null"),
            Rule(f"negative_{column}", f"{t(column)} < 0"),
        )
        return ((required(column),) if required_ else ()) + rules

    def clean(column: str, case: str) -> str:
        return f"{case}(trim({q(column)}))"

    return {
        "customers": RawTable(
            name="customers",
            columns=("customer_id", "email", "signup_date", "acquisition_channel", "country"),
            typed={
                "customer_id": bigint("customer_id"),
                "email": f"nullif(trim({q('email')}), '')",
                "signup_date": date("signup_date"),
                "acquisition_channel": clean("acquisition_channel", "lower"),
                "country": clean("country", "upper"),
            },
            key=("customer_id",),
            dialect=d,
            rules=(
                *id_rules("customer_id"),
                Rule(
                    "invalid_email",
                    f"{not_blank('email')} and trim({q('email')}) not like '%_@_%'",
                ),
                required("signup_date"),
                Rule("unparseable_signup_date", f"{t('signup_date')} is null"),
                Rule("future_signup_date", f"{t('signup_date')} > {d.param('load_date')}"),
                required("acquisition_channel"),
                required("country"),
                Rule(
                    "invalid_country",
                    f"not {d.full_match(clean('country', 'upper'), '[A-Z]{2}')}",
                ),
            ),
        ),
        "orders": RawTable(
            name="orders",
            columns=(
                "order_id",
                "customer_id",
                "ordered_at",
                "status",
                "amount",
                "cost",
                "currency",
            ),
            typed={
                "order_id": bigint("order_id"),
                "customer_id": bigint("customer_id"),
                "ordered_at": d.utc_timestamp(f"trim({q('ordered_at')})"),
                "status": clean("status", "lower"),
                "amount": money("amount"),
                "cost": money("cost"),
                "currency": clean("currency", "upper"),
            },
            key=("order_id",),
            rules=(
                *id_rules("order_id"),
                *id_rules("customer_id"),
                required("ordered_at"),
                Rule("unparseable_ordered_at", f"{t('ordered_at')} is null"),
                Rule("future_ordered_at", f"{t('ordered_at')} > {d.param('load_time')}"),
                Rule(
                    "unknown_status",
                    f"coalesce({clean('status', 'lower')}, '') "
                    "not in ('completed', 'refunded', 'cancelled')",
                ),
                *money_rules("amount", required_=True),
                *money_rules("cost", required_=False),
                Rule(
                    "unknown_currency",
                    f"coalesce({clean('currency', 'upper')}, '') <> {d.param('currency')}",
                ),
            ),
            reference=Reference("customer_id", "customers", "customer_id", "unknown_customer_id"),
            dialect=d,
        ),
        "marketing_spend": RawTable(
            name="marketing_spend",
            columns=("date", "channel", "spend"),
            typed={
                "date": date("date"),
                "channel": clean("channel", "lower"),
                "spend": money("spend"),
            },
            key=("date", "channel"),
            dialect=d,
            rules=(
                required("date"),
                Rule("unparseable_date", f"{t('date')} is null"),
                required("channel"),
                *money_rules("spend", required_=True),
            ),
        ),
    }


#: The rules as DuckDB runs them (the loader below).
TABLES: dict[str, RawTable] = raw_tables(DUCKDB)
_q, _t = DUCKDB.q, DUCKDB.t


#: Verdicts that depend on the other rows of the same key, in precedence order.
KEY_REASONS = ("conflicting_duplicate", "exact_duplicate")

#: Load order: a table's reference target is loaded before it.
LOAD_ORDER: tuple[str, ...] = ("customers", "orders", "marketing_spend")


def reason_codes() -> dict[str, list[str]]:
    """Every reason code the loader can give, per table, in precedence order."""
    codes = {}
    for name, table in TABLES.items():
        codes[name] = [rule.reason for rule in table.row_rules] + list(KEY_REASONS)
        if table.reference is not None:
            codes[name].append(table.reference.reason)
        codes[name].append("malformed_line")
    return codes


@dataclass
class TableLoad:
    """What one table's load did."""

    table: str
    files: list[str]
    rows_in: int = 0
    rows_loaded: int = 0
    files_read: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadReport:
    """What a whole load did, per table."""

    load_time: dt.datetime
    tables: dict[str, TableLoad]

    @property
    def rows_in(self) -> int:
        return sum(t.rows_in for t in self.tables.values())

    @property
    def rows_loaded(self) -> int:
        return sum(t.rows_loaded for t in self.tables.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables.values())


def find_files(raw_dir: Path, table: str) -> list[Path]:
    """Input files of ``table``: ``<table>.csv|parquet`` and ``<table>/*.csv|parquet``.

    Raises
    ------
    RawInputError
        When there is none, so an empty drop never replaces the last good load.
    """
    patterns = (f"{table}.csv", f"{table}.parquet", f"{table}/*.csv", f"{table}/*.parquet")
    files = sorted({p for pattern in patterns for p in raw_dir.glob(pattern) if p.is_file()})
    if not files:
        raise RawInputError(
            f"no input file for '{table}' in {raw_dir} "
            f"(expected {table}.csv, {table}.parquet or {table}/*.csv|*.parquet)"
        )
    return files


def read_header(path: Path) -> list[str]:
    """Column names of a raw file, from its first line (CSV) or its schema (Parquet)."""
    if path.suffix == ".parquet":
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise RawInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise RawInputError(f"{path}: not a UTF-8 CSV file ({exc.reason})") from exc
    except csv.Error as exc:
        raise RawInputError(f"{path}: not a CSV file ({exc})") from exc
    if not header or not any(name.strip() for name in header):
        raise RawInputError(f"{path}: the file is empty; expected a header line")
    return [name.strip() for name in header]


def check_header(path: Path, table: RawTable) -> None:
    """Refuse a file whose columns are not exactly the expected ones, naming the column."""
    header = read_header(path)
    duplicated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in table.columns if name not in header]
    unexpected = [name for name in header if name not in table.columns]
    expected = ", ".join(table.columns)
    if duplicated:
        raise RawInputError(f"{path}: column '{duplicated[0]}' appears more than once")
    if missing:
        raise RawInputError(f"{path}: missing column '{missing[0]}' (expected columns: {expected})")
    if unexpected:
        raise RawInputError(
            f"{path}: unexpected column '{unexpected[0]}' (expected columns: {expected})"
        )


def count_input_rows(path: Path) -> int:
    """Data rows in a raw file counted without parsing: lines after the header, or Parquet rows.

    This is deliberately independent of the loader, so comparing it with what was loaded
    and quarantined is a real reconciliation.
    """
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1  # a last line without a newline
    return max(lines - 1, 0)


@dataclass
class _Malformed:
    source_file: str
    source_line: int
    text: str


def _csv_batches(
    path: Path, table: RawTable, source_file: str, malformed: list[_Malformed]
) -> Iterator[pa.Table]:
    """Stream a CSV as text columns plus the physical line number of each record.

    pyarrow reports the line of every malformed record through ``invalid_row_handler``
    before it yields the block holding it, so the good records' lines are the block's line
    range minus those.
    """
    pending: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append(_Malformed(source_file, int(row.number), row.text))
        pending.append(int(row.number))
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in table.columns},
            include_columns=list(table.columns),
            strings_can_be_null=False,
        ),
    )
    next_line = 2
    for batch in reader:
        n = batch.num_rows
        skipped = np.array(sorted(line for line in pending if line >= next_line), dtype=np.int64)
        candidates = np.arange(next_line, next_line + n + len(skipped), dtype=np.int64)
        lines = candidates[~np.isin(candidates, skipped)][:n]
        if n:
            next_line = int(lines[-1]) + 1
        pending[:] = [line for line in pending if line >= next_line]
        yield pa.table(
            {
                "source_file": pa.array([source_file] * n, pa.string()),
                "source_line": pa.array(lines, pa.int64()),
                **{name: batch.column(name) for name in table.columns},
            }
        )


def _rows_table(table: RawTable) -> str:
    return f"{RAW_SCHEMA}._rows_{table.name}"


ALL_KEYS = -1


def typed_query(table: RawTable, source: str) -> str:
    """Type each row once, then give it the first row rule it breaks (``row_reason``); in the
    table's dialect, so both engines run this same query."""
    d = table.dialect
    raw_columns = ", ".join(d.q(c) for c in table.columns)
    typed = ", ".join(f"{expr} as {d.t(name)}" for name, expr in table.typed.items())
    cases = " ".join(f"when {rule.predicate} then '{rule.reason}'" for rule in table.row_rules)
    content = ", ".join(d.t(name) for name in table.typed)
    return (
        f"with src as ({source}), typed as (select source_file, source_line, {raw_columns}, "
        f"{typed} from src) select *, case {cases} end as row_reason, "
        f"{d.row_hash(content)} as content_hash from typed"
    )


def _stored_columns(table: RawTable) -> str:
    """What the row store keeps of a row: its place, typed values and content hash."""
    return ", ".join(["source_file", "source_line", *(_t(n) for n in table.typed), "content_hash"])


def _empty_source(table: RawTable) -> str:
    text = ", ".join(f"null::varchar as {_q(c)}" for c in table.columns)
    return f"select null::varchar as source_file, null::bigint as source_line, {text} where false"


def _used_params(table: RawTable, params: dict) -> dict:
    return {k: v for k, v in params.items() if any(f"${k}" in r.predicate for r in table.rules)}


def _create_state(con: duckdb.DuckDBPyConnection, table: RawTable, params: dict) -> None:
    """(Re)create the table's clean table and row store, empty, typed by the rules."""
    con.execute(f"drop table if exists {_rows_table(table)}")
    con.execute(f"drop table if exists {RAW_SCHEMA}.{_q(table.name)}")
    con.execute(
        f"create table {_rows_table(table)} as select {_stored_columns(table)} "
        f"from ({typed_query(table, _empty_source(table))})",
        _used_params(table, params) or None,
    )
    columns = ", ".join(f"{_t(name)} as {_q(name)}" for name in table.typed)
    con.execute(
        f"create table {RAW_SCHEMA}.{_q(table.name)} as select {columns} from {_rows_table(table)}"
    )
    con.execute(f"delete from {RAW_SCHEMA}.{QUARANTINE_TABLE} where source_table = ?", [table.name])
    con.execute(f"delete from {RAW_SCHEMA}.{FILES_TABLE} where source_table = ?", [table.name])


def _source(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    files: Sequence[Path],
    raw_dir: Path,
    malformed: list[_Malformed],
) -> tuple[str, dict]:
    """SQL (and its parameters) giving the raw text of ``files``, one row per record.

    Parquet files are scanned by DuckDB in one pass, as text, so that one set of rules serves
    both formats; CSV files are streamed through pyarrow (which reports malformed lines) into
    a temp table. Call :func:`_drop_source` when done.
    """
    if not files:
        return _empty_source(table), {}
    parts, params = [], {}
    parquet = [p for p in files if p.suffix == ".parquet"]
    if parquet:
        con.execute("create or replace temp table _paths (filename varchar, source_file varchar)")
        con.executemany(
            "insert into _paths values (?, ?)",
            [[str(p), p.relative_to(raw_dir).as_posix()] for p in parquet],
        )
        casts = ", ".join(f"cast({_q(c)} as varchar) as {_q(c)}" for c in table.columns)
        parts.append(
            f"select p.source_file, f.file_row_number + 1 as source_line, {casts} "
            "from read_parquet($paths, filename = true, file_row_number = true, "
            "union_by_name = true) as f join _paths as p using (filename)"
        )
        params["paths"] = [str(p) for p in parquet]
    csv_files = [p for p in files if p.suffix != ".parquet"]
    if csv_files:
        text_columns = ", ".join(f"{_q(c)} varchar" for c in table.columns)
        con.execute(
            "create or replace temp table _csv_text (source_file varchar, source_line bigint, "
            f"{text_columns})"
        )
        for path in csv_files:
            source_file = path.relative_to(raw_dir).as_posix()
            try:
                for batch in _csv_batches(path, table, source_file, malformed):
                    con.register("_batch", batch)
                    con.execute("insert into _csv_text select * from _batch")
                    con.unregister("_batch")
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise RawInputError(f"{path}: cannot be read as CSV ({exc})") from exc
        parts.append("select * from _csv_text")
    return " union all ".join(parts), params


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
    join the row store, where duplicate and reference verdicts are made over all files. No
    raw text is kept (at 100M orders it would not fit in memory): :func:`_quarantine_held`
    reads it back for the held rows only.
    """
    malformed: list[_Malformed] = []
    source, source_params = _source(con, table, files, raw_dir, malformed)
    con.execute(
        f"create or replace temp table _typed as select {_stored_columns(table)}, row_reason "
        f"from ({typed_query(table, source)})",
        {**_used_params(table, params), **source_params} or None,
    )
    _drop_source(con)
    con.execute(
        "insert into _held select source_file, source_line, row_reason from _typed "
        "where row_reason is not null"
    )
    con.execute(
        f"insert into {_rows_table(table)} select {_stored_columns(table)} from _typed "
        "where row_reason is null"
    )
    if malformed:
        con.executemany(
            f"insert into {RAW_SCHEMA}.{QUARANTINE_TABLE} values (?, ?, ?, 'malformed_line', ?)",
            [[table.name, m.source_file, m.source_line, m.text] for m in malformed],
        )
    (rows,) = con.execute("select count(*) from _typed").fetchone()
    con.execute("drop table _typed")
    return int(rows) + len(malformed)


def _quarantine_held(con: duckdb.DuckDBPyConnection, table: RawTable, raw_dir: Path) -> None:
    """Quarantine the rows in ``_held`` with their raw text, read again from their files."""
    files = [
        raw_dir / f
        for (f,) in con.execute("select distinct source_file from _held order by 1").fetchall()
    ]
    if not files:
        return
    source, source_params = _source(con, table, files, raw_dir, [])
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


def _classify_keys(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    *,
    every_key: bool,
    track: bool,
) -> int:
    """Decide duplicate and reference verdicts again for every key or the keys in ``_affected``.

    A key's rows can sit in any file, so its verdict is recomputed over all of them: the
    first copy (by file, line) of identical rows stays, differing copies are all held, and
    a row whose reference is missing is held. Returns how many keys entered or left the clean
    table (:data:`ALL_KEYS` for every key); with ``track``, those keys are left in temp table
    ``_changed_<table>`` for the tables that reference this one.
    """
    rows, clean = _rows_table(table), f"{RAW_SCHEMA}.{_q(table.name)}"
    quarantine = f"{RAW_SCHEMA}.{QUARANTINE_TABLE}"
    keys = _keys_of(table)
    key_columns = ", ".join(_q(k) for k in table.key)
    in_scope = "" if every_key else f"semi join _affected as a on {_key_match(table, 'r', 'a')}"
    clean_in_scope = f"semi join _affected as a on {_key_match(table, 'c', 'a', left_typed=False)}"
    reasons = [*KEY_REASONS] + ([table.reference.reason] if table.reference else [])
    if every_key:
        con.execute(f"delete from {clean}")
        con.execute(
            f"delete from {quarantine} where source_table = ? and list_contains(?, reason)",
            [table.name, reasons],
        )
    else:
        if track:
            con.execute(
                f"create temp table _before as select {key_columns} from {clean} as c "
                + clean_in_scope
            )
        con.execute(
            f"delete from {clean} as c using _affected as a where "
            + _key_match(table, "c", "a", left_typed=False)
        )
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
        reference_case = f"when ref.{_q(ref.target_column)} is null then '{ref.reason}'"
    con.execute(
        f"""
        create temp table _checked as
        with scoped as (select * from {rows} as r {in_scope}),
        per_key as (
            select {keys}, min(content_hash) as min_hash, max(content_hash) as max_hash,
                min((source_file, source_line)) as first_copy
            from scoped group by all
        )
        select r.*,
            case
                when k.min_hash <> k.max_hash then 'conflicting_duplicate'
                when (r.source_file, r.source_line) <> k.first_copy then 'exact_duplicate'
                {reference_case}
            end as reason
        from scoped as r
        join per_key as k on {_key_match(table, "r", "k")}
        {reference_join}
        """
    )
    columns = ", ".join(f"{_t(name)} as {_q(name)}" for name in table.typed)
    con.execute(
        f"insert into {clean} select {columns} from _checked where reason is null "
        "order by source_file, source_line"
    )
    con.execute(
        "insert into _held select source_file, source_line, reason from _checked "
        "where reason is not null"
    )
    con.execute("drop table _checked")
    if every_key:
        return ALL_KEYS
    if not track:
        return 0
    con.execute(
        f"create or replace temp table _changed_{table.name} as "
        f"(select {key_columns} from _before except select {key_columns} from {clean} as c "
        f"{clean_in_scope}) union (select {key_columns} from {clean} as c {clean_in_scope} "
        f"except select {key_columns} from _before)"
    )
    con.execute("drop table _before")
    (n,) = con.execute(f"select count(*) from _changed_{table.name}").fetchone()
    return int(n)


def _fingerprint(table: RawTable, params: dict) -> str:
    """Changes whenever a rule, a type or the currency changes: then every file is re-read."""
    spec = {
        "version": STATE_VERSION,
        "columns": table.columns,
        "typed": table.typed,
        "key": table.key,
        "rules": [(r.reason, r.predicate) for r in table.row_rules],
        "reference": None if table.reference is None else vars(table.reference),
        "currency": params["currency"],
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
    """(fresh, files to read, files gone) for one table, from the file registry."""
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
        or not _table_exists(con, table.name)
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


def load_parameters(currency: str, load_time: dt.datetime | None) -> dict:
    """The query parameters of a load: "now" in UTC (naive; default the wall clock), its date
    and the shop currency."""
    now = (load_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    return {"load_time": now, "load_date": now.date(), "currency": currency.strip().upper()}


def input_files(raw_dir: Path, tables: dict[str, RawTable]) -> dict[str, list[Path]]:
    """Every table's input files, every header checked before anything is read.

    Raises
    ------
    RawInputError
        A table without files, or a file with a wrong header.
    """
    files = {name: find_files(raw_dir, name) for name in LOAD_ORDER}
    for name in LOAD_ORDER:
        for path in files[name]:
            check_header(path, tables[name])
    return files


def load_raw(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    *,
    currency: str = "USD",
    load_time: dt.datetime | None = None,
    log: Callable[[str], None] | None = None,
    full_refresh: bool = False,
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

    Returns
    -------
    LoadReport
        Per table: rows in the current files, loaded and quarantined (with counts per
        reason), and which files this load read.

    Raises
    ------
    RawInputError
        A file is missing, empty, not a CSV/Parquet file or has a wrong header. Nothing was
        written.
    """
    say = log or (lambda _msg: None)
    params = load_parameters(currency, load_time)
    load_time = params["load_time"]
    files = input_files(raw_dir, TABLES)

    report = LoadReport(
        load_time=load_time,
        tables={
            name: TableLoad(name, [p.relative_to(raw_dir).as_posix() for p in files[name]])
            for name in LOAD_ORDER
        },
    )
    referenced = {t.reference.table for t in TABLES.values() if t.reference is not None}
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
        changed: dict[str, int] = {}
        for name in LOAD_ORDER:
            table, entry = TABLES[name], report.tables[name]
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
                continue
            say(f"{name}: reading {len(read)} of {len(current)} file(s)")
            every_key = fresh or ref_changed == ALL_KEYS
            rows = _rows_table(table)
            con.execute("create or replace temp table _gone (source_file varchar)")
            if read or gone:
                con.executemany("insert into _gone values (?)", [[f] for f in (*read, *gone)])
            scope = []  # queries giving the keys whose verdicts may change
            if not every_key:
                con.execute(
                    f"create temp table _old_keys as select distinct {_keys_of(table)} "
                    f"from {rows} semi join _gone using (source_file)"
                )
                scope.append("select * from _old_keys")
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
            changed[name] = _classify_keys(
                con, table, every_key=every_key, track=name in referenced
            )
            _quarantine_held(con, table, raw_dir)
            for temp in ("_affected", "_old_keys", "_gone", "_held"):
                con.execute(f"drop table if exists {temp}")
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
