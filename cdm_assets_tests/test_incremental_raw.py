"""Incremental raw loads: reading only the files new or changed since the last load ends
where reading every file ends.

Two warehouses load the same landing folder (CSV, or JSON lines whose objects
leave out empty keys) after every random step: one reads
what landed since its last load where it can, the other every file. Steps add
files (new ids, ids of other files' records: duplicates the newest file wins,
duplicates within the file, rows without an id, malformed rows), rewrite a file
(rows left out, values changed), touch a file without changing it, remove a
file and add a file with an extra column (sorting first, among or last). After each step the raw table, the
source's quarantine rows and the load's figures must be identical.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import duckdb
import pytest

from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.raw.landed_since import raw_changes_table
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets.domain.raw.manifest import RACY_NS
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.table_versions import TableVersion, current_versions
from cdm_assets.domain.warehouse import table_exists

CRM = {
    "entity": "customer",
    "path": "landing/crm/*.csv",
    "record_id": "crm_id",
    "fields": {"first_name": "first_name", "email": "email"},
}
STEPS = 24
RAW_CRM = TableName("raw", "crm")
# Files are dated well in the past, one second apart, so a load sees them as settled.
EPOCH_NS = 1_700_000_000 * 10**9


class Landing:
    """The landing folder: files of (crm_id, first_name, email) rows, dated in order."""

    def __init__(self, folder: Path, rng: random.Random, suffix: str = ".csv") -> None:
        self.folder, self.rng, self.suffix = folder, rng, suffix
        self.files: dict[str, list[list[str]]] = {}
        self.header = ["crm_id", "first_name", "email"]
        self.written = 0
        self.ids = 0

    def write(self, name: str, rows: list[list[str]], header: list[str] | None = None) -> None:
        path = self.folder / name
        header = header or self.header
        if self.suffix == ".csv":
            lines = [",".join(header), *(",".join(row) for row in rows)]
        else:  # JSON lines: empty values leave their key out, a row of the wrong width is no JSON
            lines = [
                json.dumps({k: v for k, v in zip(header, row) if v}) if len(row) == len(header) else "{" + ",".join(row)
                for row in rows
            ]
        path.write_text("\n".join(lines) + "\n")
        self.written += 1
        stamp = EPOCH_NS + self.written * 10**9
        os.utime(path, ns=(stamp, stamp))
        self.files[name] = rows

    def known_ids(self) -> list[str]:
        return sorted({row[0] for rows in self.files.values() for row in rows if row and row[0]})

    def new_rows(self, count: int) -> list[list[str]]:
        rows = []
        for _ in range(count):
            self.ids += 1
            kind = self.rng.random()
            known = self.known_ids()
            if kind < 0.2 and known:  # a record of another file again: the newest file wins
                record_id = self.rng.choice(known)
            elif kind < 0.25:
                record_id = ""  # no id: quarantined
            else:
                record_id = f"C{self.ids}"
            rows.append([record_id, f"name{self.rng.randint(1, 50)}", f"p{self.rng.randint(1, 80)}@mail.test"])
        if rows and self.rng.random() < 0.3:
            rows.append(list(rows[0]))  # a duplicate within the file
        if self.rng.random() < 0.2:
            rows.append(["C_bad", "too", "many", "columns"])  # malformed: quarantined
        return rows

    def step(self, number: int) -> str:
        rng, names = self.rng, sorted(self.files)
        kind = rng.random()
        if kind > 0.9:  # a file with an extra column: older rows get NULL, later files may lack it
            header = [*self.header, "tier"]
            rows = [[*row, "gold"] for row in self.new_rows(3) if len(row) == 3]
            self.write(f"{rng.choice(['a', 'n', 'z'])}{number:03d}{self.suffix}", rows, header)
            return "added a file with an extra column"
        if kind < 0.4 or len(names) < 2:
            name = f"{rng.choice(['a', 'm', 'z'])}{number:03d}{self.suffix}"  # sorts before, among or after the others
            self.write(name, self.new_rows(rng.randint(1, 8)))
            return f"added {name}"
        name = rng.choice(names)
        if kind < 0.6:
            rows = [row for row in self.files[name] if rng.random() > 0.3]
            rows = [[row[0], row[1] + "x", *row[2:]] if rng.random() < 0.3 and len(row) == 3 else row for row in rows]
            self.write(name, rows + self.new_rows(rng.randint(0, 3)))
            return f"rewrote {name}"
        if kind < 0.75:
            path = self.folder / name
            stamp = EPOCH_NS + (self.written + 1) * 10**9
            self.written += 1
            os.utime(path, ns=(stamp, stamp))  # touched, the same content
            return f"touched {name}"
        (self.folder / name).unlink()
        del self.files[name]
        return f"removed {name}"


def rows_by_id(con) -> dict[str, list[tuple]]:
    """The accepted rows of each record id, as the source lookup would read them."""
    rows: dict[str, list[tuple]] = {}
    if not table_exists(con, RAW_CRM):
        return rows
    for row in con.execute("SELECT trim(CAST(crm_id AS VARCHAR)), * FROM raw.crm").fetchall():
        rows.setdefault(row[0], []).append(row[1:])
    return {record_id: sorted(found, key=repr) for record_id, found in rows.items()}


def raw_version(con) -> TableVersion | None:
    return current_versions(con, [RAW_CRM]).get(RAW_CRM)


def raw_state(con) -> tuple:
    rows = sorted(con.execute("SELECT * FROM raw.crm").fetchall(), key=repr)
    columns = con.execute("SELECT column_name, column_type FROM (DESCRIBE raw.crm)").fetchall()
    quarantined = sorted(
        con.execute("SELECT * EXCLUDE (quarantined_at) FROM raw.quarantine WHERE source = 'crm'").fetchall(), key=repr
    )
    return columns, rows, quarantined


@pytest.mark.parametrize(("seed", "suffix"), [(3, ".csv"), (11, ".csv"), (5, ".jsonl"), (8, ".jsonl")])
def test_reading_what_landed_since_ends_where_reading_every_file_ends(tmp_path, write_config, seed, suffix):
    source = resolve_plan(write_config({"crm": {**CRM, "path": f"landing/crm/*{suffix}"}})).sources["crm"]
    folder = tmp_path / "landing/crm"
    folder.mkdir(parents=True, exist_ok=True)
    landing = Landing(folder, random.Random(seed), suffix)
    landing.write(f"b000{suffix}", landing.new_rows(6))
    following, reading_all = (duckdb.connect(str(tmp_path / f"{name}.duckdb")) for name in ("following", "all"))
    files_read, recorded_changes = [], 0
    for number in range(STEPS + 1):
        what = "first load" if number == 0 else landing.step(number)
        files = landed_files(Path(source.path))
        before, version_before = rows_by_id(following), raw_version(following)
        # small files: followed whatever share of the source they hold
        followed = load_raw_source(following, "crm", source, files, full=False, follow_below_share=math.inf)
        full = load_raw_source(reading_all, "crm", source, files)
        assert raw_state(following) == raw_state(reading_all), f"step {number}: {what}"
        figures = ("rows_in", "rows_accepted", "quarantined_by_reason", "suppressed")
        assert [getattr(followed, f) for f in figures] == [getattr(full, f) for f in figures], what
        files_read.append((followed.files_read, len(files)))
        if raw_version(following).follows is not None:  # a load that recorded the ids it touched
            after = rows_by_id(following)
            changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
            recorded = {
                i for (i,) in following.execute(f"SELECT record_id FROM {raw_changes_table('crm').sql}").fetchall()
            }
            assert changed <= recorded, f"step {number}: {what}: {sorted(changed - recorded)} changed, not recorded"
            assert raw_version(following).follows == version_before.version, f"step {number}: {what}"
            recorded_changes += 1
    # the follower read fewer files than there are on most steps: it did follow
    assert sum(read is not None and read < total for read, total in files_read) >= STEPS // 3
    assert recorded_changes >= STEPS // 3


def test_a_file_written_as_it_was_read_is_read_again(tmp_path, write_config):
    source = resolve_plan(write_config({"crm": CRM})).sources["crm"]
    folder = tmp_path / "landing/crm"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.csv").write_text("crm_id,first_name,email\nC1,Ann,a@mail.test\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_raw_source(con, "crm", source, landed_files(Path(source.path)), full=False, follow_below_share=math.inf)
    # rewritten with the same size and modification time, right after the load looked at it
    stamp = (folder / "a.csv").stat().st_mtime_ns
    (folder / "a.csv").write_text("crm_id,first_name,email\nC1,Bob,b@mail.test\n")
    os.utime(folder / "a.csv", ns=(stamp, stamp))
    report = load_raw_source(
        con, "crm", source, landed_files(Path(source.path)), full=False, follow_below_share=math.inf
    )
    assert report.files_read == 1
    assert con.execute("SELECT first_name FROM raw.crm").fetchall() == [("Bob",)]
    assert RACY_NS >= 10**9  # file systems keeping whole seconds are covered


def test_a_load_that_would_read_most_of_the_source_again_reads_every_file(tmp_path, write_config):
    source = resolve_plan(write_config({"crm": CRM})).sources["crm"]
    folder = tmp_path / "landing/crm"
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("a.csv", 40), ("b.csv", 2)):
        (folder / name).write_text(
            "crm_id,first_name,email\n" + "".join(f"{name}{i},N,n@mail.test\n" for i in range(rows))
        )
        os.utime(folder / name, ns=(EPOCH_NS, EPOCH_NS))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert load_raw_source(con, "crm", source, landed_files(Path(source.path)), full=False).files_read is None
    for name in ("b.csv", "a.csv"):  # the small file changes, then the large one
        os.utime(folder / name, ns=(EPOCH_NS + 10**9, EPOCH_NS + 10**9))
        report = load_raw_source(con, "crm", source, landed_files(Path(source.path)), full=False)
        assert report.files_read == (1 if name == "b.csv" else None)
