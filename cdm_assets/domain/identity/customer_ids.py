"""Stable Customer IDs: clusters of records get ids that survive re-runs.

Rules, applied to this run's clusters against the previous `customer_id_map`:

- a previous id is *claimed* by the cluster holding most of its records
  (ties: the cluster with the lowest record key), so on a split the larger
  part keeps the id;
- a cluster that claims several ids keeps the oldest (first minted) and the
  others are recorded as merged into it;
- a cluster that claims none gets a new id; if some of its records had an id
  before, the new id is recorded as split from it;
- unchanged input gives identical ids and writes no history.

A cluster whose records are exactly the records of one previous id (a
*settled* cluster: most of them, when a batch touched a few) keeps that id and
writes no history under these rules, so the claims, the minting and the
history are worked out for the other clusters only. Following a batch
(`cluster_changes`), only the clusters it touched are clustered and assigned
again; the map's other rows stay as they are.

New ids are opaque (`cus_` + 16 hex digits of a hash of the cluster's first
record reference, never a name or email) and never reuse an id seen before.
The map and the appended history are swapped in one transaction.

Other customer-like entities (e.g. `account`) get their ids the same way, in
their own map and history (`identity.account_id_map`, column `account_id`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from cdm_assets.domain.identity.cluster_changes import TouchedClusters, clustered_links_table
from cdm_assets.domain.identity.lookup_changes import STATE_SCHEMA
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident
from cdm_assets.domain.table_versions import BuiltFrom, TableVersion, current_versions
from cdm_assets.domain.warehouse import (
    RowReplacement,
    create_table_as,
    row_count,
    staged_tables,
    swap_in,
    table_columns,
    table_exists,
)


def history_ddl(tables: EntityTables) -> str:
    return f"""
        {quote_ident(tables.id_column)} VARCHAR NOT NULL,
        {quote_ident(tables.previous_id_column)} VARCHAR,
        change VARCHAR NOT NULL,          -- created | merged | split | moved | retired | override
        changed_at TIMESTAMP NOT NULL,
        records BIGINT                    -- records involved in the change
    """


@dataclass(frozen=True)
class IdAssignment:
    customers: int
    created: int
    merged: int
    split: int
    retired: int
    override: int = 0  # changes a steward's override made
    settled: int = 0  # customers whose records are exactly those of one customer before (same id, no history)
    records_changed: int = 0  # records whose id changed, new records and records gone included
    records_clustered: int = 0  # records clustered in this run: all, or those of the clusters a batch touched
    clustering_rounds: int | None = None  # star rounds, where the engine clusters in rounds (Spark); None: at once


def assign_customer_ids(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    clusters: TableName,
    tables: EntityTables,
    now: datetime | None = None,
    made_by_overrides: TableName | None = None,
    touched: TouchedClusters | None = None,
    built_from: BuiltFrom | None = None,
) -> IdAssignment:
    """Write `identity.customer_id_map` and append to `identity.customer_id_history`
    (or the map and history of another customer-like entity).

    Inside, ids are handled in a `customer_id` column whatever the entity; the
    entity's id column name is used where its tables are read and written. A merge,
    split or move in one of the clusters `made_by_overrides` (cluster) is recorded
    as the change `override`: a steward's decision, not a rule's.

    `clusters` holds every record, or, following a batch, the records of the `touched`
    clusters and the new ones: then only the map rows of those are replaced. Either way the
    links clustered are kept for the next run to follow (`cluster_changes`), and with them
    `built_from`: the versions of the graph and the lookup the map now answers to.
    """
    changed_at = (now or datetime.now(UTC)).replace(tzinfo=None)
    id_map, id_history = tables.id_map, tables.id_history
    id_column = quote_ident(tables.id_column)
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    if not table_exists(con, id_history):
        con.execute(f"CREATE TABLE {id_history.sql} ({history_ddl(tables)})")
    previous_map = _previous_map_sql(con, tables)
    in_scope = previous_map if touched is None else f"SELECT * FROM ({previous_map}) WHERE {touched.previous_rows()}"
    _claim_previous_ids(con, lookup, clusters, tables, in_scope)
    _mint_new_ids(con, tables, previous_map)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE id_by_cluster AS
        SELECT cluster, customer_id, false AS is_new FROM id_settled
        UNION ALL
        SELECT cluster, previous_id AS customer_id, false AS is_new FROM id_claims WHERE seniority = 1
        UNION ALL
        SELECT cluster, customer_id, true AS is_new FROM id_minted
        """
    )
    previous_version = current_versions(con, [id_map]).get(id_map) if table_exists(con, id_map) else None
    # The history is append-only: this run's changes are appended in the transaction that swaps the map in.
    map_changes, links_state = map_changes_table(tables), clustered_links_table(tables)
    rewritten = map_rewritten_table(tables)
    staged = staged_tables(
        con, id_map, TableName(SCRATCH, f"{id_history.name}_changes"), map_changes, links_state, rewritten
    )
    with staged as (map_staging, changes, staged_map_changes, links_staging, staged_rewritten):
        create_table_as(
            con,
            map_staging,
            f"""
            SELECT r.source, r.source_record_id, i.customer_id AS {id_column}, r.record_key, r.cluster
            FROM id_all_records r JOIN id_by_cluster i USING (cluster)
            """,
            plain_text=[id_column],
        )
        con.execute(f"{create_table(changes)} AS SELECT * FROM {id_history.sql} LIMIT 0")
        con.execute(f"INSERT INTO {changes.sql} {_changes_sql(made_by_overrides)}", {"changed_at": changed_at})
        assignment = _count_changes(con, changes, id_column)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {map_changes.schema}")
        con.execute(f"{create_table(staged_map_changes)} AS {_MAP_CHANGES}")
        untouched = 0
        if touched is not None:  # the clusters kept as they were, counted by their smallest record
            untouched = con.execute(
                f"SELECT count(*) FROM {id_map.sql} WHERE record_key = cluster AND NOT ({touched.previous_rows()})"
            ).fetchall()[0][0]
        unsettled = assignment.customers - con.execute("SELECT count(*) FROM id_settled").fetchall()[0][0]
        assignment = dataclasses.replace(
            assignment,
            customers=assignment.customers + untouched,
            settled=assignment.customers + untouched - unsettled,
            records_changed=row_count(con, staged_map_changes),
            records_clustered=row_count(con, clusters),
        )
        version = TableVersion.new(id_map, follows=previous_version.version if previous_version else None)
        replacements = [(map_changes, staged_map_changes), (rewritten, staged_rewritten)]
        if touched is None:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {links_state.schema}")
            con.execute(f"{create_table(links_staging)} AS SELECT key_a, key_b FROM {tables.graph.sql}")
            con.execute(f"{create_table(staged_rewritten)} AS {EVERY_RECORD_REWRITTEN}")
            replacements += [(id_map, map_staging), (links_state, links_staging)]
            rows, statements = [], []
        else:
            keys = f"(SELECT record_key FROM {touched.map_keys.sql})"
            con.execute(
                f"""
                {create_table(staged_rewritten)} AS
                SELECT source, source_record_id FROM {id_map.sql} WHERE record_key IN {keys}
                UNION SELECT source, source_record_id FROM {map_staging.sql}
                """
            )
            rows, statements = [RowReplacement(id_map, map_staging, keys)], touched.state_updates(links_state)
        swap_in(
            con,
            replacements,
            appends=[(id_history, changes)],
            row_replacements=rows,
            statements=statements,
            versions=[version],
            built_from=[built_from] if built_from is not None else [],
        )
    for temp in (
        "id_all_records",
        "id_removed",
        "id_settled",
        "id_records",
        "id_birth",
        "id_claims",
        "id_minted",
        "id_by_cluster",
    ):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return assignment


