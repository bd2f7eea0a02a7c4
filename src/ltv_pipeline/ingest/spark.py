"""Load raw shop files into Spark database ``raw`` with the same rules as :mod:`.duckdb`.

The rules, their precedence, the key verdicts (``exact_duplicate``, ``conflicting_duplicate``)
and the reference check are :mod:`.rules`', rendered for Spark (``ingest.raw_tables(SPARK)``,
``ingest.typed_query``); on the same files both engines load the same rows and quarantine the
same rows for the same reasons, with the same raw record text (tested).

Differences from the DuckDB loader, and why:

- Every load reads every file (no file watermark): Spark spreads the work over the cluster,
  and a table is rewritten as a whole anyway (Parquet tables without Delta cannot delete rows).
- Parquet files are read by Spark (row numbers from ``_metadata.row_index``). CSV files are
  parsed in the driver by the same pyarrow reader as on DuckDB, since only it gives physical
  line numbers and the text of malformed lines; deliver large histories as Parquet.
- Spark has no transaction over several tables: every file is read and every header checked
  before anything is written, then the four tables are overwritten one after the other.
"""

from __future__ import annotations

import datetime as dt
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
    KEY_REASONS,
    LOAD_ORDER,
    NFC_FUNCTION,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    SPARK,
    InputMapping,
    LoadReport,
    RawInputError,
    RawTable,
    TableLoad,
    check_has_rows,
    check_quarantine_share,
    load_parameters,
    raw_tables,
    typed_query,
)

q, t = SPARK.q, SPARK.t
QUARANTINE_COLUMNS = "source_table string, source_file string, source_line bigint, "
QUARANTINE_COLUMNS += "reason string, record string"


def nfc(text: str | None) -> str | None:
    """``text`` in Unicode normal form C (what DuckDB's ``nfc_normalize`` gives)."""
    return None if text is None else unicodedata.normalize("NFC", text)


def register_functions(spark: Any) -> None:
    """Register on ``spark`` the functions the rules call that Spark SQL lacks (NFC), and make
    its session time zone UTC (a timestamp without an offset is read in it).

    Called by :func:`load_raw_spark`; call it before running :func:`ingest.typed_query` on a
    session of your own. A local session runs the UDF in this Python (PySpark's default is
    the ``python3`` on PATH, which may lack pyarrow and this package); a cluster's workers
    need a Python of their own (``spark.pyspark.python``).
    """
    from pyspark.sql.types import StringType

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    context = spark.sparkContext
    if context.master.startswith("local"):
        context.pythonExec = sys.executable
    spark.udf.register(NFC_FUNCTION, nfc, StringType())


def _as_text(column: str, source: str | None, type_name: str) -> str:
    """A typed Parquet column (``source``; ``None``: absent, null) as the text DuckDB's
    ``cast(... as varchar)`` gives, named ``column``, so both engines keep the same raw record:
    a UTC timestamp carries DuckDB's "+00". (Doubles outside [0.001, 1e7) are written by Spark
    in E-notation, e.g. 1.0E-7 for DuckDB's 1e-07.)"""
    if source is None:
        return f"cast(null as string) as {q(column)}"
    text = f"cast({q(source)} as string)"
    if type_name == "timestamp":
        text = f"concat({text}, '+00')"
    return f"{text} as {q(column)}"


def _source(spark: Any, table: RawTable, files: Sequence[Path], raw_dir: Path) -> tuple[Any, list]:
    """The raw text of ``files`` (one row per record) and the malformed CSV lines."""
    malformed: list[Malformed] = []
    parts = []
    parquet = [p for p in files if is_parquet(p)]
    if parquet:
        # _metadata.file_path is a URI (file:/abs/path): the path relative to raw_dir
        start = len(str(raw_dir.resolve())) + 2
        frame = spark.read.option("mergeSchema", "true").parquet(*(str(p) for p in parquet))
        parts.append(
            frame.selectExpr(
                f"substring(regexp_replace(_metadata.file_path, '^file:/*', '/'), {start}) "
                "as source_file",
                "_metadata.row_index + 1 as source_line",
                *(
                    _as_text(c, src, "" if src is None else frame.schema[src].dataType.typeName())
                    for c, src in table.source_columns.items()
                ),
            )
        )
    batches = []
    for path in (p for p in files if not is_parquet(p)):
        source_file = path.relative_to(raw_dir).as_posix()
        try:
            batches += list(csv_batches(path, table, source_file, malformed))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise RawInputError(f"{path}: cannot be read as CSV ({exc})") from exc
    if batches:
        parts.append(spark.createDataFrame(pa.concat_tables(batches)))
    source = parts[0]
    for part in parts[1:]:
        source = source.unionByName(part)
    return source, malformed


