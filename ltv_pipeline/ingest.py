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

    @property
    def row_rules(self) -> tuple[Rule, ...]:
        """The rules in precedence order, a blank line first."""
        empty = Rule("empty_line", " and ".join(_blank(c) for c in self.columns))
        return (empty, *self.rules)


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _blank(column: str) -> str:
    return f"nullif(trim({_q(column)}), '') is null"


def _not_blank(column: str) -> str:
    return f"nullif(trim({_q(column)}), '') is not null"


def _bigint(column: str) -> str:
    return f"try_cast(trim({_q(column)}) as bigint)"


def _date(column: str) -> str:
    return f"try_cast(trim({_q(column)}) as date)"


def _money(column: str) -> str:
    return f"try_cast(nullif(trim({_q(column)}), '') as decimal(18, 2))"


def _utc_timestamp(column: str) -> str:
    # Offsets are honoured and converted; a timestamp without one is taken as UTC.
    return f"timezone('UTC', try_cast(trim({_q(column)}) as timestamptz))"


def _required(column: str) -> Rule:
    return Rule(f"missing_{column}", _blank(column))


def _id_rules(column: str) -> tuple[Rule, ...]:
    return (_required(column), Rule(f"invalid_{column}", f"{_bigint(column)} is null"))


def _money_rules(column: str, *, required: bool) -> tuple[Rule, ...]:
    rules = (
        Rule(f"non_numeric_{column}", f"{_not_blank(column)} and {_money(column)} is null"),
        Rule(f"negative_{column}", f"{_money(column)} < 0"),
    )
    return ((_required(column),) if required else ()) + rules


