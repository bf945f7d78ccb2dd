"""Warehouse conventions: connections, schemas, the quarantine table, atomic swaps.

Every table is built under a staging name and swapped in with one
transaction, so a failed run leaves the previous table as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.sql import PROCESS_TOKEN, SCRATCH, STAGING_PREFIX, TableName, create_table, quote_ident
from cdm_assets.domain.table_versions import BuiltFrom, TableVersion, ensure_state, record_statements

log = logging.getLogger(__name__)

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS raw.quarantine (
    source          VARCHAR NOT NULL,   -- configured source name
    stage           VARCHAR NOT NULL,   -- which step rejected the row: raw, transactions, ...
    _file           VARCHAR,            -- landing file the row came from
    _row_number     BIGINT,             -- data row within that file (header excluded)
    column_name     VARCHAR,            -- the offending column, when one is to blame
    reason          VARCHAR NOT NULL,   -- what is wrong, in words: the category and the value
    raw_row         VARCHAR,            -- the row as it arrived (text or JSON)
    quarantined_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    category        VARCHAR,            -- the kind of problem: duplicate record id, unknown currency, ...
    value           VARCHAR             -- the offending value, when one is to blame
)
"""
QUARANTINE = TableName("raw", "quarantine")
QUARANTINE_COLUMNS = (
    "source",
    "stage",
    "_file",
    "_row_number",
    "column_name",
    "reason",
    "raw_row",
    "category",
    "value",
)


class WarehouseLocked(RuntimeError):
    """Another process holds the warehouse file (DuckDB allows one writer per file)."""


# A lock held by another process is usually held for a whole run: wait a few
# seconds for one that is being released, then say who holds it.
LOCK_WAIT_SECONDS = 5.0


