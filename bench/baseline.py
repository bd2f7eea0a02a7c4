"""The hand-written baseline of issue 18: ``bench/baseline.sql`` on the raw files, in one DuckDB.

Run::

    .venv/bin/python bench/baseline.py --raw DIR [--out FILE.duckdb] [--as-of-date YYYY-MM-DD]
        [--var churn_inactivity_days=180 ...] [--load-time 2026-06-30T02:00:00]

The raw folder is laid out as the pipeline reads it: ``customers``, ``orders`` and
``marketing_spend``, each as ``<name>.csv``, ``<name>.csv.gz`` or ``<name>.parquet``, or such
files under ``<name>/`` (one format per table). The marts land in schema ``baseline`` of
``--out`` (in memory without it); the wall time of the script is printed. Pure Python and
DuckDB: no Dagster, no dbt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

SCRIPT = Path(__file__).with_name("baseline.sql")
TABLES = ("customers", "orders", "marketing_spend")
SUFFIXES = (".csv.gz", ".csv", ".parquet")
#: The dbt vars the marts use and their allowed ranges, as the project's macros check them:
#: (min, max, integer). Their defaults are read from ``dbt_project.yml``, not copied.
VARS: dict[str, tuple[float, float, bool]] = {
    "default_margin_rate": (0, 1, False),
    "churn_inactivity_days": (31, 3650, True),
    "ltv_lookback_months": (1, 120, True),
    "max_lifespan_years": (0.25, 100, False),
    "min_months_beyond_churn_window": (1, 120, True),
    "min_churn_events": (1, 1_000_000, True),
    "max_extrapolated_share": (0, 1, False),
    "ltv_cac_bar": (0, 100, False),
    "discount_rate": (0, 10, False),
    "clv_holdout_days": (1, 3650, True),
}
DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project" / "dbt_project.yml"


def var_defaults() -> dict[str, float]:
    """The defaults of :data:`VARS`, from the dbt project's ``vars:``."""
    project = yaml.safe_load(DBT_PROJECT.read_text())
    return {name: project["vars"][name] for name in VARS}


#: The placeholders of a typed column in the script: (table, column, kind).
TYPED = {
    "c_customer_id": ("customers", "customer_id", "id"),
    "c_signup_date": ("customers", "signup_date", "date"),
    "o_order_id": ("orders", "order_id", "id"),
    "o_customer_id": ("orders", "customer_id", "id"),
    "o_ordered_at": ("orders", "ordered_at", "timestamp"),
    "s_date": ("marketing_spend", "date", "date"),
    "o_amount": ("orders", "amount", "money"),
    "o_cost": ("orders", "cost", "money"),
    "o_cost_blank": ("orders", "cost", "blank"),
    "s_spend": ("marketing_spend", "spend", "money"),
}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_INTEGERS |= {"UBIGINT", "HUGEINT", "UHUGEINT"}


@dataclass
class Run:
    """What a baseline run depends on besides the files.

    Attributes
    ----------
    as_of_date
        "Today" of the marts; ``None`` for the last order date.
    load_time
        "Now" of the future-date rules (naive UTC); ``None`` for the wall clock.
    earliest_date
        Rows dated before it are dropped (``LTV_EARLIEST_DATE``).
    currency
        The shop currency; orders in another are dropped.
    vars
        dbt vars overriding :data:`VARS` defaults.
    """

    as_of_date: dt.date | None = None
    load_time: dt.datetime | None = None
    earliest_date: dt.date = dt.date(2000, 1, 1)
    currency: str = "USD"
    vars: dict[str, float] = field(default_factory=dict)


def table_files(raw: Path, table: str) -> list[Path]:
    """The input files of ``table`` in ``raw``, as the pipeline finds them, sorted."""

    def is_input(path: Path) -> bool:
        name = path.name.lower()
        return path.is_file() and not name.startswith(".") and name.endswith(SUFFIXES)

    found = [p for p in raw.iterdir() if is_input(p) and _stem(p) == table]
    if (raw / table).is_dir():
        found += [p for p in (raw / table).rglob("*") if is_input(p)]
    return sorted(found)


def _stem(path: Path) -> str:
    name = path.name.lower()
    return next(path.name[: -len(s)] for s in SUFFIXES if name.endswith(s))


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def source(raw: Path, table: str) -> tuple[str, bool]:
    """The script's source relation of ``table`` and whether it is Parquet.

    Raises
    ------
    ValueError
        No input file, or CSV and Parquet mixed in one table.
    """
    files = table_files(raw, table)
    if not files:
        raise ValueError(f"no input file for {table} in {raw}")
    parquet = {p.name.lower().endswith(".parquet") for p in files}
    if len(parquet) > 1:
        raise ValueError(f"{table}: CSV and Parquet files mixed; the baseline reads one format")
    if parquet == {True}:
        return f"read_parquet({_sql_list(files)}, union_by_name = true)", True
    return (
        f"read_csv({_sql_list(files)}, all_varchar = true, header = true, delim = ',', "
        "quote = '\"', escape = '\"', ignore_errors = true, union_by_name = true)"
    ), False


