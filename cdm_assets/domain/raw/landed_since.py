"""A source's load that reads only the files that landed or changed since its last load.

The rows of a file depend on that file alone, except for duplicate record ids,
where the newest file's row wins. So when no file went away, every file read
leaves the raw table's columns as a load of every file makes them (each load
records each file's columns) and the erasures are the ones the last load checked, reading the new and changed files is enough
(and faster, while they hold less than half of the source's bytes):
their rows replace the rows of the changed files, and every row of the files
kept whose id is involved (an id read now, or one the changed files held)
is ranked again with them, accepted or quarantined as a load of every file
would. Otherwise, and when a row quarantined as a duplicate would now win
(its winner gone), the load reads every file (None here).

The ids involved are the only records whose rows can differ from the last
load: they are recorded (`raw_changes_table`), and the table's version
follows the last one, so the source lookup reads those records alone.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb

from cdm_assets.domain.plan import Source
from cdm_assets.domain.raw.accepted_rows import (
    HELPER_COLUMNS,
    create_rejects_table,
    drop_suppressed_rejects,
    move_rejects_out,
    record_id_sql,
    require_mapped_columns,
)
from cdm_assets.domain.raw.land_file import RAW_STAGE, ColumnOrigins, land_file
from cdm_assets.domain.raw.landed import LandingError
from cdm_assets.domain.raw.manifest import (
    ReadFile,
    current_suppressions,
    file_stamp,
    manifest_statements,
    read_manifest,
)
from cdm_assets.domain.raw.report import RawLoadReport
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident
from cdm_assets.domain.table_versions import STATE_SCHEMA, TableVersion, current_versions
from cdm_assets.domain.warehouse import QUARANTINE, QUARANTINE_COLUMNS, row_count, staged_tables, swap_in

DUPLICATE = "duplicate record id"
# Helper columns a load drops once the rejects are out.
DROPPED_COLUMNS = frozenset({"_bad_column", "_raw"})
# Replacing rows in place costs more per row than writing a table anew: when the files to
# read hold this share of the source's bytes or more, the load reads every file.
FOLLOW_BELOW_SHARE = 0.5


def load_landed_since(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: Source,
    files: list[Path],
    swap_lock: AbstractContextManager,
    follow_below_share: float = FOLLOW_BELOW_SHARE,
) -> RawLoadReport | None:
    """Load the files of `files` that are new or changed since the last load of `name`;
    None when that would not give what loading every file gives, or when those files hold
    `follow_below_share` of the source's bytes or more."""
    target = TableName("raw", name)
    recorded = read_manifest(con, name)
    if recorded is None:
        return None
    previous, suppressions = recorded
    if set(previous) - {str(f) for f in files} or current_suppressions(con) != suppressions:
        return None  # a file went away, or someone was erased since
    landed_now = [f for f in files if str(f) not in previous or not previous[str(f)].same_content(f)]
    if not landed_now:  # nothing to read: the table stays as it is, its version too
        return _report(con, name, files, previous, {})
    if sum(_size(f) for f in landed_now) >= follow_below_share * sum(_size(f) for f in files):
        return None  # most of the source to read again: building the table anew is faster
    work = [
        TableName(SCRATCH, f"{name}_{part}") for part in ("read", "landed", "rejects", "again", "again_quarantined")
    ]
    changes = raw_changes_table(name)
    with staged_tables(con, *work, changes) as (read_rows, landed, rejects, again, again_quarantined, involved):
        create_rejects_table(con, rejects)
        columns, read = ColumnOrigins(), {}
        for path in landed_now:
            stamp = file_stamp(path)
            rows_in, suppressed = land_file(con, name, source, path, read_rows, rejects, columns, suppressions.salt)
            read[str(path)] = ReadFile(str(path), *stamp, rows_in, suppressed, tuple(columns.by_file[str(path)]))
        # the table's columns (and where `_file` and `_row_number` stand) are those a load of every file gives
        expected = _columns_of_every_file({**previous, **read}, files)
        if expected is None or expected != _described(con, target):
            return None
        _with_columns(con, read_rows, [c for c in expected if c[0] not in HELPER_COLUMNS], landed)
        require_mapped_columns(con, name, source, landed, landed_now)
        changed = [file for file in read if file in previous]
        if not _rank_again(con, name, source, landed, rejects, changed, (again, again_quarantined, involved)):
            return None
        if suppressions.salt is not None:
            for file, dropped in drop_suppressed_rejects(con, name, rejects, suppressions.salt).items():
                read[file] = dataclasses.replace(read[file], suppressed=read[file].suppressed + dropped)
        files_now = {**previous, **read}

        def replaced(again: TableName) -> str:  # the rows of changed files and the rows ranked again
            return f"(list_contains($changed, _file) OR (_file, _row_number) IN (SELECT (_file, _row_number) FROM {again.sql}))"

        columns_out = ", ".join(QUARANTINE_COLUMNS)
        statements = [
            (f"DELETE FROM {target.sql} WHERE {replaced(again)}", {"changed": changed}),
            (f"INSERT INTO {target.sql} BY NAME SELECT * FROM {landed.sql}", None),
            (
                f"DELETE FROM {QUARANTINE.sql} WHERE source = $source AND stage = $stage AND {replaced(again_quarantined)}",
                {"source": name, "stage": RAW_STAGE, "changed": changed},
            ),
            (f"INSERT INTO {QUARANTINE.sql} ({columns_out}) SELECT {columns_out} FROM {rejects.sql}", None),
            *manifest_statements(name, [files_now[str(f)] for f in files], suppressions),
        ]
        report = RawLoadReport(name, target, [str(f) for f in files])

        def accounted() -> None:  # in the transaction: never swap in a loss
            nonlocal report
            report = _report(con, name, files, files_now, read)
            counted = report.rows_accepted + report.rows_quarantined + report.suppressed
            if report.rows_in != counted:
                raise LandingError(
                    f"sources.{name}: {report.rows_in} rows in, but {report.rows_accepted} accepted, "
                    f"{report.rows_quarantined} quarantined and {report.suppressed} suppressed; nothing was changed"
                )

        last = current_versions(con, [target]).get(target)
        version = TableVersion.new(target, follows=last.version if last else None)
        with swap_lock:
            swap_in(con, [(changes, involved)], statements=statements, versions=[version], before_commit=accounted)
    return report


