"""Read one landed file into rows and rejects, without losing anything.

CSV and JSON lines are read by pyarrow's single-threaded CSV parser with
every value kept as bytes: it reports each malformed row (with its number
and text) instead of dropping it, and keeps invalid UTF-8 for the warehouse
to flag per column. Parquet is typed and read by DuckDB directly.

Every file yields a `LandedFile`: an Arrow table of the rows that parsed,
each with `_row_number` (the data row in the file, header excluded, blank
lines counted so the number matches what an editor shows minus the header),
and the rejects the parser found.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from cdm_assets.config.model import check_column_name

# JSON lines are split on newlines only: this delimiter never occurs in valid
# JSON (control characters must be escaped), so a line that contains it is
# malformed anyway and the parser reports it.
JSONL_LINE_COLUMN = "_line"
_UNIT_SEPARATOR = "\x1f"
_BLOCK_SIZE = 1 << 24


class LandingError(ValueError):
    """A landed file cannot be read at all (the message names the file)."""


@dataclass(frozen=True)
class Reject:
    """One input row that could not be accepted, and why."""

    row_number: int
    reason: str
    raw: str
    column: str | None = None


@dataclass
class LandedFile:
    path: Path
    rows: pa.Table  # source columns (binary) + _row_number
    rejects: list[Reject] = field(default_factory=list)


def read_delimited(path: Path, delimiter: str, encoding: str) -> LandedFile:
    """Read a CSV file with a header row; columns stay bytes."""
    header = _read_header(path, delimiter, encoding)
    rejects: list[Reject] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        rejects.append(
            Reject(
                row_number=row.number - 1,  # the parser counts the header as record 1
                reason=f"malformed CSV row: expected {row.expected_columns} columns, found {row.actual_columns}",
                raw=row.text,
            )
        )
        return "skip"

    table = _read(
        path,
        read_options=pa_csv.ReadOptions(
            use_threads=False, encoding=encoding, block_size=_BLOCK_SIZE, column_names=header, skip_rows=1
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter,
            newlines_in_values=True,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid_row,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.binary() for name in header}, strings_can_be_null=True, quoted_strings_can_be_null=True
        ),
    )
    # With the header skipped, the handler numbers data records from 1.
    return LandedFile(path, _with_row_numbers(table, rejects), rejects)


def read_json_lines(path: Path, encoding: str) -> LandedFile:
    """Read JSON lines as one bytes column `_line`; parsing happens in SQL."""
    rejects: list[Reject] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        rejects.append(Reject(row.number, "malformed JSON: control character in line", row.text))
        return "skip"

    table = _read(
        path,
        read_options=pa_csv.ReadOptions(
            use_threads=False, encoding=encoding, block_size=_BLOCK_SIZE, column_names=[JSONL_LINE_COLUMN]
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=_UNIT_SEPARATOR,
            quote_char=False,
            double_quote=False,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid_row,
        ),
        convert_options=pa_csv.ConvertOptions(column_types={JSONL_LINE_COLUMN: pa.binary()}),
    )
    return LandedFile(path, _with_row_numbers(table, rejects), rejects)


def _read(path: Path, **options) -> pa.Table:
    try:
        return pa_csv.read_csv(path, **options)
    except pa.ArrowInvalid as error:
        raise LandingError(f"{path}: cannot be read: {error}") from None


def _read_header(path: Path, delimiter: str, encoding: str) -> list[str]:
    try:
        with path.open("rb") as handle:
            first_line = handle.readline().decode(encoding)
        names = next(csv.reader([first_line.rstrip("\r\n")], delimiter=delimiter), None)
    except UnicodeDecodeError as error:
        raise LandingError(f"{path}: header row is not valid {encoding}: {error}") from None
    if not names:
        raise LandingError(f"{path}: file is empty; expected a header row")
    names = [name.lstrip("\ufeff") if i == 0 else name for i, name in enumerate(names)]
    for index, name in enumerate(names, start=1):
        try:
            check_column_name(name)
        except ValueError as error:
            raise LandingError(f"{path}: header column {index}: {error}") from None
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LandingError(f"{path}: header repeats column(s) {', '.join(map(repr, duplicates))}")
    return names


def _with_row_numbers(table: pa.Table, rejects: list[Reject]) -> pa.Table:
    """Number the accepted rows, skipping the numbers of rejected ones.

    The parser keeps row order, and rejects carry their own numbers, so the
    k-th accepted row has the k-th number not taken by a reject.
    """
    taken = np.array(sorted(r.row_number for r in rejects), dtype=np.int64)
    total = table.num_rows + len(taken)
    numbers = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), taken, assume_unique=True)
    return table.append_column("_row_number", pa.array(numbers, type=pa.int64()))
