"""Following a batch: only the clusters the graph's changes touch are clustered again.

The id assignment keeps the links it clustered (`identity_state.<map>_links`).
Against the graph as it is now they give the links that came and went; against
the map, the records that came, went or were keyed anew. A cluster of the last
run holding an end of such a link, or such a record, is *touched*:

- a link that stayed joins two records of one old cluster, and a link that
  came or went joins two touched ones, so every component of the graph now
  that holds a record of a touched cluster (or a new record) lies within those
  records, and is found by clustering them alone;
- every other old cluster is a component of the graph now, with the same
  records, so it keeps its label and its id, as a full assignment would give it.

Clusters are named by their smallest record key (`component_labels`), so the
labels of the clusters worked out anew never meet those kept from the last run.

The links that came and went, and the records keyed apart, are read from the
changes the graph and the lookup recorded when the map was assigned from the
versions those changes start at (`RecordedChanges`); otherwise they are found
by comparing the kept links with the graph, and the map with the lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.clustering import build_clusters
from cdm_assets.domain.identity.lookup_changes import STATE_SCHEMA
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.sql import SCRATCH, TableName, create_table
from cdm_assets.domain.warehouse import table_columns, table_exists


def clustered_links_table(tables: EntityTables) -> TableName:
    """The links (key_a, key_b) the map's clusters were worked out from."""
    return TableName(STATE_SCHEMA, f"{tables.id_map.name}_links")


@dataclass(frozen=True)
class TouchedClusters:
    """The scratch tables of a followed batch: the links that came and went (key_a, key_b,
    side 'new' | 'old'), the records the map and the lookup do not hold alike (record_key,
    in_map, in_lookup), the old clusters touched (cluster), the map rows of their records
    (record_key), which the assignment replaces, and the records to cluster (record_key)."""

    links: TableName
    keyed_apart: TableName
    clusters: TableName
    map_keys: TableName
    records: TableName

    @classmethod
    def scratch(cls, tables: EntityTables) -> TouchedClusters:
        parts = cls.__dataclass_fields__
        return cls(*(TableName(SCRATCH, f"{tables.id_map.name}_touched_{part}") for part in parts))

    @property
    def tables(self) -> tuple[TableName, ...]:
        return (self.links, self.keyed_apart, self.clusters, self.map_keys, self.records)

    def previous_rows(self) -> str:
        """A WHERE condition on the map: the rows of the touched clusters."""
        return f"cluster IN (SELECT cluster FROM {self.clusters.sql})"

    def state_updates(self, links_state: TableName) -> list[tuple[str, None]]:
        """The statements that bring the clustered links up to the graph now."""
        return [
            (
                f"DELETE FROM {links_state.sql} WHERE (key_a, key_b) IN "
                f"(SELECT (key_a, key_b) FROM {self.links.sql} WHERE side = 'old')",
                None,
            ),
            (f"INSERT INTO {links_state.sql} SELECT key_a, key_b FROM {self.links.sql} WHERE side = 'new'", None),
        ]


@dataclass(frozen=True)
class RecordedChanges:
    """What the graph and the lookup changed since the map was assigned, as their builds
    recorded it: the graph's changes (key_a, key_b, comes, goes) and the lookup's (side
    'old' | 'new', record_key, source, source_record_id, ...); None for an input unchanged."""

    graph: TableName | None
    lookup: TableName | None

    def links_sql(self) -> str:
        """The links (key_a, key_b, side) that came ('new') and went ('old')."""
        if self.graph is None:
            return "SELECT NULL::BIGINT AS key_a, NULL::BIGINT AS key_b, NULL::VARCHAR AS side WHERE false"
        # a pair whose row both came and went changed its label or weights, not the clusters
        return f"""
            SELECT key_a, key_b, CASE WHEN comes THEN 'new' ELSE 'old' END AS side
            FROM {self.graph.sql} WHERE comes <> goes
        """

    def keyed_apart_sql(self) -> str:
        """The records (record_key, in_map, in_lookup) that came, went or hold another key."""
        if self.lookup is None:
            return "SELECT NULL::BIGINT AS record_key, NULL::BOOLEAN AS in_map, NULL::BOOLEAN AS in_lookup WHERE false"
        side = f"SELECT record_key, source, source_record_id FROM {self.lookup.sql} WHERE side = "
        return f"""
            SELECT record_key, m.source IS NOT NULL AS in_map, l.source IS NOT NULL AS in_lookup
            FROM ({side}'old') AS m FULL JOIN ({side}'new') AS l USING (record_key)
            WHERE m.source IS DISTINCT FROM l.source OR m.source_record_id IS DISTINCT FROM l.source_record_id
        """