def map_rewritten_table(tables: EntityTables) -> TableName:
    """The records (source, source_record_id) whose map rows the last assignment deleted or
    wrote, whatever their id; one row of NULLs (`EVERY_RECORD_REWRITTEN`) when it wrote the
    map whole."""
    return TableName(STATE_SCHEMA, f"{tables.id_map.name}_rewritten")


EVERY_RECORD_REWRITTEN = "SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id"


def map_changes_table(tables: EntityTables) -> TableName:
    """The records whose id the last assignment changed: (source, source_record_id, old_id,
    new_id), old_id NULL for a new record and new_id NULL for a record that is gone. The map's
    version `follows` the version these changes start at."""
    return TableName(STATE_SCHEMA, f"{tables.id_map.name}_changes")


# Records whose id changed: in a cluster that is not settled (a settled one keeps its records'
# id), or gone.
_MAP_CHANGES = """
    SELECT r.source, r.source_record_id, r.previous_id AS old_id, i.customer_id AS new_id
    FROM id_records r JOIN id_by_cluster i USING (cluster)
    WHERE r.previous_id IS DISTINCT FROM i.customer_id
    UNION ALL
    SELECT source, source_record_id, customer_id, NULL FROM id_removed
"""


def _previous_map_sql(con: duckdb.DuckDBPyConnection, tables: EntityTables) -> str:
    """The ids of the last run, per record, with the record's cluster then (none on the first
    run; a map without clusters gives none, which settles no cluster)."""
    if not table_exists(con, tables.id_map):
        return (
            "SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id, NULL::VARCHAR AS customer_id, "
            "NULL::BIGINT AS cluster LIMIT 0"
        )
    cluster = "cluster" if "cluster" in dict(table_columns(con, tables.id_map)) else "NULL::BIGINT"
    id_column = quote_ident(tables.id_column)
    return f"SELECT source, source_record_id, {id_column} AS customer_id, {cluster} AS cluster FROM {tables.id_map.sql}"


