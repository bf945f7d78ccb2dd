"""Build `raw.<source>` from every landed file of a source.

Accepted rows keep their columns plus `_file` and `_row_number`. Every other
input row lands in `raw.quarantine` with its reason and raw content: rows the
parser could not split, undecodable bytes, malformed JSON, a missing record
id, or a record id seen before. Rows in are counted without the parser
(physical lines of CSV and JSON lines, Parquet's row count), and a load whose
rows in differ from rows accepted + rows quarantined fails. The new table and the source's quarantine rows replace the
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

from cdm_assets.domain.plan import Source
from cdm_assets.domain.privacy.suppression import Suppressed, active_salt, text_suppressed_sql
from cdm_assets.domain.raw.land_file import RAW_STAGE, ColumnOrigins, land_file
from cdm_assets.domain.raw.landed import LandingError
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.table_versions import TableVersion
from cdm_assets.domain.warehouse import (
    QuarantineReplacement,
    ensure_quarantine,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

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
    suppressed: int = 0  # rows of erased people left out (privacy.suppressions)
    seconds: float = 0.0  # wall time of the load, swap included

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())


def landed_files(pattern: Path) -> list[Path]:
    """The files a source's glob matches now, in name order."""
    return sorted(Path(p) for p in glob.glob(os.path.normpath(pattern), recursive=True) if Path(p).is_file())


def load_raw_sources(
    con: duckdb.DuckDBPyConnection,
    sources: Mapping[str, tuple[Source, list[Path]]],
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
    source: Source,
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
    salt = active_salt(con)
    # The rejects wait in memory (a scratch table): an erased person's rejected rows are
    # taken out before anything reaches the warehouse file.
    with staged_tables(con, target, TableName(SCRATCH, f"{name}_rejects")) as (landed, rejects):
        _create_rejects_table(con, rejects)
        columns = ColumnOrigins()
        for path in files:
            rows_in, suppressed = land_file(con, name, source, path, landed, rejects, columns, salt)
            report.rows_in += rows_in
            report.suppressed += suppressed
        if not files:
            _create_empty_landed(con, source, landed)
        _require_mapped_columns(con, name, source, landed, files)
        _move_rejects_out(con, name, source, landed, rejects)
        if salt is not None:
            report.suppressed += _drop_suppressed_rejects(con, name, rejects, salt)
        report.rows_accepted = row_count(con, landed)
        report.quarantined_by_reason = Counter(
            dict(con.execute(f"SELECT category, count(*) FROM {rejects.sql} GROUP BY ALL").fetchall())
        )
        accounted = report.rows_accepted + report.rows_quarantined + report.suppressed
        if report.rows_in != accounted:  # never swap in a loss
            raise LandingError(
                f"sources.{name}: {report.rows_in} rows in, but {report.rows_accepted} accepted, "
                f"{report.rows_quarantined} quarantined and {report.suppressed} suppressed; nothing was changed"
            )
        with swap_lock:
            swap_in(
                con,
                [(target, landed)],
                QuarantineReplacement((name,), RAW_STAGE, rejects),
                versions=[TableVersion.new(target)],
            )
    report.seconds = time.perf_counter() - started
    return report


def ensure_raw_tables(con: duckdb.DuckDBPyConnection, sources: dict[str, Source]) -> list[str]:
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
    if created:
        swap_in(con, [], versions=[TableVersion.new(TableName("raw", name)) for name in created])
    return created


def _drop_suppressed_rejects(con: duckdb.DuckDBPyConnection, name: str, rejects: TableName, salt: str) -> int:
    """Delete the rejected rows whose raw text holds a suppressed identifier; returns how many."""
    before = row_count(con, rejects)
    con.execute(f"DELETE FROM {rejects.sql} WHERE {text_suppressed_sql('raw_row', sql_string(name), Suppressed(salt))}")
    return before - row_count(con, rejects)


def _create_rejects_table(con: duckdb.DuckDBPyConnection, rejects: TableName) -> None:
    con.execute(
        f"""
        {create_table(rejects)} (
            source VARCHAR, stage VARCHAR, _file VARCHAR, _row_number BIGINT,
            column_name VARCHAR, reason VARCHAR, category VARCHAR, raw_row VARCHAR, value VARCHAR
        )
        """
    )


def _create_empty_landed(con: duckdb.DuckDBPyConnection, source: Source, landed: TableName) -> None:
    columns = ", ".join(f"{quote_ident(c)} VARCHAR" for c in source.columns_used())
    con.execute(
        f"CREATE TABLE {landed.sql} ({columns}, _file VARCHAR, _row_number BIGINT, _bad_column VARCHAR, _raw VARCHAR)"
    )


def _require_mapped_columns(
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


def _move_rejects_out(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: Source,
    landed: TableName,
    rejects: TableName,
) -> None:
    """Quarantine undecodable rows, missing and duplicate record ids; delete them from `landed`."""
    record_id = quote_ident(source.record_id)
    data_columns = [row[0] for row in con.execute(f"DESCRIBE {landed.sql}").fetchall() if row[0] not in _HELPER_COLUMNS]
    row_json = (
        "CAST(to_json(struct_pack("
        + ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in data_columns)
        + ")) AS VARCHAR)"
    )
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


_HELPER_COLUMNS = {"_file", "_row_number", "_bad_column", "_raw"}
