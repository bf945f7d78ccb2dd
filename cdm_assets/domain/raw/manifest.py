"""Which files a source's last load read, so the next load can read only what landed since.

`cdm_state.raw_files` holds one row per file of each source's last load: its
size and modification time (what tells a file that changed from one that did
not) and when the load looked at it, the columns it had, its rows in and the rows of erased people it left out, and the
suppressions the load checked against (their count and salt: a new erasure
makes the next load read every file again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cdm_assets.domain.privacy.suppression import SUPPRESSIONS, active_salt
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.table_versions import STATE_SCHEMA

FILES = TableName(STATE_SCHEMA, "raw_files")


@dataclass(frozen=True)
class ReadFile:
    """One file a load read: what identifies its content, and what the load counted in it."""

    file: str
    size: int
    modified_ns: int
    stamped_ns: int  # when the load looked at the file
    rows_in: int
    suppressed: int
    columns: tuple[tuple[str, str], ...] | None = None  # (column, type) as the file was read

    def same_content(self, path: Path) -> bool:
        """Whether the file is the one read then: the same size and modification time, and
        that time well before the load looked (a file written in the same instant as it was
        read could change again without its time moving, on file systems that keep coarse
        times: it is read again)."""
        size, modified_ns, _ = file_stamp(path)
        settled = modified_ns < self.stamped_ns - RACY_NS
        return settled and (size, modified_ns) == (self.size, self.modified_ns)


@dataclass(frozen=True)
class Suppressions:
    """The erasures a load left out rows of: the salt and how many identifier hashes."""

    salt: str | None
    count: int


# File systems keep modification times to within 2 s (FAT) or finer.
RACY_NS = 2_000_000_000


def file_stamp(path: Path) -> tuple[int, int, int]:
    """The file's size and modification time, and when it was looked at (nanoseconds)."""
    stamped = time.time_ns()
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stamped


def current_suppressions(con: duckdb.DuckDBPyConnection) -> Suppressions:
    salt = active_salt(con)
    if salt is None:
        return Suppressions(None, 0)
    return Suppressions(salt, con.execute(f"SELECT count(*) FROM {SUPPRESSIONS.sql}").fetchall()[0][0])


def read_manifest(con: duckdb.DuckDBPyConnection, source: str) -> tuple[dict[str, ReadFile], Suppressions] | None:
    """The files the source's last load read (by path) and the suppressions it checked; None
    when no load of it was recorded (or it read no file)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [FILES.schema, FILES.name],
    ).fetchall()[0][0]
    if not found:
        return None
    has_columns = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?",
        [FILES.schema, FILES.name, "columns"],
    ).fetchall()[0][0]
    rows = con.execute(
        f"SELECT file, size, modified_ns, stamped_ns, rows_in, suppressed, salt, suppressions, "
        f"{'columns' if has_columns else 'NULL'} FROM {FILES.sql} WHERE source = ?",
        [source],
    ).fetchall()
    if not rows:
        return None
    files = {row[0]: ReadFile(*row[:6], _columns(row[8])) for row in rows}
    return files, Suppressions(rows[0][6], rows[0][7])


def _columns(text: str | None) -> tuple[tuple[str, str], ...] | None:
    return None if text is None else tuple((name, dtype) for name, dtype in json.loads(text))


def manifest_statements(
    source: str, files: Sequence[ReadFile], suppressions: Suppressions
) -> list[tuple[str, list[object]]]:
    """The statements (with parameters) that record the files of a load of `source`; run them
    in the transaction that swaps the load in."""
    statements: list[tuple[str, list[object]]] = [
        (f"CREATE SCHEMA IF NOT EXISTS {FILES.schema}", []),
        (
            f"CREATE TABLE IF NOT EXISTS {FILES.sql} (source VARCHAR, file VARCHAR, size BIGINT, modified_ns BIGINT, "
            "stamped_ns BIGINT, rows_in BIGINT, suppressed BIGINT, salt VARCHAR, suppressions BIGINT)",
            [],
        ),
        (f"ALTER TABLE {FILES.sql} ADD COLUMN IF NOT EXISTS columns VARCHAR", []),
        (f"DELETE FROM {FILES.sql} WHERE source = ?", [source]),
    ]
    for read in files:
        statements.append(
            (
                f"INSERT INTO {FILES.sql} BY NAME SELECT ? AS source, ? AS file, ? AS size, ? AS modified_ns, "
                "? AS stamped_ns, ? AS rows_in, ? AS suppressed, ? AS salt, ? AS suppressions, ? AS columns",
                [source, read.file, read.size, read.modified_ns, read.stamped_ns, read.rows_in, read.suppressed,
                 suppressions.salt, suppressions.count, None if read.columns is None else json.dumps(read.columns)],
            )
        )  # fmt: skip
    return statements
