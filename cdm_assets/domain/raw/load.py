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

import dataclasses
import glob
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import duckdb

from cdm_assets.domain.plan import Source
from cdm_assets.domain.privacy.suppression import active_salt
from cdm_assets.domain.raw.accepted_rows import (
    create_empty_landed,
    create_rejects_table,
    drop_suppressed_rejects,
    move_rejects_out,
    require_mapped_columns,
)
from cdm_assets.domain.raw.land_file import RAW_STAGE, ColumnOrigins, land_file
from cdm_assets.domain.raw.landed import LandingError
from cdm_assets.domain.raw.landed_since import FOLLOW_BELOW_SHARE, load_landed_since
from cdm_assets.domain.raw.manifest import ReadFile, current_suppressions, file_stamp, manifest_statements
from cdm_assets.domain.raw.report import RawLoadReport
from cdm_assets.domain.sql import SCRATCH, TableName, quote_ident
from cdm_assets.domain.table_versions import TableVersion
from cdm_assets.domain.warehouse import (
    QuarantineReplacement,
    ensure_quarantine,
    is_duckdb,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

# Sources loaded at once by `load_raw_sources`. A load is half single-threaded
# parsing and Python, half DuckDB on every core: two at a time keep a 2-core
# machine busy without holding three large files in memory.
CONCURRENT_LOADS = 2


def landed_files(pattern: Path) -> list[Path]:
    """The files a source's glob matches now, in name order."""
    return sorted(Path(p) for p in glob.glob(os.path.normpath(pattern), recursive=True) if Path(p).is_file())


def load_raw_sources(
    con: duckdb.DuckDBPyConnection,
    sources: Mapping[str, tuple[Source, list[Path]]],
    concurrent: int = CONCURRENT_LOADS,
    full: bool = True,
) -> Iterator[tuple[str, RawLoadReport | Exception]]:
    """Load several sources, `concurrent` at a time, each on its own cursor;
    yields (name, report) as each finishes, or (name, error) for a source
    that failed (the others still load). Largest landings start first.

    Each source's swap into `raw.<source>` and `raw.quarantine` is its own
    transaction; swaps take turns, so two never race on the quarantine.
    Unless `full`, each reads only the files new or changed since its last load where it can.
    """
    ensure_quarantine(con)  # once, before the loads race to create it
    swap_lock = threading.Lock()
    if not is_duckdb(con):  # another engine's session is one connection: loads take turns
        concurrent = 1

    def load(name: str) -> RawLoadReport:
        cursor = con.cursor()
        try:
            source, files = sources[name]
            return load_raw_source(cursor, name, source, files, swap_lock=swap_lock, full=full)
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
    full: bool = True,
    follow_below_share: float = FOLLOW_BELOW_SHARE,
) -> RawLoadReport:
    """Load `files` into `raw.<name>`, quarantining what cannot be accepted;
    `swap_lock` is held while the new table and quarantine rows are swapped in.

    Unless `full`, a load reads only the files that landed or changed since the
    last load, when that gives what reading every file gives and those files hold
    less than `follow_below_share` of the source's bytes (see `raw/landed_since.py`);
    else, and in full, it reads every file."""
    started = time.perf_counter()
    ensure_quarantine(con)
    target = TableName("raw", name)
    if not full:
        followed = load_landed_since(con, name, source, files, swap_lock, follow_below_share)
        if followed is not None:
            followed.seconds = time.perf_counter() - started
            return followed
    report = RawLoadReport(name, target, [str(f) for f in files])
    suppressions = current_suppressions(con)
    read: dict[str, ReadFile] = {}
    # Rows are written once: the landed table becomes the new table after its
    # rejects are moved to the quarantine and its helper columns dropped.
    salt = active_salt(con)
    # The rejects wait in memory (a scratch table): an erased person's rejected rows are
    # taken out before anything reaches the warehouse file.
    with staged_tables(con, target, TableName(SCRATCH, f"{name}_rejects")) as (landed, rejects):
        create_rejects_table(con, rejects)
        columns = ColumnOrigins()
        for path in files:
            stamp = file_stamp(path)  # before reading: a file rewritten meanwhile is read again next time
            rows_in, suppressed = land_file(con, name, source, path, landed, rejects, columns, salt)
            report.rows_in += rows_in
            report.suppressed += suppressed
            read[str(path)] = ReadFile(str(path), *stamp, rows_in, suppressed, tuple(columns.by_file[str(path)]))
        if not files:
            create_empty_landed(con, source, landed)
        require_mapped_columns(con, name, source, landed, files)
        move_rejects_out(con, name, source, landed, rejects)
        if salt is not None:
            for file, dropped in drop_suppressed_rejects(con, name, rejects, salt).items():
                report.suppressed += dropped
                read[file] = dataclasses.replace(read[file], suppressed=read[file].suppressed + dropped)
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
                statements=manifest_statements(name, list(read.values()), suppressions),
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
