"""The raw drop's files: which files a table reads, their headers, and CSV records read in
batches with their physical line numbers."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ltv_pipeline.ingest.rules import LOAD_ORDER, RawInputError, RawTable

#: What the sample generator writes beside the shop's files (the true parameters and the bad
#: rows it planted): an answer key for tests, not input; the loader does not list them as
#: ignored. Defined here, where it is read, so that loading never imports the generator.
COMPANION_FILES = ("truth.json", "bad_rows.json")

#: Bytes of CSV text read per batch.
CSV_BLOCK_BYTES = 16 << 20
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
    (:data:`COMPANION_FILES`) are not listed."""
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
