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

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ltv_pipeline import settings
from ltv_pipeline.generate import COMPANION_FILES

RAW_SCHEMA = "raw"
QUARANTINE_TABLE = "quarantine"
#: Which files the last load read (size, modification time), per table.
FILES_TABLE = "_files"
#: Bumped when the stored row state changes shape, so old warehouses are reloaded.
STATE_VERSION = 1
CSV_BLOCK_BYTES = 16 << 20


class RawInputError(ValueError):
    """A raw file that cannot be loaded at all (missing, wrong header, not a CSV)."""


#: Our columns of each raw table, in file order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "email", "signup_date", "acquisition_channel", "country"),
    "orders": ("order_id", "customer_id", "ordered_at", "status", "amount", "cost", "currency"),
    "marketing_spend": ("date", "channel", "spend"),
}
#: The date or timestamp column of each table: the one whose format is configurable.
DATE_COLUMNS = {"customers": "signup_date", "orders": "ordered_at", "marketing_spend": "date"}
#: Columns an export may lack (declared ``absent``): only those where a blank is valid, since
#: an absent required column would quarantine every row.
OPTIONAL_COLUMNS = {"customers": ("email",), "orders": ("cost",), "marketing_spend": ()}
#: Our order statuses; a mapping may translate the shop's values into these.
STATUSES = ("completed", "refunded", "cancelled")
#: Named date formats (besides a strftime pattern such as ``%d.%m.%Y %H:%M``).
DATE_FORMATS = ("iso", "yyyymmdd", "dayfirst", "monthfirst", "epoch_seconds")
#: strftime directives a date pattern may use, and the text each one matches.
DATE_DIRECTIVES = {
    "Y": "([0-9]{4})",
    "m": "([0-9]{1,2})",
    "d": "([0-9]{1,2})",
    "H": "([01]?[0-9]|2[0-3])",
    "M": "([0-5][0-9])",
    "S": "([0-5][0-9])",
    "z": "(Z|[+-][0-9]{2}(?::?[0-9]{2})?)",
}
#: Decimal places of every money column (amount, cost, spend).
MONEY_SCALE = 2
#: Money as text: an optional sign, digits, and at most MONEY_SCALE decimals, or more that are
#: all zeros (10.500); no exponent, thousands separator or underscore.
MONEY_TEXT = f"[+-]?([0-9]+|[0-9]*[.][0-9]{{1,{MONEY_SCALE}}}0*)"
#: A plain decimal with more places than MONEY_SCALE: ``too_precise_<column>``, not rounded.
MONEY_TOO_PRECISE = "[+-]?[0-9]*[.][0-9]+"
# Values pasted into SQL (status values) are limited to this, so no quoting is ever needed.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9 _.-]+")
_TABLE_KEYS = ("columns", "absent", "status", "date_format", "ignore_other_columns")


@dataclass(frozen=True)
class TableMapping:
    """How one table of the shop's export maps onto ours (see :func:`read_input_mapping`).

    ``columns`` maps our column to the export's; a column not named keeps our name; an
    ``absent`` one is read as null. ``status`` maps the shop's (lower-case) status values to
    ours. ``date_format`` is one of :data:`DATE_FORMATS` or a strftime pattern.
    """

    columns: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    status: dict[str, str] = field(default_factory=dict)
    date_format: str = "iso"
    ignore_other_columns: bool = False

    def spec(self) -> dict:
        """A JSON-able form, for the file fingerprint."""
        return {
            "columns": dict(sorted(self.columns.items())),
            "absent": sorted(self.absent),
            "status": dict(sorted(self.status.items())),
            "date_format": self.date_format,
            "ignore_other_columns": self.ignore_other_columns,
        }


@dataclass(frozen=True)
class InputMapping:
    """The shop's own column names, status values and date formats, per table; ``source`` is
    the file it came from, named in errors."""

    tables: dict[str, TableMapping] = field(default_factory=dict)
    source: str | None = None

    def table(self, name: str) -> TableMapping:
        return self.tables.get(name, TableMapping())


