"""Raw ingestion: the shop's files into DuckDB schema ``raw``, bad rows into quarantine."""

import dagster as dg
from pydantic import Field

from ltv_pipeline.defs.dbt import documented_columns
from ltv_pipeline.defs.resources import RawFiles
from ltv_pipeline.ingest import (
    LOAD_ORDER,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    TableLoad,
    count_input_rows,
    find_files,
    ignored_files,
)
from ltv_pipeline.warehouse.base import Warehouse

RAW_GROUP = "raw"
RAW_DESCRIPTIONS = {
    "customers": "One row per customer from the raw drop, typed; bad rows are quarantined.",
    "orders": "One row per order (any status) from the raw drop, typed; timestamps in UTC.",
    "marketing_spend": "One row per day and channel of marketing spend from the raw drop.",
    QUARANTINE_TABLE: "One row per rejected input row: source file, line, reason, raw record.",
}


class RawLoadConfig(dg.Config):
    """Raw load options."""

    full_refresh: bool = Field(
        default=False,
        description="Read every file again instead of only new and changed ones.",
    )


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([RAW_SCHEMA, table])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            raw_key(name),
            description=RAW_DESCRIPTIONS[name],
            group_name=RAW_GROUP,
            kinds={"duckdb", "python"},
            metadata=documented_columns(name),
        )
        for name in (*LOAD_ORDER, QUARANTINE_TABLE)
    ],
    can_subset=False,
)
def raw_tables(
    context: dg.AssetExecutionContext,
    config: RawLoadConfig,
    warehouse: Warehouse,
    raw_files: RawFiles,
):
    """Load new and changed raw files in one transaction; a bad file leaves the last load."""
    restored = warehouse.begin_night()
    if restored:
        context.log.warning(
            f"the last night was not published: {warehouse.location()} is back at the last good "
            "night before this load"
        )
    report = warehouse.load_raw(
        raw_files.path,
        currency=raw_files.currency,
        log=context.log.info,
        full_refresh=config.full_refresh,
        mapping=raw_files.mapping(),
        max_quarantine_share=raw_files.max_quarantine_share,
        earliest_date=raw_files.earliest,
    )
    if report.ignored:
        context.log.warning(
            f"{len(report.ignored)} file(s) in {raw_files.path} match no table and were not "
            f"read: {', '.join(report.ignored)}"
        )
    ignored = ", ".join(report.ignored) or "none"
    for name, table in report.tables.items():
        yield dg.MaterializeResult(
            asset_key=raw_key(name),
            metadata={
                "dagster/row_count": table.rows_loaded,
                "rows_in": table.rows_in,
                "rows_quarantined": table.rows_quarantined,
                "files": ", ".join(table.files),
                "files_read": ", ".join(table.files_read) or "none (no new or changed file)",
                "rows_read": table.rows_read,
                "quarantine_by_reason": quarantine_by_reason({name: table}),
                "files_ignored": ignored,
                "restored_last_good_night": restored,
            },
        )
    yield dg.MaterializeResult(
        asset_key=raw_key(QUARANTINE_TABLE),
        metadata={
            "dagster/row_count": report.rows_quarantined,
            "by_reason": quarantine_by_reason(report.tables),
            "files_ignored": dg.MetadataValue.json(report.ignored),
        },
    )


QUARANTINE_REASON_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("table", "string", description="The raw table the row was meant for."),
        dg.TableColumn("reason", "string", description="Why it was held (raw.quarantine.reason)."),
        dg.TableColumn("rows", "int", description="Rows held for that reason."),
    ]
)


def quarantine_by_reason(tables: dict[str, TableLoad]) -> dg.TableMetadataValue:
    """The rows held in quarantine, one line per table and reason, the largest first."""
    lines = sorted(
        ((name, reason, rows) for name, t in tables.items() for reason, rows in t.reasons.items()),
        key=lambda line: (-line[2], line[0], line[1]),
    )
    return dg.MetadataValue.table(
        [dg.TableRecord({"table": n, "reason": r, "rows": int(k)}) for n, r, k in lines],
        schema=QUARANTINE_REASON_SCHEMA,
    )


def _rows_reconcile_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(table),
        name=f"{table}_rows_reconcile",
        blocking=True,
        description=f"Rows in the {table} files = rows loaded + rows quarantined.",
    )
    def _check(warehouse: Warehouse, raw_files: RawFiles) -> dg.AssetCheckResult:
        files = find_files(raw_files.path, table)
        rows_in = sum(count_input_rows(path) for path in files)
        # table is one of LOAD_ORDER's names, not input
        with warehouse.session() as db:
            (loaded,) = db.row(f"select count(*) from {RAW_SCHEMA}.{table}")
            (held,) = db.row(
                f"select count(*) from {RAW_SCHEMA}.{QUARANTINE_TABLE} "
                f"where source_table = '{table}'"
            )
        return dg.AssetCheckResult(
            passed=rows_in == loaded + held,
            metadata={
                "rows_in": rows_in,
                "rows_loaded": loaded,
                "rows_quarantined": held,
                "difference": rows_in - loaded - held,
            },
        )

    return _check


@dg.asset_check(
    asset=raw_key(QUARANTINE_TABLE),
    name="no_raw_file_ignored",
    description="Every file in the raw folder is read by a table (none is passed over).",
)
def no_raw_file_ignored(raw_files: RawFiles) -> dg.AssetCheckResult:
    """Warn (not block) about files no table reads: a misnamed export (``orders.xlsx``,
    ``orders/2026-07.tsv``) would otherwise be skipped without a word while the as-of date
    moves past its days; a stray note must not stop the night."""
    ignored = ignored_files(raw_files.path)
    return dg.AssetCheckResult(
        passed=not ignored,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(ignored)} file(s) match no table and were not read: {', '.join(ignored)}"
            if ignored
            else "every file was read"
        ),
        metadata={"files_ignored": dg.MetadataValue.json(ignored)},
    )


raw_checks = [*(_rows_reconcile_check(table) for table in LOAD_ORDER), no_raw_file_ignored]