def typed_expression(kind: str, column: str, column_type: str | None) -> str:
    """SQL typing one id, date, timestamp or money column as the loader does: directly when
    the Parquet column already has the type (the loader's cast to text and back gives the
    same value), else through the script's text macros."""
    col = f'"{column}"'
    if kind == "money":
        if column_type == "DOUBLE":
            return f"money_double({col})"
        return f"money_text(cast({col} as varchar))"
    if kind == "blank":
        return f"{col} is null" if column_type == "DOUBLE" else f"blank(cast({col} as varchar))"
    if kind == "id":
        if column_type in _INTEGERS:
            return f"case when {col} > 0 then try_cast({col} as bigint) end"
        return f"id_text(cast({col} as varchar))"
    if kind == "timestamp":
        if column_type in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
            return f"case when isfinite({col}) then make_timestamp(epoch_us({col})) end"
        if column_type == "DATE":
            return f"case when isfinite({col}) then cast({col} as timestamp) end"
        return f"utc_text(cast({col} as varchar))"
    if column_type == "DATE":
        return f"case when isfinite({col}) then {col} end"
    return f"date_text(cast({col} as varchar))"


def _literal(name: str, value: float) -> str:
    """A var as the dbt macros render it, after the same range check."""
    low, high, integer = VARS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"var {name} must be a number in [{low}, {high}], got {value!r}")
    if integer and value != int(value):
        raise ValueError(f"var {name} must be an integer, got {value!r}")
    return str(int(value)) if integer else str(value)


def render(raw: Path, run: Run, catalog: str = "memory") -> str:
    """The script with its placeholders filled for ``raw`` and ``run``, writing into schema
    ``baseline`` of database ``catalog``."""
    unknown = set(run.vars) - set(VARS)
    if unknown:
        raise ValueError(f"unknown var(s): {', '.join(sorted(unknown))}")
    values = {name: run.vars.get(name, default) for name, default in var_defaults().items()}
    load_time = run.load_time or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if not re.fullmatch(r"[A-Za-z]{3}", run.currency.strip()):
        raise ValueError(f"currency must be a three-letter code, got {run.currency!r}")
    fill = {name: _literal(name, value) for name, value in values.items()}
    days = int(values["churn_inactivity_days"])
    fill |= {
        "out": '"' + catalog.replace('"', '""') + '".baseline',
        "churn_window_months": str(math.ceil(days / 30.4375)),
        "as_of_date": "null::date" if run.as_of_date is None else f"date '{run.as_of_date}'",
        "load_time": f"timestamp '{load_time.isoformat(sep=' ')}'",
        "load_date": f"date '{load_time.date()}'",
        "earliest_date": f"date '{run.earliest_date}'",
        "currency": f"'{run.currency.strip().upper()}'",
    }
    sources = {t: source(raw, t) for t in TABLES}
    fill |= {
        "customers_source": sources["customers"][0],
        "orders_source": sources["orders"][0],
        "spend_source": sources["marketing_spend"][0],
    }
    types: dict[str, dict[str, str]] = {}
    with duckdb.connect() as con:
        for table, (relation, parquet) in sources.items():
            described = con.execute(f"describe select * from {relation}").fetchall()
            types[table] = {row[0]: row[1] for row in described} if parquet else {}
    for key, (table, column, kind) in TYPED.items():
        fill[key] = typed_expression(kind, column, types[table].get(column))
    script = SCRIPT.read_text()
    for key, value in fill.items():
        script = script.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{\w+\}\}", script)
    if left:
        raise ValueError(f"placeholders left unfilled: {sorted(set(left))}")
    return script


def build(con: duckdb.DuckDBPyConnection, raw: Path, run: Run | None = None) -> float:
    """Run the baseline on ``raw`` into ``con`` (schema ``baseline``); returns wall seconds."""
    (catalog,) = con.execute("select current_database()").fetchone()
    script = render(raw, run or Run(), catalog)
    started = time.perf_counter()
    for statement in con.extract_statements(script):
        try:
            con.execute(statement)
        except duckdb.Error as exc:
            raise RuntimeError(f"{exc}\nin:\n{statement.query[:400]}") from exc
    return time.perf_counter() - started


def _number(text: str) -> float:
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else float(text)


def main(argv: list[str] | None = None) -> None:
    """Command line: build the baseline marts and print the wall time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="the raw folder")
    parser.add_argument("--out", type=Path, help="DuckDB file to write (replaced); default memory")
    parser.add_argument("--as-of-date", type=dt.date.fromisoformat)
    parser.add_argument("--load-time", type=dt.datetime.fromisoformat, help="naive UTC")
    parser.add_argument("--earliest-date", type=dt.date.fromisoformat, default=dt.date(2000, 1, 1))
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--memory-limit")
    args = parser.parse_args(argv)
    dbt_vars = {}
    for item in args.var:
        name, _, value = item.partition("=")
        dbt_vars[name.strip()] = _number(value.strip())
    run = Run(args.as_of_date, args.load_time, args.earliest_date, args.currency, dbt_vars)
    if args.out is not None:
        args.out.unlink(missing_ok=True)
    config = {}
    if args.threads:
        config["threads"] = args.threads
    if args.memory_limit:
        config["memory_limit"] = args.memory_limit
    with duckdb.connect(str(args.out or ":memory:"), config=config) as con:
        seconds = build(con, args.raw, run)
        (db,) = con.execute("select current_database()").fetchone()
        (orders,) = con.execute(f'select count(*) from "{db}".baseline.fct_orders').fetchone()
    print(f"baseline: {orders:,} orders, {seconds:.2f}s wall", file=sys.stdout)
    # the same as one JSON line, for bench/pipeline_bench.py
    print(json.dumps({"seconds": seconds, "orders": orders}), file=sys.stdout)


if __name__ == "__main__":
    main()
