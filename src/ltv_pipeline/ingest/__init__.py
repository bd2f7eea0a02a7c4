"""The raw layer: the shop's files into schema ``raw``, every bad row quarantined with a reason.

:mod:`.rules` holds what both engines share (tables, reason codes and their SQL, the input
mapping, dates); :mod:`.files` which files a table reads and how CSV records are read;
:mod:`.duckdb` the DuckDB loader (incremental, one transaction) and :mod:`.spark` the Spark one.
The names below are the layer's public API.
"""

from ltv_pipeline.ingest.duckdb import load_raw
from ltv_pipeline.ingest.files import (
    count_input_rows,
    csv_batches,
    find_files,
    ignored_files,
    scan_csv_lines,
)
from ltv_pipeline.ingest.rules import (
    DUCKDB,
    LOAD_ORDER,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    SPARK,
    TABLES,
    InputMapping,
    LoadReport,
    RawInputError,
    TableLoad,
    check_has_rows,
    check_quarantine_share,
    raw_tables,
    read_input_mapping,
    reason_codes,
    typed_query,
    use_utc,
)

__all__ = [
    "DUCKDB",
    "LOAD_ORDER",
    "QUARANTINE_TABLE",
    "RAW_SCHEMA",
    "SPARK",
    "TABLES",
    "InputMapping",
    "LoadReport",
    "RawInputError",
    "TableLoad",
    "check_has_rows",
    "check_quarantine_share",
    "count_input_rows",
    "csv_batches",
    "find_files",
    "ignored_files",
    "load_raw",
    "raw_tables",
    "read_input_mapping",
    "reason_codes",
    "scan_csv_lines",
    "typed_query",
    "use_utc",
]
