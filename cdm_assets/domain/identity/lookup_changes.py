"""What a lookup build changed since the build before it, so later steps can work on that alone.

Record keys are kept across builds: a record the previous lookup held (same
source and record id) keeps its `record_key`, a new record gets the next key
never handed out, and the key of a removed record is not handed out again. The
first build numbers the records 0..n-1 in (source, source_record_id) order.

Each build writes, in the `identity_state` schema, beside the lookup:

- `<lookup>_changes`: the previous version (`side` = 'old') of each removed or
  changed record and the new version (`side` = 'new') of each added or changed
  record, with every lookup column;
- `<lookup>_build`: one row naming this build and the build it changed, the
  next free record key, and whether the changes are complete (they are not on
  a first build, or when the lookup's columns changed).

Later steps that remember which build they last saw apply the changes when
they follow on from that build, and rebuild in full otherwise.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.sql import TableName, create_table
from cdm_assets.domain.warehouse import table_columns, table_exists

STATE_SCHEMA = "identity_state"


@dataclass(frozen=True)
class LookupBuild:
    """One lookup build: its id, the build it followed, and what it added, changed and removed
    (None on a build whose changes are not known: the first, or after the columns changed)."""

    build_id: str
    previous_build_id: str | None
    added: int | None = None
    changed: int | None = None
    removed: int | None = None

    @property
    def complete(self) -> bool:
        return self.added is not None


def changes_table(lookup: TableName) -> TableName:
    return TableName(STATE_SCHEMA, f"{lookup.name}_changes")


def build_table(lookup: TableName) -> TableName:
    return TableName(STATE_SCHEMA, f"{lookup.name}_build")


def record_lookup_changes(
    con: duckdb.DuckDBPyConnection, lookup: TableName, staging: TableName, changes: TableName, build: TableName
) -> LookupBuild:
    """Give the records of `staging` (a new lookup, numbered 0..n-1) the keys they had in
    `lookup` (or the next free ones), and write the changes from `lookup` to `staging` into
    `changes` and this build into `build` (both staging names of the state tables)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    previous = _previous_build(con, lookup)
    build_id = uuid.uuid4().hex
    comparable = previous is not None and table_columns(con, lookup) == table_columns(con, staging)
    next_key = con.execute(f"SELECT count(*) FROM {staging.sql}").fetchall()[0][0]
    if comparable:
        next_key = _keep_record_keys(con, lookup, staging, previous[1])
        con.execute(
            f"""
            {create_table(changes)} AS
            SELECT 'old' AS side, * FROM (SELECT * FROM {lookup.sql} EXCEPT SELECT * FROM {staging.sql})
            UNION ALL
            SELECT 'new' AS side, * FROM (SELECT * FROM {staging.sql} EXCEPT SELECT * FROM {lookup.sql})
            """
        )
        added, changed, removed = con.execute(
            f"""
            SELECT count(*) FILTER (sides = ['new']), count(*) FILTER (len(sides) = 2),
                   count(*) FILTER (sides = ['old'])
            FROM (SELECT record_key, list(side ORDER BY side) AS sides FROM {changes.sql} GROUP BY record_key)
            """
        ).fetchall()[0]
    else:
        con.execute(f"{create_table(changes)} AS SELECT 'new' AS side, * FROM {staging.sql} LIMIT 0")
        added = changed = removed = None
    con.execute(
        f"""
        {create_table(build)} AS
        SELECT $build_id AS build_id, $previous::VARCHAR AS previous_build_id, $next_key::BIGINT AS next_record_key,
               $complete AS complete
        """,
        {"build_id": build_id, "previous": previous[0] if previous else None, "next_key": next_key,
         "complete": comparable},
    )  # fmt: skip
    return LookupBuild(build_id, previous[0] if previous else None, added, changed, removed)


def current_build(con: duckdb.DuckDBPyConnection, lookup: TableName) -> LookupBuild | None:
    """The build that wrote the lookup now in the warehouse, with its change counts."""
    table = build_table(lookup)
    if not table_exists(con, table):
        return None
    build_id, previous, complete = con.execute(
        f"SELECT build_id, previous_build_id, complete FROM {table.sql}"
    ).fetchall()[0]
    if not complete:
        return LookupBuild(build_id, previous)
    added, changed, removed = con.execute(
        f"""
        SELECT count(*) FILTER (sides = ['new']), count(*) FILTER (len(sides) = 2), count(*) FILTER (sides = ['old'])
        FROM (SELECT record_key, list(side ORDER BY side) AS sides FROM {changes_table(lookup).sql} GROUP BY ALL)
        """
    ).fetchall()[0]
    return LookupBuild(build_id, previous, added, changed, removed)


def _previous_build(con: duckdb.DuckDBPyConnection, lookup: TableName) -> tuple[str, int] | None:
    """(build id, next free record key) of the lookup in the warehouse; None when there is none.
    A lookup written before builds were recorded counts as a build whose next key follows its largest."""
    if not table_exists(con, lookup):
        return None
    table = build_table(lookup)
    if table_exists(con, table):
        return con.execute(f"SELECT build_id, next_record_key FROM {table.sql}").fetchall()[0]
    return "", con.execute(f"SELECT coalesce(max(record_key), -1) + 1 FROM {lookup.sql}").fetchall()[0][0]


def _keep_record_keys(con: duckdb.DuckDBPyConnection, lookup: TableName, staging: TableName, next_key: int) -> int:
    """Renumber `staging`: the keys `lookup` gave the same records, new records the keys from
    `next_key` on in (source, source_record_id) order; returns the next free key after them."""
    con.execute(
        f"""
        UPDATE {staging.sql} AS staging SET record_key = kept.record_key
        FROM (
            SELECT new.record_key AS position,
                   coalesce(old.record_key, $next_key - 1 + row_number() OVER (
                       PARTITION BY old.record_key IS NULL ORDER BY new.record_key)) AS record_key
            FROM {staging.sql} AS new
            LEFT JOIN {lookup.sql} AS old USING (source, source_record_id)
        ) AS kept
        WHERE staging.record_key = kept.position AND staging.record_key <> kept.record_key
        """,
        {"next_key": next_key},
    )
    return con.execute(
        f"SELECT greatest(coalesce(max(record_key), -1) + 1, $next_key) FROM {staging.sql}", {"next_key": next_key}
    ).fetchall()[0][0]