def connect_warehouse(
    path: str, read_only: bool = False, config: dict | None = None, wait_seconds: float = LOCK_WAIT_SECONDS
) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file; `WarehouseLocked` (naming the file and
    DuckDB's word on the holder) when another process keeps it locked."""
    deadline, warned = time.monotonic() + wait_seconds, False
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise WarehouseLocked(f"{path}: cannot open the warehouse: {error}") from None
            if time.monotonic() >= deadline:
                raise WarehouseLocked(
                    f"{path}: the warehouse is in use by another process; close it and retry ({error})"
                ) from None
            if not warned:
                log.warning("%s: the warehouse is in use by another process; waiting up to %.0f s", path, wait_seconds)
                warned = True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


# Steps that follow a batch delete and insert rows in place. DuckDB's checkpoint, which
# runs when a step closes its connection, would compact the row groups they leave deleted
# rows in at every step: 0.7 s for 1 % of 1M golden records, where the write itself took
# 0.03 s. So connections open with compaction off (`NO_COMPACTION`), and a table is
# compacted once its deleted rows pass this share of its rows (`compact_when_sparse`).
# A full build writes every table anew, without deleted rows.
COMPACT_DELETED_SHARE = 0.2
NO_COMPACTION = {"max_vacuum_tasks": 0}
_COMPACTING_VACUUM_TASKS = 100  # DuckDB's default
_SMALL_TABLE_ROWS = 100_000  # below this, deleted rows cost nothing worth a check


def sparse_tables(con: duckdb.DuckDBPyConnection, max_deleted_share: float = COMPACT_DELETED_SHARE) -> list[str]:
    """The tables (schema.name) whose deleted rows, kept since their last compaction, pass
    `max_deleted_share` of their rows: DuckDB's estimated size counts them, `count(*)` does not."""
    tables = con.execute(
        "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary AND estimated_size >= ?",
        [_SMALL_TABLE_ROWS],
    ).fetchall()
    if not tables:
        return []
    counts = " UNION ALL ".join(
        f"SELECT {index} AS table_index, count(*) AS live FROM {quote_ident(schema)}.{quote_ident(name)}"
        for index, (schema, name, _) in enumerate(tables)
    )
    live = dict(con.execute(counts).fetchall())
    return [
        f"{schema}.{name}"
        for index, (schema, name, estimated) in enumerate(tables)
        if estimated - live[index] > max_deleted_share * estimated
    ]


def compact_when_sparse(con: duckdb.DuckDBPyConnection, max_deleted_share: float = COMPACT_DELETED_SHARE) -> list[str]:
    """On a connection opened with `NO_COMPACTION` that wrote something: when some table is
    sparse (`sparse_tables`), let the checkpoint that closing the connection runs compact the
    row groups. DuckDB compacts a table only where this checkpoint writes its deletions, so a
    sparse table is compacted by the next step that deletes from it. Returns the sparse tables."""
    wal = con.execute("SELECT wal_size FROM pragma_database_size() WHERE database_name = current_database()")
    if wal.fetchall() in ([], [("0 bytes",)]):  # nothing written since the last checkpoint
        return []
    sparse = sparse_tables(con, max_deleted_share)
    if sparse:
        con.execute(f"SET max_vacuum_tasks = {_COMPACTING_VACUUM_TASKS}")
    return sparse


def ensure_schemas(con: duckdb.DuckDBPyConnection, *schemas: str) -> None:
    for schema in schemas:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")


def ensure_quarantine(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schemas(con, "raw")
    con.execute(QUARANTINE_DDL)
    for column in ("category", "value"):  # a quarantine of an earlier version gains them
        con.execute(f"ALTER TABLE raw.quarantine ADD COLUMN IF NOT EXISTS {column} VARCHAR")


def quarantine_summary(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, int]]:
    """(source, stage, category, rows) of the quarantine; a row quarantined before categories
    were kept counts under its reason."""
    return con.execute(
        f"SELECT source, stage, coalesce(category, reason), count(*) FROM {QUARANTINE.sql} GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def table_exists(con: duckdb.DuckDBPyConnection, table: TableName) -> bool:
    if not is_duckdb(con):  # another engine's catalog (Spark's folders), asked directly
        return con.has_table(table.schema, table.name)
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [table.schema, table.name],
    ).fetchall()  # fetched to the end: a relation may follow on this connection
    return bool(found[0][0])


@dataclass(frozen=True)
class QuarantineReplacement:
    """The quarantined rows of some sources at one stage, replacing their previous ones."""

    sources: tuple[str, ...]
    stage: str
    staging: TableName  # holds QUARANTINE_COLUMNS


# Text columns of the warehouse tables that hold about one value per row:
# ids, contact points and the match keys built from them. DuckDB's default
# compression of text (a dictionary, then FSST) makes writing such a column
# three to four times as costly as writing it plain, and only halves it; on
# repetitive text (sources, names, cities, file names) it costs next to nothing
# and shrinks the column twenty- to a hundredfold. So these columns are
# stored plain and every other column keeps the default. At 1M persons the
# whole build spends 12-18 % less CPU (72 → 59-64 CPU seconds) for a warehouse
# file about twice as large (640 MB → 1.3 GB); see benchmarks/RESULTS.md.
PLAIN_TEXT_COLUMNS = frozenset({
    "source_record_id", "record_id_a", "record_id_b", "customer_id", "customer_ref",
    "transaction_id", "event_id", "anonymous_id",
    "email", "phone", "postcode", "email_key", "phone_key", "postcode_key", "address_key",
})  # fmt: skip


def create_table_as(
    con: duckdb.DuckDBPyConnection,
    table: TableName,
    select: str,
    params: object = None,
    plain_text: Collection[str] = (),
) -> None:
    """`CREATE TABLE <table> AS <select>`, with the text columns named in
    `PLAIN_TEXT_COLUMNS` or `plain_text` stored uncompressed (see above).

    A scratch table (schema `temp`) lives in memory and is never compressed.
    """
    if table.schema == SCRATCH or not is_duckdb(con):  # compression is DuckDB's own
        _execute(con, f"{create_table(table)} AS {select}", params)
        return
    plain = PLAIN_TEXT_COLUMNS | set(plain_text)
    columns = _execute(con, f"DESCRIBE {select}", params).fetchall()
    definitions = ", ".join(
        f"{quote_ident(name)} {dtype}"
        + (" USING COMPRESSION uncompressed" if dtype == "VARCHAR" and name in plain else "")
        for name, dtype, *_ in columns
    )
    con.execute(f"CREATE TABLE {table.sql} ({definitions})")
    _execute(con, f"INSERT INTO {table.sql} {select}", params)


def number_in_order(
    con: duckdb.DuckDBPyConnection,
    rows: TableName,
    order: Sequence[str],
    first: int,
    numbered: TableName,
    column: str = "record_key",
) -> None:
    """`numbered`: the rows of `rows` with `column` = first, first + 1, ... in the order of the
    columns `order` (ascending, NULLs last; the columns must tell every row apart, so the
    numbers do not depend on the engine). DuckDB numbers them with one window; a distributed
    engine (Spark) without funnelling every row through one task (`SparkWarehouse.number_rows`)."""
    if not is_duckdb(con):
        con.number_rows(rows, order, first, numbered, column)
        return
    ordered = ", ".join(f"{quote_ident(c)} NULLS LAST" for c in order)
    con.execute(
        f"{create_table(numbered)} AS "
        f"SELECT *, CAST($first - 1 + row_number() OVER (ORDER BY {ordered}) AS BIGINT) AS {quote_ident(column)} "
        f"FROM {rows.sql}",
        {"first": first},
    )


def is_duckdb(con: object) -> bool:
    """Whether `con` is DuckDB's own connection (not another engine's, see `domain/spark`)."""
    return isinstance(con, duckdb.DuckDBPyConnection)


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: object) -> duckdb.DuckDBPyConnection:
    return con.execute(sql) if params is None else con.execute(sql, params)


