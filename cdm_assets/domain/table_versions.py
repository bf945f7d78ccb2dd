"""Table versions: which write of each table is in the warehouse, and what a derived
table was built from.

Every write of a table the incremental steps depend on gets a new version (an
opaque id) in `cdm_state.table_versions`, in the transaction that swaps the
table in. A table that also records its changes since an earlier version (the
Customer ID map does) names that version in `follows`. A derived table records
the versions of its inputs it was built from in `cdm_state.table_inputs`.

A step can then tell, for each input, whether it is the one it was built from
(`Delta.NONE`), one whose changes since then are recorded (`Delta.RECORDED`),
or something else (`Delta.UNKNOWN`: build in full).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.sql import TableName

STATE_SCHEMA = "cdm_state"
VERSIONS = TableName(STATE_SCHEMA, "table_versions")
INPUTS = TableName(STATE_SCHEMA, "table_inputs")


@dataclass(frozen=True)
class TableVersion:
    """One write of `table`; `follows`: the version its recorded changes start at (None: not recorded)."""

    table: TableName
    version: str
    follows: str | None = None

    @staticmethod
    def new(table: TableName, follows: str | None = None) -> TableVersion:
        return TableVersion(table, uuid.uuid4().hex, follows)


@dataclass(frozen=True)
class BuiltFrom:
    """The versions of its inputs a table was built from (None: an input with no version)."""

    table: TableName
    inputs: Mapping[TableName, str | None]


class Delta(enum.Enum):
    NONE = "unchanged since"
    RECORDED = "changes recorded since"
    UNKNOWN = "unknown changes since"


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSIONS.sql} "
        "(table_name VARCHAR PRIMARY KEY, version VARCHAR NOT NULL, follows VARCHAR)"
    )
    con.execute(f"CREATE TABLE IF NOT EXISTS {INPUTS.sql} (table_name VARCHAR, input_name VARCHAR, version VARCHAR)")


def record_statements(
    versions: Sequence[TableVersion], built_from: Sequence[BuiltFrom]
) -> list[tuple[str, list[object]]]:
    """The statements (with parameters) that record `versions` and `built_from`; run them in
    the transaction that swaps the tables in (after `ensure_state`)."""
    statements: list[tuple[str, list[object]]] = []
    for written in versions:
        name = str(written.table)
        statements.append((f"DELETE FROM {VERSIONS.sql} WHERE table_name = ?", [name]))
        statements.append((f"INSERT INTO {VERSIONS.sql} VALUES (?, ?, ?)", [name, written.version, written.follows]))
    for built in built_from:
        statements.append((f"DELETE FROM {INPUTS.sql} WHERE table_name = ?", [str(built.table)]))
        for table, version in sorted(built.inputs.items(), key=lambda item: str(item[0])):
            statements.append((f"INSERT INTO {INPUTS.sql} VALUES (?, ?, ?)", [str(built.table), str(table), version]))
    return statements


def current_versions(con: duckdb.DuckDBPyConnection, tables: Sequence[TableName]) -> dict[TableName, TableVersion]:
    """The version of each of `tables` that has one."""
    if not _state_exists(con):
        return {}
    by_name = {str(t): t for t in tables}
    rows = con.execute(
        f"SELECT table_name, version, follows FROM {VERSIONS.sql} WHERE list_contains(?, table_name)",
        [list(by_name)],
    ).fetchall()
    return {by_name[name]: TableVersion(by_name[name], version, follows) for name, version, follows in rows}


def built_from_now(con: duckdb.DuckDBPyConnection, table: TableName, inputs: Sequence[TableName]) -> BuiltFrom:
    """`table` built from `inputs` as they are now (None for an input with no version)."""
    return BuiltFrom(table, _version_ids(current_versions(con, inputs), inputs))


def _version_ids(current: Mapping[TableName, TableVersion], tables: Sequence[TableName]) -> dict[TableName, str | None]:
    return {t: current[t].version if t in current else None for t in tables}


def recorded_inputs(con: duckdb.DuckDBPyConnection, table: TableName) -> dict[TableName, str | None] | None:
    """The input versions `table` was last built from; None when none were recorded."""
    if not _state_exists(con):
        return None
    rows = con.execute(f"SELECT input_name, version FROM {INPUTS.sql} WHERE table_name = ?", [str(table)]).fetchall()
    if not rows:
        return None
    return {TableName.parse(name): version for name, version in rows}


def delta(recorded: str | None, current: TableVersion | None) -> Delta:
    """How an input (`current`) relates to the version a table was built from (`recorded`)."""
    if recorded is None or current is None:
        return Delta.UNKNOWN
    if current.version == recorded:
        return Delta.NONE
    if current.follows == recorded:
        return Delta.RECORDED
    return Delta.UNKNOWN


@dataclass(frozen=True)
class InputDeltas:
    """How each input of a table relates to what it was built from, and the versions to record
    once it is built from the inputs as they are now."""

    deltas: Mapping[TableName, Delta]
    now: BuiltFrom

    def all(self, *allowed: Delta) -> bool:
        return all(d in allowed for d in self.deltas.values())

    def of(self, table: TableName) -> Delta:
        return self.deltas[table]


def input_deltas(con: duckdb.DuckDBPyConnection, table: TableName, inputs: Sequence[TableName]) -> InputDeltas:
    """The deltas of `inputs` since `table` was last built (all unknown when it was built from
    other inputs, or never recorded)."""
    current = current_versions(con, inputs)
    now = BuiltFrom(table, _version_ids(current, inputs))
    recorded = recorded_inputs(con, table)
    if recorded is None or set(recorded) != set(inputs):
        return InputDeltas({t: Delta.UNKNOWN for t in inputs}, now)
    return InputDeltas({t: delta(recorded[t], current.get(t)) for t in inputs}, now)


def forget_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """Every derived table builds in full next time (after rows were erased everywhere)."""
    if _state_exists(con):
        con.execute(f"DELETE FROM {INPUTS.sql}")


def _state_exists(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN (?, ?)",
        [STATE_SCHEMA, VERSIONS.name, INPUTS.name],
    ).fetchall()[0][0]
    return found == 2