def _claim_previous_ids(
    con: duckdb.DuckDBPyConnection, lookup: TableName, clusters: TableName, tables: EntityTables, previous_map: str
) -> None:
    """`id_all_records` (each record's cluster and previous id), `id_removed` (the previous
    map's rows of records that are gone), `id_settled` (cluster, customer_id: the settled
    clusters and their ids), `id_records` (the records of the other clusters) and `id_claims`:
    each previous id of those claimed by the cluster holding most of its records, ranked by
    age within the cluster."""
    id_column = quote_ident(tables.id_column)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE id_all_records AS
        SELECT l.record_key, l.source, l.source_record_id, c.cluster, p.customer_id AS previous_id,
               p.cluster AS previous_cluster
        FROM {lookup.sql} l
        JOIN {clusters.sql} c USING (record_key)
        LEFT JOIN ({previous_map}) p USING (source, source_record_id)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE id_removed AS
        SELECT p.* EXCLUDE (cluster) FROM ({previous_map}) p ANTI JOIN id_all_records r USING (source, source_record_id)
        """
    )
    # A cluster whose records were all in one previous cluster, which had no other record (none
    # gone either). A previous cluster had one id and an id one cluster: compared as numbers.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE id_settled AS
        WITH single_cluster AS (
            SELECT cluster, min(previous_cluster) AS previous_cluster, count(*) AS records,
                   any_value(previous_id) AS customer_id
            FROM id_all_records
            GROUP BY cluster
            HAVING count(previous_cluster) = count(*) AND min(previous_cluster) = max(previous_cluster)
        ),
        held AS (SELECT cluster AS previous_cluster, count(*) AS records FROM ({previous_map}) GROUP BY cluster)
        SELECT s.cluster, s.customer_id FROM single_cluster s JOIN held h USING (previous_cluster, records)
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE id_records AS SELECT * FROM id_all_records ANTI JOIN id_settled USING (cluster)"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE id_birth AS
        SELECT {id_column} AS customer_id, min(changed_at) AS born_at
        FROM {tables.id_history.sql}
        WHERE change IN ('created', 'split', 'override')  -- an override merge names an older id: min() holds
          AND {id_column} IN (SELECT previous_id FROM id_records)
        GROUP BY {id_column}
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE id_claims AS
        WITH holdings AS (
            SELECT previous_id, cluster, count(*) AS records, min(record_key) AS first_record
            FROM id_records WHERE previous_id IS NOT NULL
            GROUP BY previous_id, cluster
        ),
        claimed AS (  -- each previous id goes to the cluster holding most of its records
            SELECT previous_id, cluster, records
            FROM holdings
            QUALIFY row_number() OVER (PARTITION BY previous_id ORDER BY records DESC, first_record) = 1
        )
        SELECT claimed.*, b.born_at,
               row_number() OVER (
                   PARTITION BY cluster ORDER BY b.born_at NULLS LAST, previous_id
               ) AS seniority
        FROM claimed LEFT JOIN id_birth b ON b.customer_id = claimed.previous_id
        """
    )


