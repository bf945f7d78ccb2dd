"""Build `raw.<source>` from every landed file of a source.

Accepted rows keep their columns plus `_file` and `_row_number`. Every other
input row lands in `raw.quarantine` with its reason and raw content: rows the
parser could not split, undecodable bytes, malformed JSON, a missing record
id, or a record id seen before. For every source, rows in = rows accepted +
rows quarantined. The new table and the source's quarantine rows replace the
old ones in one transaction, so a failed load changes nothing.

Duplicate record ids: the row from the newest file wins (files sort by name,
landing folders are usually dated extracts), then the first row within it.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from cdm_assets.config.model import SourceConfig, column_of
from cdm_assets.domain.raw.delimited import read_delimited
from cdm_assets.domain.raw.json_lines import json_lines_select, read_json_lines, reject_bad_json_lines
from cdm_assets.domain.raw.landed import LandedFile, LandingError
from cdm_assets.domain.warehouse import (
    QuarantineReplacement,
    TableName,
    create_table_as,
    ensure_quarantine,
    quote_ident,
    staged_tables,
    swap_in,
    table_exists,
)

RAW_STAGE = "raw"
# Sources loaded at once by `load_raw_sources`. A load is half single-threaded
# parsing and Python, half DuckDB on every core: two at a time keep a 2-core
# machine busy without holding three large files in memory.
CONCURRENT_LOADS = 2


@dataclass
class RawLoadReport:
    """What one load of a source did; the figures a materialisation reports."""

    source: str
    table: TableName
    files: list[str]
    rows_in: int = 0
    rows_accepted: int = 0
    quarantined_by_reason: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # wall time of the load, swap included

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())


def landed_files(pattern: Path) -> list[Path]:
    """The files a source's glob matches now, in name order."""
    return sorted(Path(p) for p in glob.glob(os.path.normpath(pattern), recursive=True) if Path(p).is_file())


def load_raw_sources(
    con: duckdb.DuckDBPyConnection,
    sources: Mapping[str, tuple[SourceConfig, list[Path]]],
    concurrent: int = CONCURRENT_LOADS,
) -> Iterator[tuple[str, RawLoadReport | Exception]]:
    """Load several sources, `concurrent` at a time, each on its own cursor;
    yields (name, report) as each finishes, or (name, error) for a source
    that failed (the others still load). Largest landings start first.

    Each source's swap into `raw.<source>` and `raw.quarantine` is its own
    transaction; swaps take turns, so two never race on the quarantine.
    """
    ensure_quarantine(con)  # once, before the loads race to create it
    swap_lock = threading.Lock()

    def load(name: str) -> RawLoadReport:
        cursor = con.cursor()
        try:
            source, files = sources[name]
            return load_raw_source(cursor, name, source, files, swap_lock=swap_lock)
        finally:
            cursor.close()

    largest_first = sorted(sources, key=lambda name: -sum(_size(f) for f in sources[name][1]))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrent, len(sources)))) as pool:
        futures = {pool.submit(load, name): name for name in largest_first}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], (error if error is not None else future.result())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def load_raw_source(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: SourceConfig,
    files: list[Path],
    swap_lock: AbstractContextManager = nullcontext(),
) -> RawLoadReport:
    """Load `files` into `raw.<name>`, quarantining what cannot be accepted;
    `swap_lock` is held while the new table and quarantine rows are swapped in."""
    started = time.perf_counter()
    ensure_quarantine(con)
    target = TableName("raw", name)
    report = RawLoadReport(name, target, [str(f) for f in files])
    # Rows are written once: the landed table becomes the new table after its
    # rejects are moved to the quarantine and its helper columns dropped.
    with staged_tables(con, target, TableName("raw", f"{name}_rejects")) as (landed, rejects):
        _create_rejects_table(con, rejects)
        columns = _ColumnOrigins()
        for path in files:
            report.rows_in += _land_file(con, name, source, path, landed, rejects, columns)
        if not files:
            _create_empty_landed(con, source, landed)
        _require_mapped_columns(con, name, source, landed, files)
        _move_rejects_out(con, name, source, landed, rejects)
        report.rows_accepted = con.execute(f"SELECT count(*) FROM {landed.sql}").fetchone()[0]
        report.quarantined_by_reason = Counter(
            dict(con.execute(f"SELECT reason_kind, count(*) FROM {rejects.sql} GROUP BY ALL").fetchall())
        )
        if report.rows_in != report.rows_accepted + report.rows_quarantined:  # never swap in a loss
            raise LandingError(
                f"sources.{name}: {report.rows_in} rows in, but {report.rows_accepted} accepted and "
                f"{report.rows_quarantined} quarantined; nothing was changed"
            )
        with swap_lock:
            swap_in(con, [(target, landed)], QuarantineReplacement((name,), RAW_STAGE, rejects))
    report.seconds = time.perf_counter() - started
    return report


