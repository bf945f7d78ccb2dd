"""What of a source's landed rows is accepted: the rows the load quarantines, and why.

Undecodable rows, rows without a record id and all but one row of each
duplicated record id (the newest file's, then the first within it) move from
the landed table to the rejects; rejected rows of erased people are dropped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb

from cdm_assets.domain.plan import Source
from cdm_assets.domain.privacy.suppression import Suppressed, text_suppressed_sql
from cdm_assets.domain.raw.landed import RAW_STAGE, LandingError
from cdm_assets.domain.sql import TableName, create_table, quote_ident, sql_string


def record_id_sql(source: Source) -> str:
    """A row's record id as the load keys it: trimmed text, NULL when empty."""
    return f"nullif(trim(CAST({quote_ident(source.record_id)} AS VARCHAR)), '')"


def drop_suppressed_rejects(con: duckdb.DuckDBPyConnection, name: str, rejects: TableName, salt: str) -> Counter[str]:
    """Delete the rejected rows whose raw text holds a suppressed identifier; returns how many per file."""
    suppressed = text_suppressed_sql("raw_row", sql_string(name), Suppressed(salt))
    dropped = Counter(
        dict(con.execute(f"SELECT _file, count(*) FROM {rejects.sql} WHERE {suppressed} GROUP BY ALL").fetchall())
    )
    if dropped:
        con.execute(f"DELETE FROM {rejects.sql} WHERE {suppressed}")
    return dropped


def create_rejects_table(con: duckdb.DuckDBPyConnection, rejects: TableName) -> None:
    con.execute(
        f"""
        {create_table(rejects)} (
            source VARCHAR, stage VARCHAR, _file VARCHAR, _row_number BIGINT,
            column_name VARCHAR, reason VARCHAR, category VARCHAR, raw_row VARCHAR, value VARCHAR
        )
        """
    )


def create_empty_landed(con: duckdb.DuckDBPyConnection, source: Source, landed: TableName) -> None:
    columns = ", ".join(f"{quote_ident(c)} VARCHAR" for c in source.columns_used())
    con.execute(
        f"CREATE TABLE {landed.sql} ({columns}, _file VARCHAR, _row_number BIGINT, _bad_column VARCHAR, _raw VARCHAR)"
    )


def require_mapped_columns(
    con: duckdb.DuckDBPyConnection, name: str, source: Source, landed: TableName, files: list[Path]
) -> None:
    """JSON lines may omit keys per row, but a configured column must appear somewhere."""
    present = {row[0].casefold() for row in con.execute(f"DESCRIBE {landed.sql}").fetchall()}
    missing = [c for c in source.columns_used() if c.casefold() not in present]
    if missing:
        where = ", ".join(map(str, files)) or "no files"
        raise LandingError(
            f"sources.{name}: column(s) {', '.join(map(repr, missing))} named in the config appear in none of: {where}"
        )


def move_rejects_out(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: Source,
    landed: TableName,
    rejects: TableName,
) -> None:
    """Quarantine undecodable rows, missing and duplicate record ids; delete them from `landed`."""
    data_columns = [row[0] for row in con.execute(f"DESCRIBE {landed.sql}").fetchall() if row[0] not in HELPER_COLUMNS]
    row_json = (
        "CAST(to_json(struct_pack("
        + ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in data_columns)
        + ")) AS VARCHAR)"
    )
    key = record_id_sql(source)
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
            SELECT ?, {sql_string(RAW_STAGE)}, _file, _row_number, _bad_column,
                   'invalid UTF-8 bytes in column ' || _bad_column, 'undecodable bytes', _raw, NULL
            FROM {landed.sql} WHERE _bad_column IS NOT NULL
            UNION ALL
            SELECT ?, {sql_string(RAW_STAGE)}, _file, _row_number, ?,
                   'missing record id (column ' || ? || ')', 'missing record id', {row_json}, NULL
            FROM {landed.sql} WHERE _bad_column IS NULL AND {key} IS NULL
            UNION ALL
            SELECT ?, {sql_string(RAW_STAGE)}, l._file, l._row_number, ?,
                   'duplicate record id ' || d._record_key || ': kept ' || d._kept_file || ' row ' || d._kept_row,
                   'duplicate record id', {row_json}, d._record_key
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


HELPER_COLUMNS = {"_file", "_row_number", "_bad_column", "_raw"}
