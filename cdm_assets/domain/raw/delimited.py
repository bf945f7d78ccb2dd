"""Read a delimited (CSV) file into rows and rejects without losing a row.

Records are found from the physical lines first (`lines.py`), not by the
parser: a line is a record, unless a quoted field opened on it closes on a
later line and the lines so joined read as one row of the header's width.
A quote that never closes, or whose "record" would swallow two or more
lines that read as whole rows by themselves, is a stray quote: that line
alone is quarantined and reading resumes on the next line. So one stray quote costs
one row, never the rest of the file.

Most files need none of that: pyarrow's CSV parser reads the whole body and
finds exactly one record per physical line. Only when it finds fewer (a
field spans lines, a quote ran on) or the file holds invalid UTF-8 are the
records found line by line; then the plain lines still go to pyarrow in one
piece, and the few records that span lines or hold invalid UTF-8 are read
with Python's csv module. Every value stays bytes here; empty fields are
NULL, text such as `NA` or `NULL` stays text.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from cdm_assets.domain.raw.landed import LandedFile, LandingError, Reject
from cdm_assets.domain.raw.lines import Lines, printable, read_lines
from cdm_assets.domain.sql import check_column_name

_BLOCK_SIZE = 1 << 24
_BOM = b"\xef\xbb\xbf"


def read_delimited(path: Path, delimiter: str, encoding: str) -> LandedFile:
    """Read a CSV file with a header row; columns stay bytes."""
    try:
        everything = read_lines(path.read_bytes(), encoding)
    except OSError as error:
        raise LandingError(f"{path}: cannot be read: {error}") from None
    header = _header(path, everything, delimiter, encoding)
    lines = everything.without_first(1)
    whole = _parse_every_line(lines, header, delimiter)
    if whole is not None:
        return LandedFile(path, whole[0], whole[1], rows_in=int((~lines.blank()).sum()))
    try:
        plan, rejects, fast = _parse(path, lines, header, delimiter, strict=False)
    except _Disagreement:  # a quote inside a field: follow the quotes line by line
        plan, rejects, fast = _parse(path, lines, header, delimiter, strict=True)
    slow = _parse_slow_records(lines, plan, header, delimiter, rejects)
    rows = pa.concat_tables([fast, slow]) if slow.num_rows else fast
    return LandedFile(path, rows, rejects, rows_in=plan.records)


def _parse_every_line(lines: Lines, header: list[str], delimiter: str) -> tuple[pa.Table, list[Reject]] | None:
    """Most files: the parser reads the whole body at once and finds exactly one
    record per physical line, so no field spans lines and no quote ran on.
    None when it does not (the records are then found line by line)."""
    rejects: list[Reject] = []
    if len(lines.undecodable()):  # the parser cannot report a malformed row that is not UTF-8
        return None
    try:
        table = _read_csv(lines.select(np.ones(len(lines), dtype=bool)), header, delimiter, rejects, None)
    except pa.ArrowInvalid:
        return None
    if table.num_rows + len(rejects) != len(lines):
        return None
    numbers = np.arange(1, len(lines) + 1, dtype=np.int64)
    accepted = np.ones(len(lines), dtype=bool)
    accepted[[r.row_number - 1 for r in rejects]] = False
    table = table.append_column("_row_number", pa.array(numbers[accepted], type=pa.int64()))
    blank = lines.blank()
    if blank.any():  # an empty line carries no record
        table = table.filter(pa.array(~blank[accepted]))
    return table, rejects


def _read_csv(
    body: bytes, header: list[str], delimiter: str, rejects: list[Reject], numbers: np.ndarray | None
) -> pa.Table:
    """pyarrow's CSV parser over `body`, every value as bytes; rows it cannot split go to
    `rejects`, numbered by `numbers` (the k-th record's number), else by their place."""

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        rejects.append(
            Reject(
                row_number=int(numbers[row.number - 1]) if numbers is not None else row.number,
                reason=f"malformed CSV row: expected {row.expected_columns} columns, found {row.actual_columns}",
                raw=row.text,
            )
        )
        return "skip"

    return pa_csv.read_csv(
        pa.BufferReader(body),
        read_options=pa_csv.ReadOptions(use_threads=False, block_size=_BLOCK_SIZE, column_names=header),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid_row
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.binary() for name in header},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


class _Disagreement(Exception):
    """The CSV parser read the plain lines as another number of records."""


def _parse(path: Path, lines: Lines, header: list[str], delimiter: str, strict: bool):
    plan = _plan_records(lines, delimiter, len(header), strict)
    reason = "unterminated quote: a quoted field opened in this row is never closed"
    rejects = [Reject(int(plan.numbers[i]), reason, printable(lines.line(i))) for i in plan.unterminated]
    return plan, rejects, _parse_plain_lines(path, lines, plan, header, delimiter, rejects, strict)


class _Plan:
    """Which physical lines are what: plain records, records read in Python, stray quotes."""

    def __init__(self, lines: Lines):
        count = len(lines)
        self.blank = lines.blank()
        self.continuation = np.zeros(count, dtype=bool)  # a later line of a multi-line record
        self.slow: list[tuple[int, int]] = []  # (first line, last line) of records read in Python
        self.unterminated: list[int] = []
        self.numbers = np.zeros(count, dtype=np.int64)

    def finish(self) -> None:
        # A record's number: its place among records and blank lines (what an
        # editor shows, minus the header, when no field spans lines).
        self.numbers = np.cumsum(~self.continuation)
        self.plain = ~(self.blank | self.continuation)
        for first, _ in self.slow:
            self.plain[first] = False
        self.plain[self.unterminated] = False
        self.records = int((~(self.blank | self.continuation)).sum())


def _plan_records(lines: Lines, delimiter: str, width: int, strict: bool = False) -> _Plan:
    """Find the records. A quoted field can only span lines from a line with an
    odd number of quotes, to the next such line: checking just those lines is
    fast and right for every well-formed file. `strict` follows the quotes
    through every line that holds one, for files where a quote in the middle of
    a field (`5'11"`) upsets that count."""
    plan = _Plan(lines)
    counts = lines.quote_counts()
    quoted = np.flatnonzero(counts > 0) if strict else np.flatnonzero(counts % 2 == 1)
    position = 0
    while position < len(quoted):
        first = int(quoted[position])
        position += 1
        if plan.continuation[first] or not _ends_inside_quotes(lines.line(first), delimiter):
            continue
        last = (
            _closing_line(lines, quoted, position, delimiter)
            if strict
            else (int(quoted[position]) if position < len(quoted) else None)
        )
        if last is not None and _is_one_record(lines, first, last, delimiter, width):
            plan.continuation[first + 1 : last + 1] = True
            plan.slow.append((first, last))
            position = int(np.searchsorted(quoted, last, side="right"))
        else:
            plan.unterminated.append(first)
    taken = {first for first, _ in plan.slow} | set(plan.unterminated)
    for index in lines.undecodable():
        if not plan.continuation[index] and int(index) not in taken and not plan.blank[index]:
            plan.slow.append((int(index), int(index)))
    plan.finish()
    return plan


def _closing_line(lines: Lines, quoted: np.ndarray, position: int, delimiter: str) -> int | None:
    """The first line from `quoted[position]` on where a field open since an earlier line ends
    (lines without a quote cannot end it)."""
    for index in quoted[position:]:
        if not _ends_inside_quotes(lines.line(int(index)), delimiter, inside=True):
            return int(index)
    return None


def _is_one_record(lines: Lines, first: int, last: int, delimiter: str, width: int) -> bool:
    """Lines `first`..`last` are one record: together they read as one row of
    `width` fields, and read line by line they would not give more rows (the
    lines after the first hold at most one that reads as a whole row). Else
    the opening quote was a stray one that swallows rows."""
    if len(_fields(lines.span(first, last), delimiter)) != width:
        return False
    whole_rows = 0
    for index in range(first + 1, last + 1):
        whole_rows += len(_fields(lines.line(index), delimiter)) == width
        if whole_rows > 1:
            return False
    return True


def _fields(text: bytes, delimiter: str) -> list[str]:
    """The fields of one record's text; [] when it is not one record."""
    try:
        rows = list(csv.reader([text.decode("utf-8", errors="surrogateescape")], delimiter=delimiter, strict=False))
    except csv.Error:
        return []
    return rows[0] if len(rows) == 1 else []


def _ends_inside_quotes(line: bytes, delimiter: str, inside: bool = False) -> bool:
    """Whether a quote opened at the start of a field is still open at the end of the line
    (`inside`: the line starts within a quoted field)."""
    field_start, previous_quote = not inside, False
    sep = delimiter.encode()[0]
    for byte in line:
        if inside:
            if byte == 34:
                previous_quote = not previous_quote
            elif previous_quote:
                inside, previous_quote = False, False
                field_start = byte == sep
            continue
        if byte == 34 and field_start:
            inside, previous_quote = True, False
        field_start = byte == sep
    return inside and not previous_quote


def _parse_plain_lines(
    path: Path, lines: Lines, plan: _Plan, header: list[str], delimiter: str, rejects: list[Reject], strict: bool
) -> pa.Table:
    """One record per line, by pyarrow; rejects are numbered like the file's records."""
    numbers = plan.numbers[plan.plain]
    before = len(rejects)
    if not numbers.size:
        return _empty_rows(header)
    try:
        table = _read_csv(lines.select(plan.plain), header, delimiter, rejects, numbers)
    except pa.ArrowInvalid as error:
        raise LandingError(f"{path}: cannot be read: {error}") from None
    rejected = {r.row_number for r in rejects[before:]}
    kept = np.array([n for n in numbers if n not in rejected], dtype=np.int64) if rejected else numbers
    if len(kept) != table.num_rows and not strict:
        raise _Disagreement()
    if len(kept) != table.num_rows:  # the parser must see exactly the records found above
        raise LandingError(f"{path}: the CSV parser read {table.num_rows} rows where {len(kept)} were expected")
    return table.append_column("_row_number", pa.array(kept, type=pa.int64()))


def _parse_slow_records(
    lines: Lines, plan: _Plan, header: list[str], delimiter: str, rejects: list[Reject]
) -> pa.Table:
    """Records that span lines or hold invalid UTF-8, read by Python's csv module."""
    columns: list[list[bytes | None]] = [[] for _ in header]
    numbers = []
    for first, last in sorted(plan.slow):
        text = lines.span(first, last)
        fields = _fields(text, delimiter)
        number = int(plan.numbers[first])
        if len(fields) != len(header):
            reason = f"malformed CSV row: expected {len(header)} columns, found {len(fields)}"
            rejects.append(Reject(number, reason, printable(text)))
            continue
        for values, value in zip(columns, fields):
            values.append(value.encode("utf-8", errors="surrogateescape") if value else None)
        numbers.append(number)
    arrays = [pa.array(values, type=pa.binary()) for values in columns]
    return pa.table([*arrays, pa.array(numbers, type=pa.int64())], names=[*header, "_row_number"])


def _empty_rows(header: list[str]) -> pa.Table:
    return pa.table(
        [*(pa.array([], type=pa.binary()) for _ in header), pa.array([], type=pa.int64())],
        names=[*header, "_row_number"],
    )


def _header(path: Path, lines: Lines, delimiter: str, encoding: str) -> list[str]:
    """The column names in the first line; a byte-order mark before them is not part of the name."""
    if not len(lines) or not lines.line(0).strip():
        raise LandingError(f"{path}: file is empty; expected a header row")
    first = lines.line(0).removeprefix(_BOM)
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LandingError(f"{path}: header row is not valid {encoding}: {error}") from None
    names = next(csv.reader([text], delimiter=delimiter), [])
    for index, name in enumerate(names, start=1):
        try:
            check_column_name(name)
        except ValueError as error:
            raise LandingError(f"{path}: header column {index}: {error}") from None
    folded = [n.casefold() for n in names]
    duplicates = sorted({n for n in names if folded.count(n.casefold()) > 1})
    if duplicates:  # warehouse column names ignore case
        raise LandingError(f"{path}: header repeats column(s) {', '.join(map(repr, duplicates))}")
    return names