# Canonical fields whose values are about one per record.
_NEAR_UNIQUE_FIELDS = ("email", "phone", "postcode", "occurred_at", "anonymous_id")


def near_unique_columns(source: SourceConfig) -> set[str]:
    """The source's columns that hold about one value per record (its ids, contact
    points and timestamps): stored plain, like `warehouse.PLAIN_TEXT_COLUMNS`."""
    columns = {source.record_id, *source.identifiers.values()}
    columns |= {column_of(source.fields[name]) for name in _NEAR_UNIQUE_FIELDS if name in source.fields}
    if source.updated_at is not None:
        columns.add(column_of(source.updated_at))
    if source.customer is not None:
        columns.add(source.customer.column)
    return columns


def ensure_raw_tables(con: duckdb.DuckDBPyConnection, sources: dict[str, SourceConfig]) -> list[str]:
    """Create an empty `raw.<source>` for every source not loaded yet; returns their names.

    A source whose files have not landed is an empty source, exactly what its
    raw asset builds when its glob matches nothing; downstream steps can then
    run before every source has been loaded once.
    """
    ensure_quarantine(con)
    created = []
    for name, source in sources.items():
        table = TableName("raw", name)
        if not table_exists(con, table):
            columns = ", ".join(f"{quote_ident(c)} VARCHAR" for c in source.columns_used())
            con.execute(f"CREATE TABLE IF NOT EXISTS {table.sql} ({columns}, _file VARCHAR, _row_number BIGINT)")
            created.append(name)
    return created


def _create_rejects_table(con: duckdb.DuckDBPyConnection, rejects: TableName) -> None:
    con.execute(
        f"""
        CREATE TABLE {rejects.sql} (
            source VARCHAR, stage VARCHAR, _file VARCHAR, _row_number BIGINT,
            column_name VARCHAR, reason VARCHAR, reason_kind VARCHAR, raw_row VARCHAR
        )
        """
    )


def _land_file(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: SourceConfig,
    path: Path,
    landed: TableName,
    rejects: TableName,
    columns: _ColumnOrigins,
) -> int:
    """Append one file's rows to `landed` as text, its parser rejects to `rejects`;
    returns the file's rows in, counted without the parser."""
    file_format = source.file_format()
    params = [str(path)]
    if file_format == "parquet":
        select = _parquet_select()
        params = [str(path), str(path)]
        rows_in = _parquet_rows(con, path)
    else:
        landed_file = (
            read_delimited(path, source.delimiter, source.encoding)
            if file_format == "csv"
            else read_json_lines(path, source.encoding)
        )
        rows_in = landed_file.rows_in
        if file_format == "csv":
            _require_columns_in_file(source, path, landed_file.rows.column_names)
        _record_parser_rejects(con, name, landed_file, rejects)
        con.register("landed_file", landed_file.rows)
        if file_format == "jsonl":
            bad_lines = reject_bad_json_lines(con, name, RAW_STAGE, path, rejects)
            select = json_lines_select(
                con, name, RAW_STAGE, path, rejects, objects_only=bad_lines == 0, configured=source.columns_used()
            )
        else:
            select = _delimited_select(landed_file.rows.schema)
    try:
        described = con.execute(f"DESCRIBE {select}", params).fetchall()
        if file_format == "parquet":
            _require_columns_in_file(source, path, [row[0] for row in described])
        if columns.first_file is None:
            create_table_as(con, landed, select, params, plain_text=near_unique_columns(source))
        else:
            columns.widen(con, landed, path, [(row[0], row[1]) for row in described])
            con.execute(f"INSERT INTO {landed.sql} BY NAME {select}", params)
        columns.record(path, [(row[0], row[1]) for row in described])
    except duckdb.Error as error:
        raise LandingError(f"{path}: cannot be loaded: {_without_staging_names(str(error), landed, name)}") from None
    finally:
        if file_format != "parquet":
            con.unregister("landed_file")
    return rows_in


