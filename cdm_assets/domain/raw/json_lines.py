"""JSON lines: one object per line, its keys become text columns.

The file is read as one bytes column `_line`, cut at line ends without a
parser (`lines.py`); JSON is parsed in SQL. Lines that are not JSON objects, and objects
with a key that cannot be a column (empty, blank, holding a quote or a
control character, or the same as another key but for case), are
quarantined one by one with the reason; the other lines load.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from cdm_assets.domain.raw.landed import LandedFile, LandingError
from cdm_assets.domain.raw.lines import read_lines
from cdm_assets.domain.sql import TableName, quote_ident, sql_array

JSONL_LINE_COLUMN = "_line"
_WHITESPACE = b" \t\r\f\v"


def read_json_lines(path: Path, encoding: str) -> LandedFile:
    """Read JSON lines as one bytes column `_line`, one value per physical line
    (numbered from 1, blank lines included); parsing happens in SQL."""
    try:
        lines = read_lines(path.read_bytes(), encoding)
    except OSError as error:
        raise LandingError(f"{path}: cannot be read: {error}") from None
    numbers = pa.array(np.arange(1, len(lines) + 1, dtype=np.int64))
    values = _parsed_lines(lines.data, len(lines))
    rows = pa.table(
        [values if values is not None else lines.as_arrow(), numbers], names=[JSONL_LINE_COLUMN, "_row_number"]
    )
    return LandedFile(path, rows, [], rows_in=int((~lines.blank(_WHITESPACE)).sum()))


def _parsed_lines(data: bytes, count: int) -> pa.Array | None:
    """The lines cut by pyarrow's CSV reader with no quoting and a delimiter
    (the unit separator) that valid JSON never holds unescaped: faster than
    cutting them in numpy. None when any line holds that byte or the reader
    saw another number of lines; the caller then cuts them itself."""
    split_elsewhere = False

    def on_invalid_row(_row: pa_csv.InvalidRow) -> str:
        nonlocal split_elsewhere
        split_elsewhere = True
        return "skip"

    if b"\x1f" in data:
        return None
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=1 << 24, column_names=[JSONL_LINE_COLUMN]),
            parse_options=pa_csv.ParseOptions(
                delimiter="\x1f",
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(column_types={JSONL_LINE_COLUMN: pa.binary()}, null_values=[]),
        )
    except pa.ArrowInvalid:
        return None
    if split_elsewhere or table.num_rows != count:
        return None
    return table.column(0).combine_chunks()


def _lines_sql(select: str, where: str) -> str:
    """`select` over the registered file's non-empty lines: `text` (NULL when not
    valid UTF-8), `bytes` and `_row_number`, filtered by `where`.

    Each pass parses the lines it needs again: cheaper than keeping a decoded
    copy of a large file in memory.
    """
    line = quote_ident(JSONL_LINE_COLUMN)
    return f"""
        SELECT {select} FROM (
            SELECT _row_number, try(decode({line})) AS text, {line} AS bytes
            FROM landed_file
            WHERE octet_length({line}) > 0
        )
        WHERE {where}
    """


_LINE_PROBLEM = """
    CASE WHEN text IS NULL THEN 'invalid UTF-8 bytes'
         WHEN try(json_type(text)) IS NULL THEN 'malformed JSON'
         WHEN json_type(text) <> 'OBJECT' THEN 'JSON line is not an object' END
"""
_KIND = """
    CASE WHEN problem = 'invalid UTF-8 bytes' THEN 'undecodable bytes'
         WHEN problem = 'malformed JSON' THEN 'malformed JSON'
         WHEN problem LIKE 'JSON key%' THEN 'unusable JSON key'
         ELSE 'not a JSON object' END
