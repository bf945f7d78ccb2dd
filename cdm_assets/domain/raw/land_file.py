"""Append one landed file to the table a source's load builds.

CSV and JSON lines arrive as text columns, Parquet with its own types. A
later file may bring new columns (older rows get NULL); two files must agree
on a column's type, else the load stops naming both files and the column.
Parser rejects go to the load's rejects table.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from cdm_assets.domain.plan import Source
from cdm_assets.domain.privacy.suppression import Suppressed, row_suppressed_sql
from cdm_assets.domain.raw.accepted_rows import create_rejects_table
from cdm_assets.domain.raw.delimited import read_delimited
from cdm_assets.domain.raw.json_lines import json_lines_select, read_json_lines, reject_bad_json_lines
from cdm_assets.domain.raw.landed import RAW_STAGE, LandedFile, LandingError
from cdm_assets.domain.sql import SCRATCH, StatementError, TableName, quote_ident, sql_string
from cdm_assets.domain.warehouse import arrow_views, create_table_as, is_duckdb

# Canonical fields whose values are about one per record.
_NEAR_UNIQUE_FIELDS = ("email", "phone", "postcode", "occurred_at", "anonymous_id")


def near_unique_columns(source: Source) -> set[str]:
    """The source's columns that hold about one value per record (its ids, contact
    points and timestamps): stored plain, like `warehouse.PLAIN_TEXT_COLUMNS`."""
    columns = {source.record_id, *source.identifiers.values()}
    columns |= {source.fields[name].column for name in _NEAR_UNIQUE_FIELDS if name in source.fields}
    if source.updated_at is not None:
        columns.add(source.updated_at.column)
    if source.customer is not None:
        columns.add(source.customer.column)
    return columns


def land_file(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: Source,
    path: Path,
    landed: TableName,
    rejects: TableName,
    columns: ColumnOrigins,
    suppression_salt: str | None = None,
) -> tuple[int, int]:
    """Append one file's rows to `landed` as text, its parser rejects to `rejects`;
    returns the file's rows in, counted without the parser, and the rows left out
    because they carry an identifier of an erased person (given the warehouse's
    `suppression_salt`; None when nobody was erased)."""
    if not is_duckdb(con):
        return _land_file_read_by_duckdb(con, name, source, path, landed, rejects, columns, suppression_salt)
    file_format = source.file_format
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
        _, suppressed = _append(con, source, path, select, params, landed, columns, suppression_salt)
        return rows_in, suppressed
    except duckdb.Error as error:
        raise LandingError(f"{path}: cannot be loaded: {_without_staging_names(str(error), landed, name)}") from None
    finally:
        if file_format != "parquet":
            con.unregister("landed_file")


def _land_file_read_by_duckdb(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: Source,
    path: Path,
    landed: TableName,
    rejects: TableName,
    columns: ColumnOrigins,
    suppression_salt: str | None,
) -> tuple[int, int]:
    """`land_file` on another engine (Spark): an embedded DuckDB reads the file, with the
    parser, encodings and rejects of a DuckDB warehouse, and its rows and rejects are handed
    to the engine, which takes out an erased person's rows and appends the rest."""
    reader = duckdb.connect()
    try:
        read, read_rejects = TableName(SCRATCH, "landed"), TableName(SCRATCH, "rejects")
        create_rejects_table(reader, read_rejects)
        rows_in, _ = land_file(reader, name, source, path, read, read_rejects, ColumnOrigins())
        rows = reader.sql(f"SELECT * FROM {read.sql}").to_arrow_table()
        rejected = reader.sql(f"SELECT * FROM {read_rejects.sql}").to_arrow_table()
    finally:
        reader.close()
    with arrow_views(con, {"landed_rows": rows, "landed_rejects": rejected}):
        if rejected.num_rows:
            con.execute(f"INSERT INTO {rejects.sql} BY NAME SELECT * FROM landed_rejects")
        try:
            _, suppressed = _append(
                con, source, path, "SELECT * FROM landed_rows", None, landed, columns, suppression_salt
            )
        except StatementError as error:
            raise LandingError(
                f"{path}: cannot be loaded: {_without_staging_names(str(error), landed, name)}"
            ) from None
    return rows_in, suppressed


def _append(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    select: str,
    params: list[str] | None,
    landed: TableName,
    columns: ColumnOrigins,
    suppression_salt: str | None,
) -> tuple[int, int]:
    """Append the rows of `select` (one file's) to `landed`, but an erased person's; returns
    (0, the rows left out for that)."""
    suppressed = 0
    described = con.execute(f"DESCRIBE {select}", params).fetchall()
    if source.file_format == "parquet":
        _require_columns_in_file(source, path, [row[0] for row in described])
    if suppression_salt is not None:  # an erased person's rows never reach a table
        present = {row[0] for row in described}
        suppressed_when = row_suppressed_sql(source, Suppressed(suppression_salt), present)
        counted = f"SELECT count(*) FROM ({select}) WHERE {suppressed_when}"
        suppressed = con.execute(counted, params).fetchall()[0][0]
        select = f"SELECT * FROM ({select}) WHERE NOT {suppressed_when}"
    if columns.first_file is None:
        create_table_as(con, landed, select, params, plain_text=near_unique_columns(source))
    else:
        columns.widen(con, landed, path, [(row[0], row[1]) for row in described])
        con.execute(f"INSERT INTO {landed.sql} BY NAME {select}", params)
    columns.record(path, [(row[0], row[1]) for row in described])
    return 0, suppressed


class ColumnOrigins:
    """Which file brought each column, and its type: a later file may add columns
    (older rows get NULL), but two files must agree on a column's type."""

    def __init__(self) -> None:
        self.first_file: Path | None = None
        self.origin: dict[str, tuple[str, str, Path]] = {}  # folded name -> (name, type, file)
        self.by_file: dict[str, list[tuple[str, str]]] = {}  # file -> its (column, type)s, as read

    def record(self, path: Path, described: list[tuple[str, str]]) -> None:
        self.first_file = self.first_file or path
        self.by_file[str(path)] = list(described)
        for column, dtype in described:
            self.origin.setdefault(column.casefold(), (column, dtype, path))

    def widen(
        self, con: duckdb.DuckDBPyConnection, landed: TableName, path: Path, described: list[tuple[str, str]]
    ) -> None:
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
        f"WHEN {quote_ident(c)} IS NOT NULL AND try(decode({quote_ident(c)})) IS NULL THEN {sql_string(c)}"
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
    with arrow_views(con, {"parser_rejects": table}):
        con.execute(
            f"""
            INSERT INTO {rejects.sql}
            SELECT ?, {sql_string(RAW_STAGE)}, ?, row_number, NULL, reason, 'malformed row', raw, NULL
            FROM parser_rejects
            """,
            [name, str(landed_file.path)],
        )


def _require_columns_in_file(source: Source, path: Path, present: list[str]) -> None:
    missing = [c for c in source.columns_used() if c not in present]
    if missing:
        raise LandingError(
            f"{path}: column(s) {', '.join(map(repr, missing))} named in the config are not in the file; "
            f"the file has: {', '.join(present)}"
        )