def _record(table: RawTable) -> str:
    """The raw text as a JSON object, as DuckDB's ``to_json(struct_pack(...))`` writes it."""
    fields = ", ".join(f"'{c}', {q(c)}" for c in table.columns)
    return f"to_json(named_struct({fields}), map('ignoreNullFields', 'false'))"


def _load_table(
    spark: Any, table: RawTable, files: Sequence[Path], raw_dir: Path, params: dict
) -> tuple[Any, Any, Any]:
    """(clean rows, quarantined rows, typed rows) of one table, as Spark DataFrames (not yet
    written; the clean and typed ones are cached until the load ends)."""
    source, malformed = _source(spark, table, files, raw_dir)
    source.createOrReplaceTempView(f"_src_{table.name}")
    query = typed_query(table, f"select * from _src_{table.name}")
    used = {k: v for k, v in params.items() if f":{k}" in query}
    typed = spark.sql(query, args=used).cache()
    typed.createOrReplaceTempView(f"_typed_{table.name}")
    keys = ", ".join(t(k) for k in table.key)
    key_match = " and ".join(f"r.{t(k)} = k.{t(k)}" for k in table.key)
    reference_join, reference_case = "", ""
    if table.reference is not None:
        ref = table.reference
        reference_join = (
            f"left join _clean_{ref.table} as ref on r.{t(ref.column)} = ref.{q(ref.target_column)}"
        )
        reference_case = ref.verdicts(SPARK, "r", "ref")
    conflicting, exact = KEY_REASONS
    checked = spark.sql(
        f"""
        with good as (select * from _typed_{table.name} where row_reason is null),
        per_key as (
            select {keys}, min(content_hash) as min_hash, max(content_hash) as max_hash,
                min(struct(source_file, source_line)) as first_copy
            from good group by {keys}
        )
        select r.*,
            case
                when k.min_hash <> k.max_hash then '{conflicting}'
                when struct(r.source_file, r.source_line) <> k.first_copy then '{exact}'
                {reference_case}
            end as key_reason
        from good as r
        join per_key as k on {key_match}
        {reference_join}
        """
    )
    checked.createOrReplaceTempView(f"_checked_{table.name}")
    columns = ", ".join(f"{t(name)} as {q(name)}" for name in table.typed)
    clean = spark.sql(
        f"select {columns} from _checked_{table.name} where key_reason is null "
        "order by source_file, source_line"
    ).cache()
    clean.createOrReplaceTempView(f"_clean_{table.name}")
    held = spark.sql(
        f"""
        select '{table.name}' as source_table, h.source_file, h.source_line, h.reason,
            {_record(table)} as record
        from (
            select source_file, source_line, row_reason as reason from _typed_{table.name}
            where row_reason is not null
            union all
            select source_file, source_line, key_reason from _checked_{table.name}
            where key_reason is not null
        ) as h
        join _src_{table.name} as s
            on s.source_file = h.source_file and s.source_line = h.source_line
        """
    )
    if malformed:
        rows = [
            (table.name, m.source_file, m.source_line, "malformed_line", m.text) for m in malformed
        ]
        held = held.unionByName(spark.createDataFrame(rows, QUARANTINE_COLUMNS))
    return clean, held, typed