# $load_date / $load_time / $currency are bound as query parameters, never pasted into SQL.
TABLES: dict[str, RawTable] = {
    "customers": RawTable(
        name="customers",
        columns=("customer_id", "email", "signup_date", "acquisition_channel", "country"),
        typed={
            "customer_id": _bigint("customer_id"),
            "email": "nullif(trim(\"email\"), '')",
            "signup_date": _date("signup_date"),
            "acquisition_channel": 'lower(trim("acquisition_channel"))',
            "country": 'upper(trim("country"))',
        },
        key=("customer_id",),
        rules=(
            *_id_rules("customer_id"),
            Rule("invalid_email", f"{_not_blank('email')} and trim(\"email\") not like '%_@_%'"),
            _required("signup_date"),
            Rule("unparseable_signup_date", f"{_date('signup_date')} is null"),
            Rule("future_signup_date", f"{_date('signup_date')} > $load_date"),
            _required("acquisition_channel"),
            _required("country"),
            Rule(
                "invalid_country",
                "not regexp_full_match(upper(trim(\"country\")), '[A-Z]{2}')",
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
            "order_id": _bigint("order_id"),
            "customer_id": _bigint("customer_id"),
            "ordered_at": _utc_timestamp("ordered_at"),
            "status": 'lower(trim("status"))',
            "amount": _money("amount"),
            "cost": _money("cost"),
            "currency": 'upper(trim("currency"))',
        },
        key=("order_id",),
        rules=(
            *_id_rules("order_id"),
            *_id_rules("customer_id"),
            _required("ordered_at"),
            Rule("unparseable_ordered_at", f"{_utc_timestamp('ordered_at')} is null"),
            Rule("future_ordered_at", f"{_utc_timestamp('ordered_at')} > $load_time"),
            Rule(
                "unknown_status",
                "coalesce(lower(trim(\"status\")), '') "
                "not in ('completed', 'refunded', 'cancelled')",
            ),
            *_money_rules("amount", required=True),
            *_money_rules("cost", required=False),
            Rule("unknown_currency", "coalesce(upper(trim(\"currency\")), '') <> $currency"),
        ),
        reference=Reference("customer_id", "customers", "customer_id", "unknown_customer_id"),
    ),
    "marketing_spend": RawTable(
        name="marketing_spend",
        columns=("date", "channel", "spend"),
        typed={
            "date": _date("date"),
            "channel": 'lower(trim("channel"))',
            "spend": _money("spend"),
        },
        key=("date", "channel"),
        rules=(
            _required("date"),
            Rule("unparseable_date", f"{_date('date')} is null"),
            _required("channel"),
            *_money_rules("spend", required=True),
        ),
    ),
}

#: Load order: a table's reference target is loaded before it.
LOAD_ORDER: tuple[str, ...] = ("customers", "orders", "marketing_spend")


def reason_codes() -> dict[str, list[str]]:
    """Every reason code the loader can give, per table, in precedence order."""
    codes = {}
    for name, table in TABLES.items():
        codes[name] = [rule.reason for rule in table.row_rules] + [
            "conflicting_duplicate",
            "exact_duplicate",
        ]
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


def _stage(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    files: Sequence[Path],
    raw_dir: Path,
    malformed: list[_Malformed],
) -> None:
    stage = f"_stage_{table.name}"
    text_columns = ", ".join(f"{_q(c)} varchar" for c in table.columns)
    con.execute(
        f"create temp table {stage} (source_file varchar, source_line bigint, {text_columns})"
    )
    for path in files:
        source_file = path.relative_to(raw_dir).as_posix()
        if path.suffix == ".parquet":
            casts = ", ".join(f"cast({_q(c)} as varchar)" for c in table.columns)
            con.execute(
                f"insert into {stage} select $file, file_row_number + 1, {casts} "
                "from read_parquet($path, file_row_number = true)",
                {"file": source_file, "path": str(path)},
            )
            continue
        try:
            for batch in _csv_batches(path, table, source_file, malformed):
                con.register("_batch", batch)
                con.execute(f"insert into {stage} select * from _batch")
                con.unregister("_batch")
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise RawInputError(f"{path}: cannot be read as CSV ({exc})") from exc


def _classify(con: duckdb.DuckDBPyConnection, table: RawTable, params: dict) -> None:
    """Give each staged row its first broken rule, then duplicate and reference reasons."""
    typed = ", ".join(f"{expr} as {_q('t_' + name)}" for name, expr in table.typed.items())
    cases = " ".join(f"when {rule.predicate} then '{rule.reason}'" for rule in table.row_rules)
    used = {k: v for k, v in params.items() if any(f"${k}" in r.predicate for r in table.rules)}
    con.execute(
        f"create temp table _rowcheck_{table.name} as "
        f"select *, {typed}, case {cases} end as row_reason from _stage_{table.name}",
        used or None,
    )
    key = ", ".join(_q("t_" + k) for k in table.key)
    content = ", ".join(_q("t_" + k) for k in table.typed)
    reference_join, reference_case = "", ""
    if table.reference is not None:
        ref = table.reference
        reference_join = (
            f"left join (select distinct {_q(ref.target_column)} as ref_key "
            f"from {RAW_SCHEMA}._next_{ref.table}) as ref "
            f"on r.{_q('t_' + ref.column)} = ref.ref_key"
        )
        reference_case = f"when ref.ref_key is null then '{ref.reason}'"
    window = f"partition by row_reason is null, {key}"
    con.execute(
        f"""
        create temp table _checked_{table.name} as
        with keyed as (
            select *,
                hash({content}) as content_hash,
                min(hash({content})) over ({window}) as min_hash,
                max(hash({content})) over ({window}) as max_hash,
                row_number() over ({window} order by source_file, source_line) as copy_number
            from _rowcheck_{table.name}
        )
        select r.*,
            case
                when r.row_reason is not null then r.row_reason
                when r.min_hash <> r.max_hash then 'conflicting_duplicate'
                when r.copy_number > 1 then 'exact_duplicate'
                {reference_case}
            end as reason
        from keyed as r
        {reference_join}
        """
    )


def _write_outputs(con: duckdb.DuckDBPyConnection, table: RawTable, raw_columns_json: str) -> None:
    columns = ", ".join(f"{_q('t_' + name)} as {_q(name)}" for name in table.typed)
    con.execute(
        f"create table {RAW_SCHEMA}._next_{table.name} as "
        f"select {columns} from _checked_{table.name} where reason is null "
        "order by source_file, source_line"
    )
    con.execute(
        f"insert into _quarantine select '{table.name}', source_file, source_line, reason, "
        f"{raw_columns_json} from _checked_{table.name} where reason is not null"
    )


def load_raw(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    *,
    currency: str = "USD",
    load_time: dt.datetime | None = None,
    log: Callable[[str], None] | None = None,
) -> LoadReport:
    """Replace the ``raw`` tables with the files in ``raw_dir``, all or nothing.

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

    Returns
    -------
    LoadReport
        Rows in, loaded and quarantined per table, with counts per reason.

    Raises
    ------
    RawInputError
        A file is missing, empty, not a CSV/Parquet file or has a wrong header. Nothing was
        written.
    """
    say = log or (lambda _msg: None)
    load_time = (load_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    params = {
        "load_time": load_time,
        "load_date": load_time.date(),
        "currency": currency.strip().upper(),
    }
    files = {name: find_files(raw_dir, name) for name in LOAD_ORDER}
    for name in LOAD_ORDER:
        for path in files[name]:
            check_header(path, TABLES[name])

    report = LoadReport(
        load_time=load_time,
        tables={
            name: TableLoad(name, [p.relative_to(raw_dir).as_posix() for p in files[name]])
            for name in LOAD_ORDER
        },
    )
    con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute(
            "create temp table _quarantine (source_table varchar, source_file varchar, "
            "source_line bigint, reason varchar, record varchar)"
        )
        for name in LOAD_ORDER:
            table = TABLES[name]
            malformed: list[_Malformed] = []
            say(f"{name}: reading {len(files[name])} file(s)")
            _stage(con, table, files[name], raw_dir, malformed)
            staged = con.execute(f"select count(*) from _stage_{name}").fetchone()[0]
            report.tables[name].rows_in = staged + len(malformed)
            say(f"{name}: checking rows")
            _classify(con, table, params)
            record = (
                "to_json(struct_pack("
                + ", ".join(f"{_q(c)} := {_q(c)}" for c in table.columns)
                + "))::varchar"
            )
            con.execute(f"drop table if exists {RAW_SCHEMA}._next_{name}")
            _write_outputs(con, table, record)
            if malformed:
                con.executemany(
                    "insert into _quarantine values (?, ?, ?, 'malformed_line', ?)",
                    [[name, m.source_file, m.source_line, m.text] for m in malformed],
                )
        for name in LOAD_ORDER:
            con.execute(f"drop table if exists {RAW_SCHEMA}.{_q(name)}")
            con.execute(f"alter table {RAW_SCHEMA}._next_{name} rename to {_q(name)}")
        con.execute(f"drop table if exists {RAW_SCHEMA}.{QUARANTINE_TABLE}")
        con.execute(
            f"create table {RAW_SCHEMA}.{QUARANTINE_TABLE} as select * from _quarantine "
            "order by source_table, source_file, source_line"
        )
        for name in LOAD_ORDER:
            for temp in ("_stage", "_rowcheck", "_checked"):
                con.execute(f"drop table {temp}_{name}")
        con.execute("drop table _quarantine")
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
    say(f"loaded {report.rows_loaded:,} rows, quarantined {report.rows_quarantined:,}")
    return report
