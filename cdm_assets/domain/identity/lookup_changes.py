"""What a lookup build changed since the build before it, so later steps can work on that alone.

Record keys are kept across builds: a record the previous lookup held (same
source and record id) keeps its `record_key`, a new record gets the next key
never handed out, and the key of a removed record is not handed out again. The
first build numbers the records 0..n-1 in (source, source_record_id) order.

Each build writes, in the `identity_state` schema, beside the lookup:

- `<lookup>_records`: per record a hash of its input and the reasons its
  values were nulled, so that the next build with the same settings
  (`lookup_fingerprint`) standardises only the records whose input changed
  (`touched_records`) and still counts every nulled value;
- `<lookup>_changes`: the previous version (`side` = 'old') of each removed or
  changed record and the new version (`side` = 'new') of each added or changed
  record, with every lookup column;
- `<lookup>_build`: one row naming this build and the build it changed, the
  next free record key, whether the changes are complete (they are not on a
  first build, or when the lookup's columns changed) and the settings'
  fingerprint.

Later steps that remember which build they last saw apply the changes when
they follow on from that build, and rebuild in full otherwise.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.source_records import SourceRecords
from cdm_assets.domain.plan import EntityPlan
from cdm_assets.domain.sql import TableName, create_table, quote_ident
from cdm_assets.domain.table_versions import TableVersion
from cdm_assets.domain.warehouse import table_columns, table_exists

STATE_SCHEMA = "identity_state"
# Per record in `<lookup>_records`: a hash of its input (the source's mapped values), to find
# the records a later build must standardise again, and the reasons its values were nulled.
INPUT_HASH_COLUMN = "_input_hash"


def input_hash_sql(alias: str) -> str:
    """SQL: one hash of the whole input row `alias` (a record of `customer_records`)."""
    return f"hash({alias})"


def records_table(lookup: TableName) -> TableName:
    return TableName(STATE_SCHEMA, f"{lookup.name}_records")


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


def lookup_version(lookup: TableName, build: LookupBuild) -> TableVersion:
    """The lookup's table version: its build, following the build its changes start at."""
    return TableVersion(lookup, build.build_id, build.previous_build_id if build.complete else None)


def changes_table(lookup: TableName) -> TableName:
    return TableName(STATE_SCHEMA, f"{lookup.name}_changes")


def build_table(lookup: TableName) -> TableName:
    return TableName(STATE_SCHEMA, f"{lookup.name}_build")