def read_input_mapping(path: Path) -> InputMapping:
    """Read and check the input mapping file (TOML), the one place it is interpreted.

    The file has a section per table that differs from ours, e.g.::

        [orders]
        date_format = "iso"            # iso, yyyymmdd, dayfirst, monthfirst, epoch_seconds
                                       # or a strftime pattern such as "%d.%m.%Y %H:%M"
        absent = ["cost"]              # our columns the export lacks: loaded as null
        ignore_other_columns = true    # the export's other columns are not read
        [orders.columns]               # the export's column = ours
        "Id" = "order_id"
        "Created at" = "ordered_at"
        [orders.status]                # the export's status value = ours
        paid = "completed"
        voided = "cancelled"

    It is checked as a whole before anything is read, so a typo fails the load at once rather
    than quarantining every row.

    Raises
    ------
    RawInputError
        The file is missing or not TOML, or a key or value is wrong; the message names the
        file and the key (``orders.columns."Total"``).
    """
    where = str(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise RawInputError(f"{where}: input mapping file not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RawInputError(f"{where}: not a valid TOML file ({exc})") from exc

    def fail(key: str, problem: str) -> RawInputError:
        return RawInputError(f"{where}: {key}: {problem}")

    tables: dict[str, TableMapping] = {}
    for name, section in data.items():
        if name not in COLUMNS:
            raise fail(name, f"unknown table (expected one of {', '.join(COLUMNS)})")
        if not isinstance(section, dict):
            raise fail(name, "must be a table ([" + name + "])")
        for key in section:
            if key not in _TABLE_KEYS or (key == "status" and name != "orders"):
                allowed = [k for k in _TABLE_KEYS if k != "status" or name == "orders"]
                raise fail(f"{name}.{key}", f"unknown key (expected one of {', '.join(allowed)})")
        ours = COLUMNS[name]

        absent = section.get("absent", [])
        if not isinstance(absent, list) or not all(isinstance(c, str) for c in absent):
            raise fail(f"{name}.absent", "must be a list of column names")
        for column in absent:
            if column not in ours:
                raise fail(f"{name}.absent", f"'{column}' is not a column of {name}")
            if column not in OPTIONAL_COLUMNS[name]:
                optional = ", ".join(OPTIONAL_COLUMNS[name]) or "none"
                raise fail(
                    f"{name}.absent",
                    f"'{column}' is required, so every row would be quarantined "
                    f"(columns that may be absent: {optional})",
                )

        columns = section.get("columns", {})
        if not isinstance(columns, dict):
            raise fail(f"{name}.columns", "must be a table of export column = our column")
        by_ours: dict[str, str] = {}
        for source, target in columns.items():
            key = f'{name}.columns."{source}"'
            if not isinstance(target, str) or target not in ours:
                raise fail(key, f"{target!r} is not a column of {name} ({', '.join(ours)})")
            if target in by_ours:
                raise fail(key, f"'{target}' is already mapped from '{by_ours[target]}'")
            if target in absent:
                raise fail(key, f"'{target}' is also declared absent")
            by_ours[target] = source

        status = section.get("status", {})
        if not isinstance(status, dict):
            raise fail(f"{name}.status", "must be a table of export value = our status")
        statuses: dict[str, str] = {}
        for value, target in status.items():
            key = f'{name}.status."{value}"'
            if not _SAFE_VALUE.fullmatch(value):
                raise fail(key, "a status value may hold letters, digits, space, _ . - only")
            if target not in STATUSES:
                raise fail(key, f"{target!r} is not one of {', '.join(STATUSES)}")
            statuses[value.strip().lower()] = target

        date_format = section.get("date_format", "iso")
        if not isinstance(date_format, str):
            raise fail(f"{name}.date_format", "must be a string")
        try:
            date_patterns(date_format)
        except ValueError as exc:
            raise fail(f"{name}.date_format", str(exc)) from exc

        ignore = section.get("ignore_other_columns", False)
        if not isinstance(ignore, bool):
            raise fail(f"{name}.ignore_other_columns", "must be true or false")
        tables[name] = TableMapping(by_ours, tuple(absent), statuses, date_format, ignore)
    return InputMapping(tables, where)


@dataclass(frozen=True)
class DatePattern:
    """A date layout as a regular expression (no backslashes or quotes, so it reads the same
    in every engine's SQL) whose groups are the parts named in ``parts`` (strftime letters)."""

    regex: str
    parts: tuple[str, ...]


def strftime_pattern(pattern: str) -> DatePattern:
    """A strftime pattern as a :class:`DatePattern`.

    Only numeric directives (:data:`DATE_DIRECTIVES`) are supported: they mean the same in
    every engine, unlike month names or two-digit years.

    Raises
    ------
    ValueError
        An unsupported directive or character, or %Y, %m or %d missing.
    """
    regex, parts, i = "", [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%":
            directive = pattern[i + 1 : i + 2]
            if directive == "%":
                regex += "[%]"
            elif directive in DATE_DIRECTIVES:
                if directive in parts:
                    raise ValueError(f"%{directive} appears twice in {pattern!r}")
                regex += DATE_DIRECTIVES[directive]
                parts.append(directive)
            else:
                supported = " ".join("%" + k for k in DATE_DIRECTIVES)
                raise ValueError(
                    f"unsupported directive %{directive} in {pattern!r} (supported: {supported} %%)"
                )
            i += 2
            continue
        if char.isalnum() or char == " ":
            regex += char
        elif char in "\\[]^'\"":
            raise ValueError(f"character {char!r} is not allowed in a date pattern")
        else:
            regex += f"[{char}]"
        i += 1
    missing = [f"%{k}" for k in "Ymd" if k not in parts]
    if missing:
        raise ValueError(f"{pattern!r} lacks {', '.join(missing)}")
    if ("S" in parts and "M" not in parts) or ("M" in parts and "H" not in parts):
        raise ValueError(f"{pattern!r}: %S needs %M, and %M needs %H")
    return DatePattern(regex, tuple(parts))


# An optional time after a day-first or month-first date: 14:05 or 14:05:00. Hours stop at 23
# (DuckDB's cast reads 24:00 as the next day, Spark's refuses it).
_HOUR, _MINUTE = DATE_DIRECTIVES["H"], DATE_DIRECTIVES["M"]
_TIME = f"(?:[ T]{_HOUR}:{_MINUTE}(?::{_MINUTE})?)?"
_DAY_MONTH = "([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})" + _TIME
#: ISO 8601's basic form of a date, 20250131, accepted in every format.
YYYYMMDD = DatePattern("([0-9]{4})([0-9]{2})([0-9]{2})", ("Y", "m", "d"))
#: An ISO timestamp with a space before its offset (Shopify's 2025-01-31 14:05:00 -0500), which
#: DuckDB's cast refuses and Spark's takes: read on both as if the space were not there.
#: Group 1 is the timestamp, group 2 the offset.
ISO_SPACED_ZONE = (
    "([0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[ T](?:[01]?[0-9]|2[0-3]):[0-5][0-9]"
    "(?::[0-5][0-9](?:[.][0-9]{1,9})?)?) (Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
)


def date_patterns(date_format: str) -> tuple[DatePattern, ...] | None:
    """The layouts a date format adds, tried before ISO; ``None`` for epoch seconds.

    ISO values always parse as well (they are unambiguous), so a file whose export format
    changed over time still loads; day-first and month-first only when configured, since
    01/02/2025 is either.

    Raises
    ------
    ValueError
        An unknown format name or a bad strftime pattern.
    """
    if date_format in ("iso", "yyyymmdd"):
        return ()
    if date_format == "epoch_seconds":
        return None
    if date_format == "dayfirst":
        return (DatePattern(_DAY_MONTH, ("d", "m", "Y", "H", "M", "S")),)
    if date_format == "monthfirst":
        return (DatePattern(_DAY_MONTH, ("m", "d", "Y", "H", "M", "S")),)
    if "%" not in date_format:
        raise ValueError(
            f"unknown date format {date_format!r} (expected one of {', '.join(DATE_FORMATS)} "
            "or a strftime pattern such as '%d.%m.%Y')"
        )
    return (strftime_pattern(date_format),)


@dataclass(frozen=True)
class Rule:
    """A row-level check: ``predicate`` is SQL that is true when the row is bad."""

    reason: str
    predicate: str


@dataclass(frozen=True)
class NotBefore:
    """A referencing row dated (UTC day of ``column``) before its referenced row's
    ``target_column`` gets ``reason``: an order before its customer signed up."""

    column: str
    target_column: str
    reason: str


@dataclass(frozen=True)
class Reference:
    """Rows whose ``column`` is absent from ``table.target_column`` get ``reason``; with
    ``not_before``, rows dated before the row they reference get its reason."""

    column: str
    table: str
    target_column: str
    reason: str
    not_before: NotBefore | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        """The verdicts this reference gives, in precedence order."""
        return (self.reason,) + (() if self.not_before is None else (self.not_before.reason,))

    def verdicts(self, d: Dialect, row: str, ref: str) -> str:
        """SQL ``when`` branches giving this reference's verdicts for row alias ``row``
        joined (left) to its referenced row ``ref``, in dialect ``d``; the one definition
        both engines use."""
        cases = f"when {ref}.{d.q(self.target_column)} is null then '{self.reason}'"
        if self.not_before is not None:
            nb = self.not_before
            # the typed value is a naive UTC timestamp: its date is the UTC day
            cases += (
                f" when cast({row}.{d.t(nb.column)} as date) < {ref}.{d.q(nb.target_column)}"
                f" then '{nb.reason}'"
            )
        return cases


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
    #: Our column -> the export's column (``None``: absent, read as null); unlisted: same name.
    sources: dict[str, str | None] = field(default_factory=dict)
    #: Read only the mapped columns of a file and let it have others.
    ignore_other_columns: bool = False
    #: The input mapping file the table's mapping came from, named in header errors.
    mapping_file: str | None = None

    @property
    def source_columns(self) -> dict[str, str | None]:
        """Every one of our columns with the export's column it is read from (or ``None``)."""
        return {c: self.sources.get(c, c) for c in self.columns}

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

    #: The ISO shape the engines' casts see: a whole date, and if a time follows, an hour in
    #: 0-23, minutes, seconds in 0-59, a fraction, then a zone. Outside it their casts differ:
    #: DuckDB takes 31/01/25 as the year 31 and 24:00 as the next day, Spark takes '2025' and
    #: '2025-01' as January 1, '...T10' as 10:00 and the date of '2025-01-31 23:59:60'.
    ISO_SHAPE = (
        "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ]([01]?[0-9]|2[0-3]):[0-5][0-9]"
        "(:[0-5][0-9]([.][0-9]+)?)?( ?[A-Za-z+-].*)?)?"
    )

    def utc_timestamp(self, expr: str) -> str:
        """An ISO timestamp as a UTC timestamp (naive), or null.

        Offsets are honoured and converted; a timestamp without one is taken as UTC.
        """
        shaped = self.full_match(expr, self.ISO_SHAPE)
        return f"case when {shaped} then {self.timestamp_cast(expr)} end"

    def iso_date(self, expr: str) -> str:
        """An ISO date (a time after it is ignored), or null."""
        shaped = self.full_match(expr, self.ISO_SHAPE)
        return f"case when {shaped} then try_cast({expr} as date) end"

    def timestamp_cast(self, expr: str) -> str:
        """The engine's own cast of ISO text to a UTC timestamp."""
        return f"timezone('UTC', try_cast({expr} as timestamptz))"

    def epoch_timestamp(self, seconds: str) -> str:
        """Whole seconds since 1970-01-01 UTC (a bigint) as a UTC timestamp."""
        return f"make_timestamp({seconds} * 1000000)"

    def extract(self, expr: str, regex: str, group: int) -> str:
        """Group ``group`` of ``regex`` matched against the whole of ``expr`` ('' if none)."""
        return f"regexp_extract({expr}, '^(?:{regex})$', {group})"

    def row_hash(self, columns: str) -> str:
        return f"hash({columns})"

    def nfc(self, expr: str) -> str:
        """``expr`` in Unicode normal form C, so a precomposed and a decomposed ``école`` are
        one key."""
        return f"nfc_normalize({expr})"


class SparkDialect(Dialect):
    """Spark SQL (4.x, ANSI or not); the session time zone must be UTC."""

    name = "spark"
    quote_char = "`"
    param_prefix = ":"

    def full_match(self, expr: str, pattern: str) -> str:
        return f"({expr} rlike '^(?:{pattern})$')"

    def timestamp_cast(self, expr: str) -> str:
        # with the session time zone UTC, an offset is converted and none means UTC
        return f"try_cast({expr} as timestamp)"

    def epoch_timestamp(self, seconds: str) -> str:
        return f"timestamp_seconds({seconds})"

    def row_hash(self, columns: str) -> str:
        return f"xxhash64({columns})"

    def nfc(self, expr: str) -> str:
        # Spark SQL has no normalisation function: a Python UDF registered on the session
        # (ltv_pipeline.ingest_spark.register_functions) under this name
        return f"{NFC_FUNCTION}({expr})"


DUCKDB = Dialect()
SPARK = SparkDialect()
#: The name of the NFC function Spark's rules call (see :meth:`SparkDialect.nfc`).
NFC_FUNCTION = "ltv_nfc"


def use_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Make ``con``'s session time zone UTC.

    DuckDB starts each connection in the host's time zone (``TZ``), and its cast of a
    timestamp without an offset, and of a timestamp with one to a date, reads it in that
    zone: the same file would load 4 hours apart in New York. Every connection the pipeline
    opens calls this, and :func:`load_raw` too, for connections opened by others.
    """
    con.execute("set TimeZone = 'UTC'")


def date_text(d: Dialect, expr: str, pattern: DatePattern, *, with_time: bool) -> str:
    """The ISO text (``2025-01-31`` or ``2025-01-31T14:05:00+05:00``) of a value matching
    ``pattern``, built from its groups, for the engine's own ISO cast to check and type: so
    31/02/2025 is refused exactly as 2025-02-31 is, on both engines."""

    def part(name: str) -> str:
        return d.extract(expr, pattern.regex, pattern.parts.index(name) + 1)

    pieces = [part("Y"), "'-'", f"lpad({part('m')}, 2, '0')", "'-'", f"lpad({part('d')}, 2, '0')"]
    if with_time and "H" in pattern.parts:
        hour = part("H")
        seconds = f"case when {part('S')} = '' then '00' else {part('S')} end"
        if "S" not in pattern.parts:
            seconds = "'00'"
        pieces.append(
            f"case when {hour} = '' then '' "
            f"else concat('T', lpad({hour}, 2, '0'), ':', {part('M')}, ':', {seconds}) end"
        )
    if with_time and "z" in pattern.parts:
        pieces.append(part("z"))  # Z, +05, +0500 or +05:00: both casts read each
    return f"concat({', '.join(pieces)})"


def parse_date(d: Dialect, expr: str, date_format: str, *, timestamp: bool) -> str:
    """SQL typing the text ``expr`` as a UTC timestamp (or a date), null when no accepted
    format matches: the configured one first (:func:`date_patterns`), then ISO (the engine's
    cast, with a space allowed before a numeric offset) and ISO's basic form 20250131.

    Each layout is a regular expression checked before the engine parses anything, so both
    engines accept the same texts; the first layout that matches decides, so with
    ``epoch_seconds`` 20250131 is a number of seconds, not a date.
    """
    patterns = date_patterns(date_format)

    def typed(text: str) -> str:
        return d.utc_timestamp(text) if timestamp else d.iso_date(text)

    branches = []
    if patterns is None:
        seconds = d.epoch_timestamp(f"try_cast({expr} as bigint)")
        if not timestamp:
            seconds = f"cast({seconds} as date)"
        branches.append(f"case when {d.full_match(expr, '[0-9]{1,11}')} then {seconds} end")
    for pattern in patterns or ():
        text = date_text(d, expr, pattern, with_time=timestamp)
        branches.append(f"case when {d.full_match(expr, pattern.regex)} then {typed(text)} end")
    branches.append(typed(expr))
    if timestamp:
        regex = ISO_SPACED_ZONE
        text = f"concat({d.extract(expr, regex, 1)}, {d.extract(expr, regex, 2)})"
        branches.append(f"case when {d.full_match(expr, regex)} then {typed(text)} end")
    text = date_text(d, expr, YYYYMMDD, with_time=False)
    branches.append(f"case when {d.full_match(expr, YYYYMMDD.regex)} then {typed(text)} end")
    return f"coalesce({', '.join(branches)})"


def raw_tables(d: Dialect, mapping: InputMapping | None = None) -> dict[str, RawTable]:
    """How each raw table is typed and checked, rendered in dialect ``d``: the one definition of
    every rule. ``load_date``, ``load_time`` and ``currency`` are query parameters.

    ``mapping`` (:func:`read_input_mapping`) says where the export keeps each column, how its
    dates are written and what its status values mean; without it, our names and ISO dates.
    ``earliest_date`` is a query parameter too: dates before it are ``too_early_<column>``.
    Money has at most :data:`MONEY_SCALE` decimals, ids are positive, and channels are
    compared in Unicode NFC.
    """
    q, t, not_blank = d.q, d.t, d.not_blank
    mapping = mapping or InputMapping()

    def bigint(column: str) -> str:
        # digits only: DuckDB's cast alone would take "12.5" (as 13), "1e3" and "0x1F"; and
        # positive, since an id of 0 or -42 is a placeholder or a sign error, never a key
        text = f"trim({q(column)})"
        positive = d.full_match(text, "[+]?0*[1-9][0-9]*")
        return f"case when {positive} then try_cast({text} as bigint) end"

    def date(table: str) -> str:
        column = DATE_COLUMNS[table]
        fmt = mapping.table(table).date_format
        return parse_date(d, f"trim({q(column)})", fmt, timestamp=column == "ordered_at")

    def status() -> str:
        value = f"lower(trim({q('status')}))"
        translated = mapping.table("orders").status
        if not translated:
            return value
        whens = " ".join(f"when '{k}' then '{v}'" for k, v in sorted(translated.items()))
        return f"case {value} {whens} else {value} end"

    def where(table: str) -> dict:
        m = mapping.table(table)
        sources: dict[str, str | None] = {ours: src for ours, src in m.columns.items()}
        sources.update(dict.fromkeys(m.absent))
        return {
            "sources": sources,
            "ignore_other_columns": m.ignore_other_columns,
            "mapping_file": mapping.source if table in mapping.tables else None,
        }

    def money(column: str) -> str:
        # plain decimals with at most MONEY_SCALE places (more are only zeros): the casts
        # would round 12.345 to 12.35 and read 1e-3 and 1_000 without a word
        text = f"trim({q(column)})"
        return (
            f"case when {d.full_match(text, MONEY_TEXT)} "
            f"then try_cast({text} as decimal(18, {MONEY_SCALE})) end"
        )

    def required(column: str) -> Rule:
        return Rule(f"missing_{column}", d.blank(column))

    def id_rules(column: str) -> tuple[Rule, ...]:
        return (required(column), Rule(f"invalid_{column}", f"{t(column)} is null"))

    def money_rules(column: str, *, required_: bool) -> tuple[Rule, ...]:
        too_precise = d.full_match(f"trim({q(column)})", MONEY_TOO_PRECISE)
        rules = (
            Rule(f"too_precise_{column}", f"{t(column)} is null and {too_precise}"),
            Rule(f"non_numeric_{column}", f"{not_blank(column)} and {t(column)} is null"),
            Rule(f"negative_{column}", f"{t(column)} < 0"),
        )
        return ((required(column),) if required_ else ()) + rules

    def clean(column: str, case: str) -> str:
        return f"{case}(trim({q(column)}))"

    def key_text(column: str) -> str:
        # a text key: one spelling per channel, whatever the export's Unicode form
        return f"lower({d.nfc(f'trim({q(column)})')})"

    def not_too_early(table: str) -> Rule:
        column = DATE_COLUMNS[table]
        return Rule(f"too_early_{column}", f"{t(column)} < {d.param('earliest_date')}")

    return {
        "customers": RawTable(
            name="customers",
            columns=COLUMNS["customers"],
            typed={
                "customer_id": bigint("customer_id"),
                "email": f"nullif(trim({q('email')}), '')",
                "signup_date": date("customers"),
                "acquisition_channel": key_text("acquisition_channel"),
                "country": clean("country", "upper"),
            },
            key=("customer_id",),
            dialect=d,
            **where("customers"),
            rules=(
                *id_rules("customer_id"),
                Rule(
                    "invalid_email",
                    f"{not_blank('email')} and trim({q('email')}) not like '%_@_%'",
                ),
                required("signup_date"),
                Rule("unparseable_signup_date", f"{t('signup_date')} is null"),
                not_too_early("customers"),
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
            columns=COLUMNS["orders"],
            typed={
                "order_id": bigint("order_id"),
                "customer_id": bigint("customer_id"),
                "ordered_at": date("orders"),
                "status": status(),
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
                not_too_early("orders"),
                Rule("future_ordered_at", f"{t('ordered_at')} > {d.param('load_time')}"),
                Rule(
                    "unknown_status",
                    f"coalesce({t('status')}, '') not in ({', '.join(map(repr, STATUSES))})",
                ),
                *money_rules("amount", required_=True),
                *money_rules("cost", required_=False),
                Rule(
                    "unknown_currency",
                    f"coalesce({clean('currency', 'upper')}, '') <> {d.param('currency')}",
                ),
            ),
            reference=Reference(
                "customer_id",
                "customers",
                "customer_id",
                "unknown_customer_id",
                NotBefore("ordered_at", "signup_date", "ordered_before_signup"),
            ),
            dialect=d,
            **where("orders"),
        ),
        "marketing_spend": RawTable(
            name="marketing_spend",
            columns=COLUMNS["marketing_spend"],
            typed={
                "date": date("marketing_spend"),
                "channel": key_text("channel"),
                "spend": money("spend"),
            },
            key=("date", "channel"),
            dialect=d,
            **where("marketing_spend"),
            rules=(
                required("date"),
                Rule("unparseable_date", f"{t('date')} is null"),
                not_too_early("marketing_spend"),
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
            codes[name].extend(table.reference.reasons)
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
    #: Files in the raw folder that no table reads (:func:`ignored_files`).
    ignored: list[str] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return sum(t.rows_in for t in self.tables.values())

    @property
    def rows_loaded(self) -> int:
        return sum(t.rows_loaded for t in self.tables.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables.values())


#: What a raw file's name may end with, in any case: ``.CSV`` and ``.csv.gz`` are read as CSV.
INPUT_SUFFIXES = (".csv.gz", ".csv", ".parquet")


def input_suffix(path: Path) -> str | None:
    """The input suffix (:data:`INPUT_SUFFIXES`, lower case) of ``path``, or ``None`` when it is
    not an input file; a hidden file (``.DS_Store``, ``._x.csv``) never is: such files are the
    operating system's, not the export's."""
    name = path.name.lower()
    if name.startswith("."):
        return None
    return next((s for s in INPUT_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def is_parquet(path: Path) -> bool:
    return input_suffix(path) == ".parquet"


def is_gzip(path: Path) -> bool:
    return input_suffix(path) == ".csv.gz"


def table_files(raw_dir: Path, table: str) -> list[Path]:
    """``<table>.csv|csv.gz|parquet`` and every such file anywhere under ``<table>/`` (suffix in
    any case), sorted; possibly none."""
    found: set[Path] = set()
    if raw_dir.is_dir():
        for path in raw_dir.iterdir():
            suffix = input_suffix(path)
            if suffix and path.is_file() and path.name[: -len(suffix)] == table:
                found.add(path)
    folder = raw_dir / table
    if folder.is_dir():
        found.update(p for p in folder.rglob("*") if p.is_file() and input_suffix(p))
    return sorted(found)


def find_files(raw_dir: Path, table: str) -> list[Path]:
    """Input files of ``table`` (:func:`table_files`).

    Raises
    ------
    RawInputError
        When there is none, so an empty drop never replaces the last good load.
    """
    files = table_files(raw_dir, table)
    if not files:
        raise RawInputError(
            f"no input file for '{table}' in {raw_dir} (expected {table}.csv, "
            f"{table}.csv.gz, {table}.parquet or such files under {table}/)"
        )
    return files


def ignored_files(raw_dir: Path) -> list[str]:
    """Every file in ``raw_dir`` that no table reads (``orders/notes.txt``, ``orders.xlsx``),
    relative to it: the load report lists them and a check warns, so no file of the drop is
    passed over without a word. The sample generator's own files at the top
    (:data:`ltv_pipeline.generate.COMPANION_FILES`) are not listed."""
    if not raw_dir.is_dir():
        return []
    read = {p for name in LOAD_ORDER for p in table_files(raw_dir, name)}
    read |= {raw_dir / name for name in COMPANION_FILES}  # the sample's answer key
    return sorted(
        p.relative_to(raw_dir).as_posix()
        for p in raw_dir.rglob("*")
        if p.is_file() and p not in read
    )


def read_header(path: Path) -> list[str]:
    """Column names of a raw file, from its first line (CSV) or its schema (Parquet)."""
    if is_parquet(path):
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise RawInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    try:
        with open_text(path) as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise RawInputError(f"{path}: not a UTF-8 CSV file ({exc.reason})") from exc
    except csv.Error as exc:
        raise RawInputError(f"{path}: not a CSV file ({exc})") from exc
    except (gzip.BadGzipFile, EOFError) as exc:
        raise RawInputError(f"{path}: not a readable gzip file ({exc})") from exc
    if not header or not any(name.strip() for name in header):
        raise RawInputError(f"{path}: the file is empty; expected a header line")
    return [name.strip() for name in header]


def check_header(path: Path, table: RawTable) -> None:
    """Refuse a file whose columns are not the expected ones, naming the column.

    Expected are the table's source columns (our names, or the export's from the input
    mapping); other columns are refused unless the mapping sets ``ignore_other_columns``.
    """
    header = read_header(path)
    duplicated = sorted({name for name in header if header.count(name) > 1})
    sources = {src: ours for ours, src in table.source_columns.items() if src is not None}
    missing = [name for name in sources if name not in header]
    unexpected = [name for name in header if name not in sources]
    expected = ", ".join(sources)
    mapped = f"; input mapping {table.mapping_file}" if table.mapping_file else ""
    if duplicated:
        raise RawInputError(f"{path}: column '{duplicated[0]}' appears more than once")
    if missing:
        name = missing[0]
        via = f" (read as {sources[name]})" if sources[name] != name else ""
        raise RawInputError(
            f"{path}: missing column '{name}'{via} (expected columns: {expected}{mapped})"
        )
    if unexpected and not table.ignore_other_columns:
        raise RawInputError(
            f"{path}: unexpected column '{unexpected[0]}' (expected columns: {expected}{mapped})"
        )


def open_binary(path: Path) -> io.BufferedIOBase:
    """A raw CSV file's bytes, uncompressed if it is gzip (``.csv.gz``)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def open_text(path: Path) -> io.TextIOBase:
    """A raw CSV file as UTF-8 text (a BOM dropped), uncompressed if gzip, newlines untouched."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


SCAN_BYTES = 8 << 20
_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")


@dataclass
class CsvLines:
    """The physical line structure of a CSV file, found from its bytes alone.

    ``lines`` counts physical lines (ended by LF; a last line without one counts);
    ``continued`` lists the lines that begin inside a quoted field (a value holding a line
    break), so they start no record; ``quoted_cr`` is true when a quoted value holds a lone
    carriage return.
    """

    lines: int
    continued: list[int]
    quoted_cr: bool

    @property
    def records(self) -> int:
        """Data records: lines that start one, less the header."""
        return max(self.lines - len(self.continued) - 1, 0)

    @property
    def multiline(self) -> bool:
        """Whether some record spans more than one physical line."""
        return bool(self.continued) or self.quoted_cr


def _inside_quotes(quotes: np.ndarray, at: np.ndarray, inside: int) -> np.ndarray:
    """1 at each position of ``at`` preceded by an odd number of quotes (the sorted positions
    ``quotes``, ``inside`` carried from earlier chunks): inside a quoted field."""
    return (np.searchsorted(quotes, at) + inside) & 1


def scan_csv_lines(path: Path) -> CsvLines:
    """Scan a CSV file's bytes for line breaks outside and inside quoted fields.

    A double quote toggles "inside a quoted field" (an escaped quote ``""`` toggles twice),
    so a line break while inside is part of a value. Vectorised with numpy, so counting a
    large file costs about a read of it.

    Raises
    ------
    RawInputError
        A carriage return outside quotes that is not followed by a line feed: CR-only (old
        Mac) line endings, or a stray CR. Tools disagree whether that ends a line, so line
        numbers could not be trusted; the message names the file and the line.
    """
    lines, inside, continued, quoted_cr = 0, 0, [], False
    last = b""
    with open_binary(path) as handle:
        pending = b""
        while True:
            chunk = handle.read(SCAN_BYTES)
            data = pending + chunk
            if not data:
                break
            # keep a final CR back, to see whether an LF follows it in the next chunk
            pending = data[-1:] if chunk and data[-1:] == b"\r" else b""
            body = data[: len(data) - len(pending)]
            if not body:
                continue
            a = np.frombuffer(body, dtype=np.uint8)
            quotes = np.flatnonzero(a == _QUOTE)

            newlines = np.flatnonzero(a == _LF)
            inside_at = _inside_quotes(quotes, newlines, inside) == 1
            continued.extend((lines + 2 + np.flatnonzero(inside_at)).tolist())
            crs = np.flatnonzero(a == _CR)
            if len(crs):
                # a CR at the end of the body is the file's last byte (see pending)
                lone = np.append(a, np.uint8(0))[crs + 1] != _LF
                at_cr = _inside_quotes(quotes, crs, inside)
                outside = lone & (at_cr == 0)
                if outside.any():
                    first = int(crs[np.argmax(outside)])
                    line = lines + 1 + int(np.searchsorted(newlines, first))
                    raise RawInputError(
                        f"{path}: line {line}: a carriage return that ends no line "
                        "(CR-only line endings?); save the file with LF or CRLF line endings"
                    )
                quoted_cr = quoted_cr or bool((lone & (at_cr == 1)).any())
            lines += len(newlines)
            inside = (inside + len(quotes)) & 1
            last = body[-1:]
            if not chunk:
                break
    if last and last != b"\n":
        lines += 1  # a last line without a newline
    return CsvLines(lines, continued, quoted_cr)


def count_input_rows(path: Path) -> int:
    """Data rows in a raw file counted without the loader's parser: Parquet rows, or the
    records of a CSV (:func:`scan_csv_lines`: lines after the header, less those inside a
    quoted value).

    This is deliberately independent of the loader, so comparing it with what was loaded
    and quarantined is a real reconciliation.
    """
    if is_parquet(path):
        return pq.ParquetFile(path).metadata.num_rows
    return scan_csv_lines(path).records


@dataclass
class Malformed:
    """A CSV line with the wrong number of fields, kept whole for the quarantine."""

    source_file: str
    source_line: int
    text: str


def _text_batch(
    source_file: str, lines: np.ndarray | list[int], columns: dict[str, pa.Array | None], n: int
) -> pa.Table:
    return pa.table(
        {
            "source_file": pa.array([source_file] * n, pa.string()),
            "source_line": pa.array(lines, pa.int64()),
            **{
                ours: pa.nulls(n, pa.string()) if column is None else column
                for ours, column in columns.items()
            },
        }
    )


def multiline_batches(
    path: Path, table: RawTable, source_file: str, malformed: list[Malformed]
) -> Iterator[pa.Table]:
    """:func:`csv_batches` for a file whose quoted values hold line breaks.

    pyarrow parses such files (``newlines_in_values``) but then reports no line numbers, so
    Python's csv module reads them here, one physical line (ended by LF only) at a time,
    which gives each record's first physical line. Slower, and only used for such files.
    """
    sources = table.source_columns
    batch_rows = 100_000

    def physical_lines() -> Iterator[str]:
        with open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                text = raw.decode("utf-8")
                if number == 1:
                    text = text.removeprefix("\ufeff")
                position["line"] = number
                position["text"].append(text)
                yield text

    position: dict = {"line": 0, "text": []}
    reader = csv.reader(physical_lines())
    try:
        header = [name.strip() for name in next(reader)]
        index = {name: i for i, name in enumerate(header)}
        wanted = {ours: (None if src is None else index[src]) for ours, src in sources.items()}
        values: dict[str, list[str]] = {ours: [] for ours in sources}
        lines: list[int] = []
        start = position["line"] + 1
        position["text"] = []
        for record in reader:
            text = "".join(position["text"]).removesuffix("\n").removesuffix("\r")
            position["text"] = []
            if len(record) != len(header):
                malformed.append(Malformed(source_file, start, text))
            else:
                lines.append(start)
                for ours, i in wanted.items():
                    values[ours].append("" if i is None else record[i])
            start = position["line"] + 1
            if len(lines) == batch_rows:
                yield _batch_of(source_file, lines, values, wanted)
                lines, values = [], {ours: [] for ours in sources}
        yield _batch_of(source_file, lines, values, wanted)
    except csv.Error as exc:
        raise RawInputError(f"{path}: line {position['line']}: not a CSV record ({exc})") from exc


def _batch_of(
    source_file: str, lines: list[int], values: dict[str, list[str]], wanted: dict
) -> pa.Table:
    columns = {
        ours: None if wanted[ours] is None else pa.array(column, pa.string())
        for ours, column in values.items()
    }
    return _text_batch(source_file, lines, columns, len(lines))


def csv_batches(
    path: Path, table: RawTable, source_file: str, malformed: list[Malformed]
) -> Iterator[pa.Table]:
    """Stream a CSV (or gzip-compressed CSV) as text columns (our names, read from the
    export's per the mapping; an absent column is null) plus the physical line where each
    record starts.

    pyarrow reports the line of every malformed record through ``invalid_row_handler``
    before it yields the block holding it, so the good records' lines are the block's line
    range minus those. A file whose quoted values hold line breaks is read by
    :func:`multiline_batches` instead, since then pyarrow knows no line numbers.

    Raises
    ------
    RawInputError
        CR-only line endings (:func:`scan_csv_lines`).
    """
    if scan_csv_lines(path).multiline:
        yield from multiline_batches(path, table, source_file, malformed)
        return
    pending: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append(Malformed(source_file, int(row.number), row.text))
        pending.append(int(row.number))
        return "skip"

    sources = table.source_columns
    read = [src for src in sources.values() if src is not None]
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None),
        read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in read},
            include_columns=read,
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
        yield _text_batch(
            source_file,
            lines,
            {ours: None if src is None else batch.column(src) for ours, src in sources.items()},
            n,
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
    malformed: list[Malformed],
) -> tuple[str, dict]:
    """SQL (and its parameters) giving the raw text of ``files``, one row per record.

    Parquet files are scanned by DuckDB in one pass, as text, so that one set of rules serves
    both formats; CSV files are streamed through pyarrow (which reports malformed lines) into
    a temp table. Call :func:`_drop_source` when done.
    """
    if not files:
        return _empty_source(table), {}
    parts, params = [], {}
    parquet = [p for p in files if is_parquet(p)]
    if parquet:
        con.execute("create or replace temp table _paths (filename varchar, source_file varchar)")
        con.executemany(
            "insert into _paths values (?, ?)",
            [[str(p), p.relative_to(raw_dir).as_posix()] for p in parquet],
        )
        casts = ", ".join(
            f"null::varchar as {_q(ours)}"
            if src is None
            else f"cast({_q(src)} as varchar) as {_q(ours)}"
            for ours, src in table.source_columns.items()
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
    malformed: list[Malformed] = []
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
    a row whose reference is missing (or, with ``not_before``, dated after it) is held.
    Returns how many keys entered or left the clean table or changed there (:data:`ALL_KEYS`
    for every key); with ``track``, those keys are left in temp table ``_changed_<table>`` for
    the tables that reference this one: a customer whose signup date moved re-decides its
    orders' ``ordered_before_signup`` as a customer who appeared decides ``unknown_customer_id``.
    """
    rows, clean = _rows_table(table), f"{RAW_SCHEMA}.{_q(table.name)}"
    quarantine = f"{RAW_SCHEMA}.{QUARANTINE_TABLE}"
    keys = _keys_of(table)
    key_columns = ", ".join(_q(k) for k in table.key)
    in_scope = "" if every_key else f"semi join _affected as a on {_key_match(table, 'r', 'a')}"
    clean_in_scope = f"semi join _affected as a on {_key_match(table, 'c', 'a', left_typed=False)}"
    reasons = [*KEY_REASONS, *(table.reference.reasons if table.reference else ())]
    if every_key:
        con.execute(f"delete from {clean}")
        con.execute(
            f"delete from {quarantine} where source_table = ? and list_contains(?, reason)",
            [table.name, reasons],
        )
    else:
        if track:
            con.execute(
                f"create temp table _before as select * from {clean} as c " + clean_in_scope
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
        reference_case = ref.verdicts(DUCKDB, "r", "ref")
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
        f"create or replace temp table _changed_{table.name} as select distinct {key_columns} "
        f"from ((select * from _before except select * from {clean} as c {clean_in_scope}) "
        f"union all (select * from {clean} as c {clean_in_scope} except select * from _before))"
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


#: How many reasons a failure for too many quarantined rows lists.
TOP_REASONS = 3


def check_quarantine_share(
    table: str,
    loaded: int,
    reasons: dict[str, int],
    max_share: float,
    examples: Callable[[list[str]], dict[str, tuple[str, int, str]]],
) -> None:
    """Fail when more than ``max_share`` of a table's rows were quarantined.

    Such a load is almost never bad data: the export changed (a date format, a renamed
    status), and loading the few rows left would let the run fail later, far from the cause,
    or worse, succeed on a fraction of the shop. A table without rows is not such a case.

    Parameters
    ----------
    loaded, reasons
        Rows in the clean table, and quarantined rows per reason.
    examples
        Given reasons, the first quarantined row of each as (file, line, raw record); called
        only when failing.

    Raises
    ------
    RawInputError
        Naming the table, the share and the top reasons, each with a count, a file:line and
        its raw record.
    """
    held = sum(reasons.values())
    total = loaded + held
    if total == 0 or held / total <= max_share:
        return
    top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    example = examples([reason for reason, _ in top])
    lines = [
        f"  {reason}: {count:,} rows, e.g. {example[reason][0]}:{example[reason][1]} "
        f"{example[reason][2]}"
        for reason, count in top
    ]
    raise RawInputError(
        f"{table}: {held:,} of {total:,} rows ({held / total:.0%}) would be quarantined, more "
        f"than the allowed share {max_share:g} ({settings.MAX_QUARANTINE_SHARE_ENV}); nothing "
        "was loaded, the last good load stays. Top reasons:\n"
        + "\n".join(lines)
        + f"\nIs the export in another format? Map it in the input mapping "
        f"({settings.INPUT_MAPPING_ENV}), or fix the rows."
    )


#: Tables without which nothing downstream means anything: every mart is as of the last
#: order date, so a load leaving no orders fails rather than publish an empty shop.
MUST_HAVE_ROWS = ("orders",)


def check_has_rows(table: str, loaded: int, quarantined: int, files: Sequence[str]) -> None:
    """Fail when a table of :data:`MUST_HAVE_ROWS` would be left without a clean row.

    A header-only orders file, or one whose every order is quarantined (with
    ``LTV_MAX_QUARANTINE_SHARE`` = 1), leaves no as-of date: the marts would fail far from
    the cause (a not-null test on the reporting window) or publish an empty shop. Failing
    here names the files and keeps the last good load.

    Raises
    ------
    RawInputError
        Naming the table, its files and how many rows were quarantined.
    """
    if table not in MUST_HAVE_ROWS or loaded > 0:
        return
    held = f"; {quarantined:,} quarantined (see raw.quarantine)" if quarantined else ""
    raise RawInputError(
        f"no usable {table} in {', '.join(files)}: nothing to compute as of "
        f"(0 rows loaded{held}); nothing was loaded, the last good load stays"
    )


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


def load_parameters(
    currency: str,
    load_time: dt.datetime | None,
    earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
) -> dict:
    """The query parameters of a load: "now" in UTC (naive; default the wall clock), its date,
    the shop currency and the earliest date a row may carry."""
    now = (load_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    return {
        "load_time": now,
        "load_date": now.date(),
        "currency": currency.strip().upper(),
        "earliest_date": earliest_date,
    }


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
                _check_share(con, name, max_quarantine_share, entry.files)
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