def raw_changes_table(name: str) -> TableName:
    """The record ids (`record_id`, as text) whose rows the last load of source `name` may have
    changed, added or removed, when that load followed the one before (the raw table's version
    then `follows` the previous one)."""
    return TableName(STATE_SCHEMA, f"raw_{name}_changes")


def _report(
    con: duckdb.DuckDBPyConnection,
    name: str,
    files: list[Path],
    read_files: dict[str, ReadFile],
    read_now: dict[str, ReadFile],
) -> RawLoadReport:
    """The figures of the source as a whole, as a load of every file reports them; `files_read`
    counts the files this load read."""
    target = TableName("raw", name)
    report = RawLoadReport(name, target, [str(f) for f in files], files_read=len(read_now))
    report.rows_in = sum(read_files[str(f)].rows_in for f in files)
    report.suppressed = sum(read_files[str(f)].suppressed for f in files)
    report.rows_accepted = con.execute(f"SELECT count(*) FROM {target.sql}").fetchall()[0][0]
    report.quarantined_by_reason = Counter(
        dict(
            con.execute(
                f"SELECT category, count(*) FROM {QUARANTINE.sql} WHERE source = ? AND stage = ? GROUP BY ALL",
                [name, RAW_STAGE],
            ).fetchall()
        )
    )
    return report


def _columns_of_every_file(read: dict[str, ReadFile], files: list[Path]) -> list[tuple[str, str]] | None:
    """The columns a load of every file makes, in order: the first file's, then each column a
    later file brings (files in name order, names compared but for case), without the helper
    columns a load drops; None when a file's columns are not known or two files disagree on a
    type (a full load says which)."""
    origin: dict[str, tuple[str, str]] = {}
    for path in files:
        described = read[str(path)].columns
        if described is None:
            return None
        for column, dtype in described:
            if column in DROPPED_COLUMNS:
                continue
            known = origin.setdefault(column.casefold(), (column, dtype))
            if known[1] != dtype:
                return None
    return list(origin.values())