"""


def reject_bad_json_lines(con: duckdb.DuckDBPyConnection, name: str, stage: str, path: Path, rejects: TableName) -> int:
    """Quarantine the lines that are not JSON objects (blank lines aside); returns how many."""
    problems = _lines_sql(
        f"_row_number, text, bytes, {_LINE_PROBLEM} AS problem",
        # blank lines (spaces, tabs and the like only) carry no record
        "CASE WHEN try(json_type(text)) = 'OBJECT' THEN false ELSE text IS NULL OR trim(text, ' \t\r\f\v') <> '' END",
    )
    return con.execute(
        f"""
        INSERT INTO {rejects.sql}
        SELECT ?, ?, ?, _row_number, NULL, problem, {_KIND}, coalesce(text, CAST(bytes AS VARCHAR)), NULL
        FROM ({problems})
        """,
        [name, stage, str(path)],
    ).fetchall()[0][0]


def json_lines_select(
    con: duckdb.DuckDBPyConnection,
    name: str,
    stage: str,
    path: Path,
    rejects: TableName,
    objects_only: bool,
    configured: list[str] = (),
) -> str:
    """One text column per usable key of the file's JSON objects, extracted in one pass per line;
    objects with an unusable key are quarantined first and left out.

    `objects_only`: every line is a JSON object or blank, so a line holding a
    brace is an object (cheaper to test than parsing the line for its type).
    """
    keys_sql = _lines_sql("unnest(try(json_keys(text))) AS key, _row_number", "text IS NOT NULL")
    found = con.execute(f"SELECT key FROM ({keys_sql}) GROUP BY key ORDER BY min(_row_number), key").fetchall()
    keys, bad = _usable_keys([row[0] for row in found], configured)
    is_object = "contains(text, '{')" if objects_only else "try(json_type(text)) = 'OBJECT'"
    if bad:
        is_object += f" AND NOT list_has_any(try(json_keys(text)), {sql_array(bad)})"
        _reject_bad_keys(con, name, stage, path, rejects, bad)
    extracted = [f"_values[{index}] AS {quote_ident(k)}" for index, k in enumerate(keys, start=1)]
    paths = sql_array(f'$."{k}"' for k in keys)
    values = f"json_extract_string(text, {paths})" if keys else "[]::VARCHAR[]"
    objects = _lines_sql(f"{values} AS _values, _row_number", is_object)
    return f"""
        SELECT {"".join(e + ", " for e in extracted)}
               ?::VARCHAR AS _file,
               _row_number,
               NULL::VARCHAR AS _bad_column,
               NULL::VARCHAR AS _raw
        FROM ({objects})
    """


def _usable_keys(keys: list[str], configured: list[str]) -> tuple[list[str], dict[str, str]]:
    """(usable keys in order of appearance, {unusable key: why}). Warehouse columns
    ignore case: the spelling the config uses, else the first one seen, is the
    column; other spellings are unusable."""
    usable, bad, spelling = [], {}, {}
    for key in sorted(keys, key=lambda k: k not in configured):  # stable: otherwise in order seen
        if not key.strip():
            bad[key] = f"JSON key {json.dumps(key)} is empty or blank"
        elif '"' in key or any(ord(ch) < 32 for ch in key):
            bad[key] = f"JSON key {json.dumps(key)} holds a quote or control character"
        elif key.casefold() in spelling:
            bad[key] = f"JSON key {json.dumps(key)} differs only in case from {json.dumps(spelling[key.casefold()])}"
        else:
            spelling[key.casefold()] = key
            usable.append(key)
    return sorted(usable, key=keys.index), bad


def _reject_bad_keys(
    con: duckdb.DuckDBPyConnection, name: str, stage: str, path: Path, rejects: TableName, bad: dict[str, str]
) -> None:
    lines = _lines_sql(
        "_row_number, text, list_intersect(try(json_keys(text)), ?::VARCHAR[])[1] AS bad_key",
        "text IS NOT NULL AND try(json_type(text)) = 'OBJECT'",
    )
    con.execute(
        f"""
        INSERT INTO {rejects.sql}
        SELECT ?, ?, ?, _row_number, NULL, (?::VARCHAR[])[list_position(?::VARCHAR[], bad_key)],
               'unusable JSON key', text, bad_key
        FROM ({lines})
        WHERE bad_key IS NOT NULL
        """,
        [name, stage, str(path), list(bad.values()), list(bad), list(bad)],
    )
