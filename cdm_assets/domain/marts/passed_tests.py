"""Data tests that follow the changes: a test that passed reads only what changed since.

A test whose failing rows can only come from rows a build changed (a relinked
transaction, a rebuilt golden record, a record that joined a customer) need
not read whole tables after it passed: when every table it reads is the
version it passed on, or one whose changes since that version are recorded
(`table_versions`), the rows those changes touch are all it must test, and the
failing rows it finds there are all the table has. Where it passed is kept in
`cdm_state.data_test_passes` (test, table, version). A failing test keeps no
pass, so the next run tests whole tables again, as does a table written whole
(a full build's version follows nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import duckdb

from cdm_assets.domain.sql import TableName
from cdm_assets.domain.table_versions import STATE_SCHEMA, Delta, TableVersion, current_versions, delta
from cdm_assets.domain.warehouse import swap_in, table_exists

PASSES = TableName(STATE_SCHEMA, "data_test_passes")
Outcome = TypeVar("Outcome")


def changes_since_pass(
    con: duckdb.DuckDBPyConnection, test: str, current: Mapping[TableName, TableVersion], tables: Sequence[TableName]
) -> dict[TableName, Delta] | None:
    """Per table, how the `current` version relates to the one `test` last passed on (unchanged,
    or changes recorded); None when the test must read whole tables: it has not passed on
    versions of all `tables`, or one of them changed in a way not recorded."""
    if not table_exists(con, PASSES):
        return None
    rows = con.execute(f"SELECT table_name, version FROM {PASSES.sql} WHERE test_name = ?", [test]).fetchall()
    passed_on = {TableName.parse(name): version for name, version in rows}
    if set(passed_on) != set(tables):
        return None
    deltas = {table: delta(passed_on[table], current.get(table)) for table in tables}
    return None if Delta.UNKNOWN in deltas.values() else deltas


def record_outcome(
    con: duckdb.DuckDBPyConnection, test: str, versions: Mapping[TableName, TableVersion], passed: bool
) -> None:
    """Keep the versions `test` passed on; a failed test keeps none."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {PASSES.sql} (test_name VARCHAR, table_name VARCHAR, version VARCHAR)")
    statements: list[tuple[str, object]] = [(f"DELETE FROM {PASSES.sql} WHERE test_name = ?", [test])]
    if passed:
        statements += [
            (f"INSERT INTO {PASSES.sql} VALUES (?, ?, ?)", [test, str(table), version.version])
            for table, version in sorted(versions.items(), key=lambda item: str(item[0]))
        ]
    swap_in(con, [], statements=statements)


def forget_passes(con: duckdb.DuckDBPyConnection) -> None:
    """Every data test reads whole tables next time (after rows were erased everywhere)."""
    if table_exists(con, PASSES):
        con.execute(f"DELETE FROM {PASSES.sql}")


def follow_changes(
    con: duckdb.DuckDBPyConnection,
    test: str,
    tables: Sequence[TableName],
    whole: Callable[[], Outcome],
    changed: Callable[[Mapping[TableName, Delta]], Outcome | None],
    passed: Callable[[Outcome], bool],
    may_follow: bool = True,
) -> tuple[Outcome, bool]:
    """Run `test` on what changed since it last passed (`changed`, given each table's delta;
    it may answer None when the changes are not all known), or on whole tables (`whole`);
    keep where it passed. Returns the outcome and whether it followed the changes. A table
    without a version is always read whole, and so is every table unless `may_follow`."""
    current = current_versions(con, tables)
    known = may_follow and len(current) == len(tables)
    deltas = changes_since_pass(con, test, current, tables) if known else None
    outcome = None if deltas is None else changed(deltas)
    followed = outcome is not None
    if outcome is None:
        outcome = whole()
    record_outcome(con, test, current if len(current) == len(tables) else {}, passed(outcome))
    return outcome, followed