def _changes_sql(made_by_overrides: TableName | None) -> str:
    """This run's history rows: created, split, merged, moved and retired ids (`$changed_at`);
    a split, merge or move in a cluster the steward's overrides made is an `override`."""

    def change(kind: str, cluster: str) -> str:
        if made_by_overrides is None:
            return f"'{kind}'"
        return f"CASE WHEN {cluster} IN (SELECT cluster FROM {made_by_overrides.sql}) THEN 'override' ELSE '{kind}' END"

    return f"""
        -- brand-new customers
        SELECT i.customer_id, NULL, 'created', $changed_at, count(*)
        FROM id_by_cluster i JOIN id_records r USING (cluster)
        WHERE i.is_new
        GROUP BY i.customer_id
        HAVING count(r.previous_id) = 0
        UNION ALL
        -- new ids cut from an existing customer
        SELECT i.customer_id, r.previous_id, {change("split", "i.cluster")}, $changed_at, count(*)
        FROM id_by_cluster i JOIN id_records r USING (cluster)
        WHERE i.is_new AND r.previous_id IS NOT NULL
        GROUP BY i.customer_id, r.previous_id, i.cluster
        UNION ALL
        -- younger ids folded into the oldest one of their cluster
        SELECT keep.customer_id, c.previous_id, {change("merged", "c.cluster")}, $changed_at, c.records
        FROM id_claims c JOIN id_by_cluster keep USING (cluster)
        WHERE c.seniority > 1
        UNION ALL
        -- records whose id survives elsewhere but that now belong to another surviving customer
        SELECT i.customer_id, r.previous_id, {change("moved", "r.cluster")}, $changed_at, count(*)
        FROM id_records r
        JOIN id_by_cluster i USING (cluster)
        JOIN id_claims c ON c.previous_id = r.previous_id
        WHERE NOT i.is_new AND c.cluster <> r.cluster
        GROUP BY i.customer_id, r.previous_id, r.cluster
        UNION ALL
        -- ids whose records have all left the sources (an id with a record left is settled or claimed)
        SELECT p.customer_id, NULL, 'retired', $changed_at, 0
        FROM (SELECT DISTINCT customer_id FROM id_removed) p
        WHERE p.customer_id NOT IN (SELECT previous_id FROM id_claims)
    """


def _count_changes(con: duckdb.DuckDBPyConnection, changes: TableName, id_column: str) -> IdAssignment:
    counts = dict(con.execute(f"SELECT change, count(*) FROM {changes.sql} GROUP BY change").fetchall())
    split = con.execute(f"SELECT count(DISTINCT {id_column}) FROM {changes.sql} WHERE change = 'split'").fetchone()[0]
    # one id per cluster: the ids of the clusters assigned in this run (following a batch, the
    # caller adds the clusters kept as they were)
    customers = con.execute("SELECT count(*) FROM id_by_cluster").fetchone()[0]
    return IdAssignment(
        customers=customers,
        created=counts.get("created", 0),
        merged=counts.get("merged", 0),
        split=split,
        retired=counts.get("retired", 0),
        override=counts.get("override", 0),
    )


def _mint_new_ids(con: duckdb.DuckDBPyConnection, tables: EntityTables, previous_map: str) -> None:
    """Ids for clusters that claimed none: a hash of their first record, never an id used before."""
    history = tables.id_history.sql
    id_column, previous_column = quote_ident(tables.id_column), quote_ident(tables.previous_id_column)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE id_minted AS
        SELECT cluster, $prefix || left(sha256(source || chr(31) || source_record_id), 16) AS customer_id,
               source || chr(31) || source_record_id AS seed
        FROM id_records
        WHERE cluster NOT IN (SELECT cluster FROM id_claims)
        QUALIFY row_number() OVER (PARTITION BY cluster ORDER BY record_key) = 1
        """,
        {"prefix": tables.id_prefix},
    )
    # A retired id must never come back with other records behind it; re-hash
    # with a counter on the (rare) collisions until every new id is unused.
    # Every id ever handed out is in the history or the previous map; only the
    # few new ids are held in memory to look for them there.
    known = f"""
        SELECT {id_column} AS customer_id FROM {history}
        UNION ALL SELECT {previous_column} FROM {history} WHERE {previous_column} IS NOT NULL
        UNION ALL SELECT customer_id FROM ({previous_map})
    """
    for attempt in range(1, 100):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE id_known AS
            SELECT DISTINCT customer_id FROM ({known}) k SEMI JOIN id_minted m USING (customer_id)
            UNION SELECT customer_id FROM id_minted GROUP BY customer_id HAVING count(*) > 1
            """
        )
        if con.execute("SELECT count(*) FROM id_known").fetchone()[0] == 0:
            break
        con.execute(
            """
            UPDATE id_minted SET customer_id = $prefix || left(sha256(seed || '#' || $attempt), 16)
            WHERE customer_id IN (SELECT customer_id FROM id_known)
            """,
            {"attempt": str(attempt), "prefix": tables.id_prefix},
        )
    con.execute("DROP TABLE IF EXISTS id_known")
