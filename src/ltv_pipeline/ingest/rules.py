"""The raw layer's rules: tables, columns, reason codes and their SQL predicates, the input
mapping and date formats, for DuckDB and Spark alike."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ltv_pipeline import settings

RAW_SCHEMA = "raw"
QUARANTINE_TABLE = "quarantine"


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
    #: Typed column -> which rule types it (a key of :data:`NATIVE_KINDS`), for the columns
    #: a typed Parquet value can skip the text of (:func:`native_typed`).
    kinds: dict[str, str] = field(default_factory=dict)

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
        # (ltv_pipeline.ingest.spark.register_functions) under this name
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

    def kinds(table: str, **by_column: str) -> dict[str, str]:
        # a date in another format than ISO is read as text only: its pattern might match
        # the text of a typed value in a way ISO does not
        iso = mapping.table(table).date_format == "iso"
        return {c: k for c, k in by_column.items() if iso or k not in ("date", "timestamp")}

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
            kinds=kinds("customers", customer_id="id", signup_date="date"),
            **where("customers"),
            rules=(
                *id_rules("customer_id"),
                # the typed email is the trimmed text: trimming it again for this rule took
                # 0.24 s of a 4.2M-customer load
                Rule(
                    "invalid_email",
                    f"{not_blank('email')} and {t('email')} not like '%_@_%'",
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
            kinds=kinds(
                "orders",
                order_id="id",
                customer_id="id",
                ordered_at="timestamp",
                amount="money",
                cost="money",
            ),
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
            kinds=kinds("marketing_spend", date="date", spend="money"),
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


#: The rules as DuckDB runs them (:mod:`ltv_pipeline.ingest.duckdb`).
TABLES: dict[str, RawTable] = raw_tables(DUCKDB)


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


#: The DuckDB types of a Parquet column each kind of typed column can be read from without its
#: text (:func:`native_typed`); any other type is cast to text and typed by the text rule.
NATIVE_KINDS: dict[str, frozenset[str]] = {
    "id": frozenset(
        {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
    ),
    "timestamp": frozenset({"TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATE"}),
    "date": frozenset({"DATE"}),
    "money": frozenset({"DOUBLE", "BIGINT", "INTEGER", "SMALLINT"}),
}


def native_typed(kind: str, value: str, source_type: str, text_typed: str) -> str | None:
    """DuckDB SQL typing a typed Parquet value as the text rule types its text, or None.

    The loader's rules read every column as text, so one set of rules serves CSV and Parquet
    alike; for a column Parquet already types, that means printing each value and parsing it
    back (at 10M orders, 3.4 s of the 5.8 s the orders' typing query takes). Here ``value``
    (a column of DuckDB type ``source_type``) is typed directly, to exactly what
    ``text_typed``, the text rule, gives for ``cast(value as varchar)``: where the two could
    differ (a year outside 1000-9999, money of 1e13 or more, not finite) the text rule
    decides. Decimals with at most 2 places are typed directly too. Checked value by value
    against the text rule (tests/unit/test_ingest_native.py).

    Parameters
    ----------
    kind
        ``id``, ``timestamp``, ``date`` or ``money``: the rule that types the column.
    value
        The native column, quoted.
    source_type
        Its DuckDB type, as ``describe`` gives it.
    text_typed
        The text rule's SQL over the column's text, the fallback.
    """
    source_type = source_type.upper()
    decimal = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", source_type.replace(" ", ""))
    if kind == "money" and decimal and int(decimal.group(2)) <= MONEY_SCALE:
        return f"try_cast({value} as decimal(18, {MONEY_SCALE}))"
    if source_type not in NATIVE_KINDS.get(kind, frozenset()):
        return None
    if kind == "id":
        # the text of a positive integer is digits only; 0 and negatives fail the id rule
        return f"case when {value} > 0 then try_cast({value} as bigint) end"
    if kind == "money":
        if source_type != "DOUBLE":
            return f"try_cast({value} as decimal(18, {MONEY_SCALE}))"
        # below 1e13 a double's shortest text has at most 2 decimals iff it is the double
        # nearest some number of cents, i.e. iff round(x * 100) / 100 = x
        return (
            f"case when isfinite({value}) and abs({value}) < 1e13 then "
            f"case when round({value} * 100) / 100 = {value} "
            f"then cast({value} as decimal(18, {MONEY_SCALE})) end "
            f"else {text_typed} end"
        )
    in_range = f"year({value}) between 1000 and 9999"
    if kind == "timestamp":
        # a timestamp without a zone is UTC, as its text is read (the session is in UTC)
        typed = f"timezone('UTC', cast({value} as timestamptz))"
        return f"case when {in_range} then {typed} else {text_typed} end"
    return f"case when {in_range} then {value} else {text_typed} end"


def typed_query(table: RawTable, source: str, native: dict[str, str] | None = None) -> str:
    """Type each row once, then give it the first row rule it breaks (``row_reason``); in the
    table's dialect, so both engines run this same query. ``native`` gives, for some typed
    columns, SQL typing them from native values instead (:func:`native_typed`)."""
    d = table.dialect
    native = native or {}
    raw_columns = ", ".join(
        [d.q(c) for c in table.columns if c not in native] + [d.q(f"n_{c}") for c in native]
    )
    exprs = {**table.typed, **native}
    typed = ", ".join(
        f"{_printed_where_read(expr, native, d)} as {d.t(name)}" for name, expr in exprs.items()
    )
    cases = " ".join(
        f"when {_printed_where_read(_natively_blank(rule.predicate, native, d), native, d)} "
        f"then '{rule.reason}'"
        for rule in table.row_rules
    )
    content = ", ".join(d.t(name) for name in table.typed)
    return (
        f"with src as ({source}), typed as (select source_file, source_line, {raw_columns}, "
        f"{typed} from src) select *, case {cases} end as row_reason, "
        f"{d.row_hash(content)} as content_hash from typed"
    )


def _natively_blank(predicate: str, native: Mapping[str, str], d: Dialect) -> str:
    """``predicate`` with each blank test of a natively typed column made on its native value.

    The text of such a column is its number, date or timestamp printed, never empty or
    spaces, so it is blank exactly when the native value is null; testing that spares
    printing every row's value (at 10M orders, 1.7 s of the 5.7 s the orders' query takes).
    """
    for column in native:
        native_value = d.q(f"n_{column}")
        predicate = predicate.replace(d.not_blank(column), f"{native_value} is not null")
        predicate = predicate.replace(d.blank(column), f"{native_value} is null")
    return predicate


def _printed_where_read(sql: str, native: Mapping[str, str], d: Dialect) -> str:
    """``sql`` reading the text of each natively typed column as its native value printed,
    in place, rather than from a column of the source.

    A rule reads that text only where the native value cannot decide (a year outside
    1000-9999, money not a whole number of cents, a null), inside a ``case`` branch or after
    an ``and``, which DuckDB evaluates for the rows reaching it. A text column in the source
    was printed for every row: at 10M orders 1.3 s of the 3.2 s the orders' query takes. The
    text is the same, ``cast(value as varchar)`` of the same value.
    """
    for column in native:
        sql = sql.replace(d.q(column), f"cast({d.q(f'n_{column}')} as varchar)")
    return sql


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