@contextmanager
def staged_tables(con: duckdb.DuckDBPyConnection, *targets: TableName) -> Iterator[list[TableName]]:
    """Staging names for `targets`; whatever is left of them is dropped on exit."""
    staging = [t.staging() for t in targets]
    try:
        yield staging
    finally:
        for table in staging:
            con.execute(f"DROP TABLE IF EXISTS {table.sql}")


@dataclass(frozen=True)
class RowReplacement:
    """Some rows of `target` replaced: the rows whose `record_key` is in `keys` (a SELECT)
    go, the rows of `rows` (a staging table with the target's columns) come in."""

    target: TableName
    rows: TableName
    keys: str


def swap_in(
    con: duckdb.DuckDBPyConnection,
    replacements: Sequence[tuple[TableName, TableName]],
    quarantine: QuarantineReplacement | None = None,
    appends: Sequence[tuple[TableName, TableName]] = (),
    row_replacements: Sequence[RowReplacement] = (),
    versions: Sequence[TableVersion] = (),
    built_from: Sequence[BuiltFrom] = (),
    statements: Sequence[tuple[str, object]] = (),
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Replace each target with its staging table (and quarantine rows), append the rows of
    each `appends` table to its target (an append-only history), replace the rows of each
    `row_replacements`, run the `statements` (SQL, parameters) that update tables in place and
    record the tables' `versions` and what they were `built_from`, in one transaction;
    `before_commit` may still refuse it all by raising."""
    if versions or built_from:
        ensure_state(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for statement, params in [*statements, *record_statements(versions, built_from)]:
            _execute(con, statement, params)
        for replacement in row_replacements:
            con.execute(f"DELETE FROM {replacement.target.sql} WHERE record_key IN {replacement.keys}")
            con.execute(f"INSERT INTO {replacement.target.sql} BY NAME SELECT * FROM {replacement.rows.sql}")
            con.execute(f"DROP TABLE {replacement.rows.sql}")
        for target, staging in replacements:
            con.execute(f"DROP TABLE IF EXISTS {target.sql}")
            con.execute(f"ALTER TABLE {staging.sql} RENAME TO {quote_ident(target.name)}")
        for target, rows in appends:
            con.execute(f"INSERT INTO {target.sql} BY NAME SELECT * FROM {rows.sql}")
        if quarantine is not None:
            con.execute(
                "DELETE FROM raw.quarantine WHERE stage = ? AND list_contains(?, source)",
                [quarantine.stage, list(quarantine.sources)],
            )
            columns = ", ".join(QUARANTINE_COLUMNS)
            con.execute(f"INSERT INTO raw.quarantine ({columns}) SELECT {columns} FROM {quarantine.staging.sql}")
        if before_commit is not None:
            before_commit()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def drop_abandoned_staging_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop staging tables left by processes that died mid-build (see PROCESS_TOKEN);
    returns their names. Staging tables of this process may be in use and stay."""
    found = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary AND starts_with(table_name, ?) "
        "AND NOT contains(table_name, ?)",
        [STAGING_PREFIX, f"_{PROCESS_TOKEN}_"],
    ).fetchall()
    for schema, name in found:
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(schema)}.{quote_ident(name)}")
    return [f"{schema}.{name}" for schema, name in found]


@contextmanager
def arrow_views(con: duckdb.DuckDBPyConnection, views: Mapping[str, object]) -> Iterator[None]:
    """Tables held in Python (Arrow, pandas) visible to SQL under their names while the block runs."""
    for name, table in views.items():
        con.register(name, table)
    try:
        yield
    finally:
        for name in views:
            con.unregister(name)


def table_columns(con: duckdb.DuckDBPyConnection, table: TableName) -> list[tuple[str, str]]:
    """(name, type) of each column, in order; none when there is no such table."""
    if not is_duckdb(con):
        return con.columns(table.schema, table.name) if con.has_table(table.schema, table.name) else []
    # a scratch table lives in the temp catalog's main schema
    catalog, schema = ("temp", "main") if table.schema == SCRATCH else (None, table.schema)
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE coalesce(table_catalog = ?, table_catalog <> 'temp') AND table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [catalog, schema, table.name],
    ).fetchall()
    return [(name, dtype) for name, dtype in rows]


def row_count(con: duckdb.DuckDBPyConnection, table: TableName) -> int:
    # fetched to the end: an unfinished result would block the next statement on this connection
    return con.execute(f"SELECT count(*) FROM {table.sql}").fetchall()[0][0]