class _ColumnOrigins:
    """Which file brought each column, and its type: a later file may add columns
    (older rows get NULL), but two files must agree on a column's type."""

    def __init__(self) -> None:
        self.first_file: Path | None = None
        self.origin: dict[str, tuple[str, str, Path]] = {}  # folded name -> (name, type, file)

    def record(self, path: Path, described: list[tuple[str, str]]) -> None:
        self.first_file = self.first_file or path
        for column, dtype in described:
            self.origin.setdefault(column.casefold(), (column, dtype, path))

    def widen(self, con: duckdb.DuckDBPyConnection, landed: TableName, path: Path, described: list[tuple[str, str]]) -> None:
        for column, dtype in described:
            known = self.origin.get(column.casefold())
            if known is None:
                con.execute(f"ALTER TABLE {landed.sql} ADD COLUMN {quote_ident(column)} {dtype}")
            elif known[1] != dtype:
                raise LandingError(
                    f"{path}: column {column!r} is {dtype} here but {known[1]} in {known[2]}; "
                    "files of one source must agree on a column's type"
                )


def _without_staging_names(message: str, landed: TableName, name: str) -> str:
    """DuckDB names the staging table a load builds; users know the source's table."""
    return message.replace(landed.sql, f"raw.{name}").replace(landed.name, name)


def _parquet_rows(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    try:
        return con.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [str(path)]).fetchone()[0] or 0
    except duckdb.Error as error:
        raise LandingError(f"{path}: cannot be read as Parquet: {error}") from None


def _delimited_select(schema: pa.Schema) -> str:
    """Text columns (NULL when empty) and `_bad_column`: the first column with invalid UTF-8."""
    columns = [n for n in schema.names if n != "_row_number"]
    decoded = [f"try(decode({quote_ident(c)})) AS {quote_ident(c)}" for c in columns]
    undecodable = " ".join(
        f"WHEN {quote_ident(c)} IS NOT NULL AND try(decode({quote_ident(c)})) IS NULL THEN '{_sql_text(c)}'"
        for c in columns
    )
    bad_column = f"CASE {undecodable} END" if columns else "NULL::VARCHAR"
    raw = " || ',' || ".join(f"coalesce(CAST({quote_ident(c)} AS VARCHAR), '')" for c in columns) or "''"
    return f"""
        SELECT {", ".join(decoded)},
               ?::VARCHAR AS _file,
               _row_number,
               {bad_column} AS _bad_column,
               CASE WHEN {bad_column} IS NOT NULL THEN {raw} END AS _raw
        FROM landed_file
    """


def _parquet_select() -> str:
    return """
        SELECT * EXCLUDE (file_row_number),
               ?::VARCHAR AS _file,
               file_row_number + 1 AS _row_number,
               NULL::VARCHAR AS _bad_column,
               NULL::VARCHAR AS _raw
        FROM read_parquet(?, file_row_number = true)
    """


def _record_parser_rejects(
    con: duckdb.DuckDBPyConnection, name: str, landed_file: LandedFile, rejects: TableName
) -> None:
    if not landed_file.rejects:
        return
    table = pa.table(
        {
            "row_number": [r.row_number for r in landed_file.rejects],
            "reason": [r.reason for r in landed_file.rejects],
            "raw": [r.raw for r in landed_file.rejects],
        }
    )
    con.register("parser_rejects", table)
    try:
        con.execute(
            f"""
            INSERT INTO {rejects.sql}
            SELECT ?, '{RAW_STAGE}', ?, row_number, NULL, reason, 'malformed row', raw FROM parser_rejects
            """,
            [name, str(landed_file.path)],
        )
    finally:
        con.unregister("parser_rejects")


def _create_empty_landed(con: duckdb.DuckDBPyConnection, source: SourceConfig, landed: TableName) -> None:
    columns = ", ".join(f"{quote_ident(c)} VARCHAR" for c in source.columns_used())
    con.execute(
        f"CREATE TABLE {landed.sql} ({columns}, _file VARCHAR, _row_number BIGINT, _bad_column VARCHAR, _raw VARCHAR)"
    )