def _check_share(name: str, clean: Any, held: Any, max_share: float, files: Sequence[str]) -> None:
    """:func:`ltv_pipeline.ingest.check_quarantine_share` and
    :func:`ltv_pipeline.ingest.check_has_rows` before anything is written."""
    from pyspark.sql import functions as sf

    reasons = {r["reason"]: int(r["count"]) for r in held.groupBy("reason").count().collect()}

    def examples(wanted: list[str]) -> dict[str, tuple[str, int, str]]:
        first = sf.min(sf.struct("source_file", "source_line", "record")).alias("first")
        rows = held.where(held.reason.isin(wanted)).groupBy("reason").agg(first).collect()
        return {r["reason"]: (r["first"][0], int(r["first"][1]), r["first"][2]) for r in rows}

    loaded = clean.count()
    check_quarantine_share(name, loaded, reasons, max_share, examples)
    check_has_rows(name, loaded, sum(reasons.values()), files)


def load_raw_spark(
    spark: Any,
    raw_dir: Path,
    *,
    currency: str = "USD",
    load_time: dt.datetime | None = None,
    log: Callable[[str], None] | None = None,
    mapping: InputMapping | None = None,
    max_quarantine_share: float = settings.DEFAULT_MAX_QUARANTINE_SHARE,
    earliest_date: dt.date = settings.DEFAULT_EARLIEST_DATE,
) -> LoadReport:
    """Replace the ``raw`` tables with the rows of every file in ``raw_dir``.

    Parameters and result as :func:`ltv_pipeline.ingest.load_raw` (no ``full_refresh``: every
    load reads everything); ``spark``'s session time zone is set to UTC.

    Raises
    ------
    RawInputError
        A file is missing, empty, not a CSV/Parquet file or has a wrong header, or too large a
        share of a table's rows would be quarantined; nothing was written.
    """
    say = log or (lambda _msg: None)
    params = load_parameters(currency, load_time, earliest_date)
    tables = raw_tables(SPARK, mapping)
    register_functions(spark)
    files = input_files(raw_dir, tables)
    report = LoadReport(
        load_time=params["load_time"],
        tables={
            name: TableLoad(
                name,
                [p.relative_to(raw_dir).as_posix() for p in files[name]],
                files_read=[p.relative_to(raw_dir).as_posix() for p in files[name]],
            )
            for name in LOAD_ORDER
        },
    )
    report.ignored = ignored_files(raw_dir)
    if report.ignored:
        say(f"ignored {len(report.ignored)} file(s) no table reads: {', '.join(report.ignored)}")
    results = {}
    for name in LOAD_ORDER:
        say(f"{name}: reading {len(files[name])} file(s) with Spark")
        results[name] = _load_table(spark, tables[name], files[name], raw_dir, params)
    for name in LOAD_ORDER:
        _check_share(name, *results[name][:2], max_quarantine_share, report.tables[name].files)
    spark.sql(f"create database if not exists {RAW_SCHEMA}")
    quarantine = None
    for name in LOAD_ORDER:
        clean, held, _ = results[name]
        clean.write.mode("overwrite").format("parquet").saveAsTable(f"{RAW_SCHEMA}.{q(name)}")
        quarantine = held if quarantine is None else quarantine.unionByName(held)
    assert quarantine is not None
    quarantine.orderBy("source_table", "source_file", "source_line").write.mode("overwrite").format(
        "parquet"
    ).saveAsTable(f"{RAW_SCHEMA}.{QUARANTINE_TABLE}")
    for name in LOAD_ORDER:
        entry = report.tables[name]
        entry.rows_loaded = spark.table(f"{RAW_SCHEMA}.{q(name)}").count()
    counts = spark.sql(
        f"select source_table, reason, count(*) as n from {RAW_SCHEMA}.{QUARANTINE_TABLE} "
        "group by source_table, reason"
    ).collect()
    for source_table, reason, n in counts:
        entry = report.tables[source_table]
        entry.reasons[reason] = int(n)
        entry.rows_quarantined += int(n)
    for entry in report.tables.values():
        entry.rows_in = entry.rows_read = entry.rows_loaded + entry.rows_quarantined
    for name in LOAD_ORDER:
        for frame in (results[name][0], results[name][2]):
            frame.unpersist()
        for view in ("_src", "_typed", "_checked", "_clean"):
            spark.catalog.dropTempView(f"{view}_{name}")
    say(f"loaded {report.rows_loaded:,} rows, quarantined {report.rows_quarantined:,}")
    return report