def record_lookup_changes(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    staging: TableName,
    changes: TableName,
    build: TableName,
    previous: PreviousBuild | None,
    fingerprint: str,
    affected: str | None = None,
    staged_state: TableName | None = None,
) -> LookupBuild:
    """Write the changes from `lookup` to `staging` (a new lookup whose records kept their
    keys, see `write_record_keys`) into `changes`, and this build (with the `fingerprint` of
    its settings) into `build` (both staging names of the state tables). With `affected` (a
    SELECT of record keys), `staging` holds only the new rows of those records, and only
    they can have changed. A record changed when its row did, or (with `staged_state`, the
    new records state) its input hash: a changed attribute leaves the row as it was."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    comparable = previous is not None and table_columns(con, lookup) == table_columns(con, staging)
    if comparable:
        old_rows = lookup.sql if affected is None else f"(SELECT * FROM {lookup.sql} WHERE record_key IN {affected})"
        hashes = quote_ident(INPUT_HASH_COLUMN)
        state = records_table(lookup)
        if staged_state is not None and table_exists(con, state):
            input_joins = f"""
                LEFT JOIN {state.sql} AS old_input ON old_input.record_key = old.record_key
                LEFT JOIN {staged_state.sql} AS new_input ON new_input.record_key = new.record_key
            """
            input_changed = f"OR old_input.{hashes} IS DISTINCT FROM new_input.{hashes}"
        else:
            input_joins = input_changed = ""
        # one join on the key; a record differs when any of its columns does (the row as a struct)
        con.execute(
            f"""
            {create_table(changes)} AS
            WITH differing AS MATERIALIZED (
                SELECT old.record_key AS old_key, new.record_key AS new_key
                FROM {old_rows} AS old FULL JOIN {staging.sql} AS new ON old.record_key = new.record_key
                {input_joins}
                WHERE old IS DISTINCT FROM new {input_changed}
            )
            SELECT 'old' AS side, * FROM {lookup.sql} WHERE record_key IN (SELECT old_key FROM differing)
            UNION ALL
            SELECT 'new' AS side, * FROM {staging.sql} WHERE record_key IN (SELECT new_key FROM differing)
            """
        )
    else:
        con.execute(f"{create_table(changes)} AS SELECT 'new' AS side, * FROM {staging.sql} LIMIT 0")
    next_key = con.execute(
        f"SELECT greatest(coalesce(max(record_key), -1) + 1, $next_key) FROM {staging.sql}",
        {"next_key": previous.next_record_key if previous else 0},
    ).fetchall()[0][0]
    build_id = uuid.uuid4().hex
    con.execute(
        f"""
        {create_table(build)} AS
        SELECT $build_id AS build_id, $previous::VARCHAR AS previous_build_id, $next_key::BIGINT AS next_record_key,
               $complete AS complete, $fingerprint AS fingerprint
        """,
        {"build_id": build_id, "previous": previous.build_id if previous else None, "next_key": next_key,
         "complete": comparable, "fingerprint": fingerprint},
    )  # fmt: skip
    if not comparable:
        return LookupBuild(build_id, previous.build_id if previous else None)
    return LookupBuild(build_id, previous.build_id, *_change_counts(con, changes))


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
    return LookupBuild(build_id, previous, *_change_counts(con, changes_table(lookup)))


def _change_counts(con: duckdb.DuckDBPyConnection, changes: TableName) -> tuple[int, int, int]:
    """Records added (a new version only), changed (both) and removed (an old version only)."""
    return con.execute(
        f"""
        SELECT count(*) FILTER (sides = ['new']), count(*) FILTER (array_length(sides) = 2), count(*) FILTER (sides = ['old'])
        FROM (SELECT record_key, list(side ORDER BY side) AS sides FROM {changes.sql} GROUP BY ALL)
        """
    ).fetchall()[0]


@dataclass(frozen=True)
class PreviousBuild:
    build_id: str
    next_record_key: int
    fingerprint: str | None = None  # of the settings it was built with; None: not recorded


def previous_build(con: duckdb.DuckDBPyConnection, lookup: TableName) -> PreviousBuild | None:
    """The build of the lookup in the warehouse and its next free record key; None when there is
    none. A lookup written before builds were recorded counts as a build whose next key follows
    its largest."""
    if not table_exists(con, lookup):
        return None
    table = build_table(lookup)
    if table_exists(con, table):
        fingerprint = "fingerprint" if "fingerprint" in dict(table_columns(con, table)) else "NULL"
        row = con.execute(f"SELECT build_id, next_record_key, {fingerprint} FROM {table.sql}").fetchall()[0]
        return PreviousBuild(*row)
    return PreviousBuild(
        "", con.execute(f"SELECT coalesce(max(record_key), -1) + 1 FROM {lookup.sql}").fetchall()[0][0]
    )


# A change here to how a record is standardised must change the version: a lookup built
# before then is rebuilt in full rather than mixed with records standardised the new way.
STANDARDISATION_VERSION = 2


def lookup_fingerprint(entity: EntityPlan) -> str:
    """What a record's standardised row depends on besides its own input: the sources' config,
    the birth-date window (its end moves with the build date), the identifiers and this code."""
    settings = (
        STANDARDISATION_VERSION, sorted(entity.sources.items()), entity.birth_dates.bounds(), entity.identifier_names,
    )  # fmt: skip
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def touched_records(
    con: duckdb.DuckDBPyConnection,
    records: SourceRecords,
    state: TableName,
    keys: TableName,
    inputs: TableName,
    touched: TableName,
    sources: list[str],
    lookup: TableName,
    ids: Mapping[str, str],
) -> None:
    """`inputs`: the input rows of the records (of `sources`) whose input differs from what the
    previous build standardised (new ones included), read in one pass over those records;
    `touched` (record_key): their keys and the keys of the records of `sources` that are gone
    (in `state`, not in `keys`, this build's record keys). Of a source `ids` names (a SELECT of
    record ids), only the records with those ids were read, and only they can be gone (their
    ids read from `lookup`, the lookup still in the warehouse)."""
    # the row's hash is taken in a projection: Spark expands a whole row only there, not in a join
    con.execute(
        f"""
        {create_table(inputs)} AS
        SELECT r.* EXCLUDE (_input_hash_now)
        FROM (SELECT r.*, {input_hash_sql("r")} AS _input_hash_now FROM ({records.sql}) AS r) AS r
        ANTI JOIN {state.sql} AS previous
               ON previous.record_key = r.record_key AND previous.{quote_ident(INPUT_HASH_COLUMN)} = r._input_hash_now
        """,
        records.params,
    )
    whole = [name for name in sources if name not in ids]
    candidates = [f"SELECT record_key FROM {state.sql} WHERE list_contains($whole, source)"]
    params: dict[str, object] = {"whole": whole}
    for index, (name, chosen) in enumerate(sorted(ids.items())):
        candidates.append(
            f"SELECT record_key FROM {lookup.sql} WHERE source = $source_{index} AND source_record_id IN ({chosen})"
        )
        params[f"source_{index}"] = name
    con.execute(
        f"""
        {create_table(touched)} AS
        SELECT record_key FROM {inputs.sql}
        UNION ALL
        SELECT record_key FROM ({" UNION ALL ".join(candidates)})
        ANTI JOIN {keys.sql} USING (record_key)
        """,
        params,
    )