def _require_columns_in_file(source: SourceConfig, path: Path, present: list[str]) -> None:
    missing = [c for c in source.columns_used() if c not in present]
    if missing:
        raise LandingError(
            f"{path}: column(s) {', '.join(map(repr, missing))} named in the config are not in the file; "
            f"the file has: {', '.join(present)}"
        )


def _require_mapped_columns(
    con: duckdb.DuckDBPyConnection, name: str, source: SourceConfig, landed: TableName, files: list[Path]
) -> None:
    """JSON lines may omit keys per row, but a configured column must appear somewhere."""
    present = {row[0].casefold() for row in con.execute(f"DESCRIBE {landed.sql}").fetchall()}
    missing = [c for c in source.columns_used() if c.casefold() not in present]
    if missing:
        where = ", ".join(map(str, files)) or "no files"
        raise LandingError(
            f"sources.{name}: column(s) {', '.join(map(repr, missing))} named in the config appear in none of: {where}"
        )


def _move_rejects_out(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: SourceConfig,
    landed: TableName,
    rejects: TableName,
) -> None:
    """Quarantine undecodable rows, missing and duplicate record ids; delete them from `landed`."""
    record_id = quote_ident(source.record_id)
    data_columns = [row[0] for row in con.execute(f"DESCRIBE {landed.sql}").fetchall() if row[0] not in _HELPER_COLUMNS]
    row_json = "CAST(to_json(struct_pack(" + ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in data_columns) + ")) AS VARCHAR)"
    key = f"nullif(trim(CAST({record_id} AS VARCHAR)), '')"
    # Duplicates are rare: rank only the rows whose key occurs more than once.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE duplicate_landed AS
        SELECT _file, _row_number, _record_key,
               row_number() OVER w AS _occurrence,
               first_value(_file) OVER w AS _kept_file,
               first_value(_row_number) OVER w AS _kept_row
        FROM (SELECT *, {key} AS _record_key FROM {landed.sql} WHERE _bad_column IS NULL)
        WHERE _record_key IN (
            SELECT {key} FROM {landed.sql} WHERE _bad_column IS NULL GROUP BY ALL HAVING count(*) > 1
        )
        WINDOW w AS (PARTITION BY _record_key ORDER BY _file DESC, _row_number)
        """
    )
    try:
        moved = con.execute(
            f"""
            INSERT INTO {rejects.sql}
            SELECT ?, '{RAW_STAGE}', _file, _row_number, _bad_column,
                   'invalid UTF-8 bytes in column ' || _bad_column, 'undecodable bytes', _raw
            FROM {landed.sql} WHERE _bad_column IS NOT NULL
            UNION ALL
            SELECT ?, '{RAW_STAGE}', _file, _row_number, ?,
                   'missing record id (column ' || ? || ')', 'missing record id', {row_json}
            FROM {landed.sql} WHERE _bad_column IS NULL AND {key} IS NULL
            UNION ALL
            SELECT ?, '{RAW_STAGE}', l._file, l._row_number, ?,
                   'duplicate record id ' || d._record_key || ': kept ' || d._kept_file || ' row ' || d._kept_row,
                   'duplicate record id', {row_json}
            FROM {landed.sql} l JOIN duplicate_landed d USING (_file, _row_number)
            WHERE d._occurrence > 1
            """,
            [name, name, source.record_id, source.record_id, name, source.record_id],
        ).fetchall()[0][0]
        if moved:  # most loads have nothing to delete: spare them a pass over every row
            con.execute(
                f"""
                DELETE FROM {landed.sql} l
                WHERE _bad_column IS NOT NULL OR {key} IS NULL
                   OR EXISTS (
                      SELECT 1 FROM duplicate_landed d
                      WHERE d._occurrence > 1 AND d._file = l._file AND d._row_number = l._row_number
                   )
                """
            )
    finally:
        con.execute("DROP TABLE IF EXISTS duplicate_landed")
    for helper in ("_bad_column", "_raw"):
        con.execute(f"ALTER TABLE {landed.sql} DROP COLUMN {helper}")


_HELPER_COLUMNS = {"_file", "_row_number", "_bad_column", "_raw"}


def _sql_text(value: str) -> str:
    """Escape a value for a single-quoted SQL literal (names already validated)."""
    return value.replace("'", "''")