def can_follow(con: duckdb.DuckDBPyConnection, tables: EntityTables) -> bool:
    """Whether the last assignment left what following needs: the map with its records'
    keys and clusters, and the links it clustered (written with labels by smallest key)."""
    if not (table_exists(con, tables.id_map) and table_exists(con, clustered_links_table(tables))):
        return False
    return {"record_key", "cluster"} <= {name for name, _ in table_columns(con, tables.id_map)}


def cluster_touched(
    con: duckdb.DuckDBPyConnection,
    tables: EntityTables,
    touched: TouchedClusters,
    clusters: TableName,
    recorded: RecordedChanges | None = None,
) -> int | None:
    """Fill `touched` and write `clusters` (record_key, cluster) for the records of the
    touched clusters and the new records: every record whose cluster may differ from the map's.
    With `recorded`, the changes are read from it, not found by comparing whole tables.
    Returns the star rounds clustering took, as `build_clusters` does."""
    lookup, graph, id_map = tables.lookup, tables.graph, tables.id_map
    links_state = clustered_links_table(tables)
    if recorded is not None:
        con.execute(f"{create_table(touched.links)} AS {recorded.links_sql()}")
        con.execute(f"{create_table(touched.keyed_apart)} AS {recorded.keyed_apart_sql()}")
    else:
        con.execute(
            f"""
            {create_table(touched.links)} AS
            SELECT key_a, key_b, 'new' AS side
            FROM (SELECT key_a, key_b FROM {graph.sql} EXCEPT SELECT key_a, key_b FROM {links_state.sql})
            UNION ALL
            SELECT key_a, key_b, 'old' AS side
            FROM (SELECT key_a, key_b FROM {links_state.sql} EXCEPT SELECT key_a, key_b FROM {graph.sql})
            """
        )
        # records new, gone, or under another key (keys are kept, but a lookup built afresh numbers anew)
        con.execute(
            f"""
            {create_table(touched.keyed_apart)} AS
            SELECT record_key, m.source IS NOT NULL AS in_map, l.source IS NOT NULL AS in_lookup
            FROM {id_map.sql} m FULL JOIN {lookup.sql} l USING (record_key)
            WHERE m.source IS DISTINCT FROM l.source OR m.source_record_id IS DISTINCT FROM l.source_record_id
            """
        )
    con.execute(
        f"""
        {create_table(touched.clusters)} AS
        SELECT DISTINCT cluster FROM {id_map.sql}
        WHERE record_key IN (
            SELECT key_a FROM {touched.links.sql} UNION SELECT key_b FROM {touched.links.sql}
            UNION SELECT record_key FROM {touched.keyed_apart.sql} WHERE in_map
        )
        """
    )
    con.execute(
        f"{create_table(touched.map_keys)} AS SELECT record_key FROM {id_map.sql} WHERE {touched.previous_rows()}"
    )
    con.execute(
        f"""
        {create_table(touched.records)} AS
        SELECT record_key FROM {lookup.sql} WHERE record_key IN (SELECT record_key FROM {touched.map_keys.sql})
        UNION
        SELECT record_key FROM {touched.keyed_apart.sql} WHERE in_lookup
        """
    )
    return build_clusters(con, lookup, graph, clusters, records=f"SELECT record_key FROM {touched.records.sql}")