def _with_columns(
    con: duckdb.DuckDBPyConnection, read_rows: TableName, columns: list[tuple[str, str]], landed: TableName
) -> None:
    """`landed`: the rows read, with every column of the table in its order (NULL where a file
    had none), so a quarantined row's raw row reads as in a load of every file."""
    present = {column.casefold(): column for column, _ in _data_columns(con, read_rows)}
    selected = [
        quote_ident(present[column.casefold()]) if column.casefold() in present else f"NULL::{dtype}"
        for column, dtype in columns
    ]
    aliased = ", ".join(f"{value} AS {quote_ident(column)}" for value, (column, _) in zip(selected, columns))
    helpers = ", ".join(quote_ident(c) for c in sorted(HELPER_COLUMNS))
    con.execute(f"{create_table(landed)} AS SELECT {aliased}, {helpers} FROM {read_rows.sql}")


def _size(path: Path) -> int:
    return path.stat().st_size


def _described(con: duckdb.DuckDBPyConnection, table: TableName) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {table.sql}").fetchall()]  # a scratch table too


def _data_columns(con: duckdb.DuckDBPyConnection, table: TableName) -> list[tuple[str, str]]:
    return [(column, dtype) for column, dtype in _described(con, table) if column not in HELPER_COLUMNS]


def _rank_again(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: Source,
    landed: TableName,
    rejects: TableName,
    changed: list[str],
    ranked: tuple[TableName, TableName, TableName],
) -> bool:
    """Rank the duplicates the rows read now take part in, as a load of every file would, and
    move the losers to `rejects`; False when that cannot be done here. `ranked` names the
    tables written: `again`, `again_quarantined` and `involved` (record_id: the ids involved).

    The ids involved are those of the rows read now and of the changed files' rows before
    (accepted, or quarantined as duplicates). Their rows in the files kept come back into
    the ranking: accepted ones (`again`) as they are, quarantined ones (`again_quarantined`)
    by their id, file and row, keeping their raw row. One of those winning now (its winner
    gone) would have to be rebuilt from its raw row: a load of every file does that instead.
    """
    target, key = TableName("raw", name), record_id_sql(source)
    again, again_quarantined, involved = ranked
    quarantined = f"""
        SELECT _file, _row_number, value, raw_row FROM {QUARANTINE.sql}
        WHERE source = $source AND stage = $stage AND category = $duplicate
    """
    params = {"source": name, "stage": RAW_STAGE, "duplicate": DUPLICATE, "changed": changed}
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {involved.schema}")
    con.execute(
        f"""
        {create_table(involved)} AS
        SELECT {key} AS record_id FROM {landed.sql} WHERE _bad_column IS NULL AND {key} IS NOT NULL
        UNION SELECT {key} FROM {target.sql} WHERE list_contains($changed, _file)
        UNION SELECT value FROM ({quarantined}) WHERE list_contains($changed, _file)
        """,
        params,
    )
    ids = f"SELECT record_id FROM {involved.sql}"
    con.execute(
        f"""
        {create_table(again)} AS
        SELECT * FROM {target.sql} WHERE NOT list_contains($changed, _file) AND {key} IN ({ids})
        """,
        {"changed": changed},
    )
    con.execute(
        f"""
        {create_table(again_quarantined)} AS
        SELECT * FROM ({quarantined}) WHERE NOT list_contains($changed, _file) AND value IN ({ids})
        """,
        params,
    )
    record_id = quote_ident(source.record_id)
    if row_count(con, again_quarantined) and dict(_data_columns(con, landed)).get(source.record_id) != "VARCHAR":
        return False  # an id read back from text would need its type
    con.execute(f"INSERT INTO {landed.sql} BY NAME SELECT * FROM {again.sql}")
    con.execute(
        f"INSERT INTO {landed.sql} ({record_id}, _file, _row_number) "
        f"SELECT value, _file, _row_number FROM {again_quarantined.sql}"
    )
    move_rejects_out(con, name, source, landed, rejects)
    row = "(_file, _row_number)"
    rebuilt = f"SELECT count(*) FROM {landed.sql} WHERE {row} IN (SELECT {row} FROM {again_quarantined.sql})"
    if con.execute(rebuilt).fetchall()[0][0]:
        return False
    con.execute(
        f"""
        UPDATE {rejects.sql} AS r SET raw_row = q.raw_row FROM {again_quarantined.sql} AS q
        WHERE r._file = q._file AND r._row_number = q._row_number
        """
    )
    return True
