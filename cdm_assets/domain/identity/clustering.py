"""Connected components over the identity graph.

Union-find over millions of edges is one pass with scipy's sparse-graph
routine (linear in records + links, no iteration count that grows with chain
length); the edges move from DuckDB to numpy through Arrow without a Python
loop over rows.

A cluster is named by its smallest record key (`component_labels`): a name that
depends on the cluster's records alone, so clusters worked out apart (the few a
batch touches, beside the rest kept from the last run) never share one.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cdm_assets.domain.identity.star_contraction import star_components
from cdm_assets.domain.sql import SCRATCH, TableName, create_table
from cdm_assets.domain.warehouse import arrow_views, is_duckdb


def cluster_labels(record_count: int, key_a: np.ndarray, key_b: np.ndarray) -> np.ndarray:
    """A component label per record (0..record_count-1); linked records share one."""
    if record_count == 0:
        return np.zeros(0, dtype=np.int64)
    weights = np.ones(len(key_a), dtype=np.int8)
    graph = coo_matrix((weights, (key_a, key_b)), shape=(record_count, record_count)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def key_space(con: duckdb.DuckDBPyConnection, lookup: TableName) -> int:
    """One more than the largest record key: keys of removed records are not reused, so
    the lookup's keys lie in 0..key_space-1 with gaps."""
    return con.execute(f"SELECT coalesce(max(record_key), -1) + 1 FROM {lookup.sql}").fetchall()[0][0]


def component_labels(record_count: int, key_a: np.ndarray, key_b: np.ndarray) -> np.ndarray:
    """Per record key (0..record_count-1) the smallest key of its component."""
    labels = cluster_labels(record_count, key_a, key_b)
    if record_count == 0:
        return labels
    smallest = np.full(int(labels.max()) + 1, record_count, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(record_count, dtype=np.int64))
    return smallest[labels]


def component_labels_among(keys: np.ndarray, key_a: np.ndarray, key_b: np.ndarray) -> np.ndarray:
    """Per key of `keys` (distinct record keys) the smallest key of its component; every link
    (key_a, key_b) joins two of them. Works in the size of `keys`, not of the key space: a
    batch clusters its few thousand records, not a graph of every key."""
    order = np.sort(keys)
    if len(order) == 0:
        if len(key_a):
            raise ValueError("links given, but no record to cluster")
        return order
    local_a, local_b = np.searchsorted(order, key_a), np.searchsorted(order, key_b)
    for local, ends in ((local_a, key_a), (local_b, key_b)):
        if np.any(order[np.minimum(local, len(order) - 1)] != ends):
            raise ValueError("a link joins a record outside the records clustered")
    smallest = order[component_labels(len(order), local_a, local_b)]
    return smallest[np.searchsorted(order, keys)]


def build_clusters(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    graph: TableName,
    clusters: TableName,
    records: str | None = None,
) -> int | None:
    """Write `clusters` (record_key, cluster: the smallest record key of its component) for
    every record of `lookup`, or for the record keys `records` (a SELECT of record_key) selects;
    every link of a record among those must lie among them. Returns the star rounds it took
    where the links stay in the engine, None where they are clustered in memory at once."""
    if not is_duckdb(con):
        return _build_clusters_in_rounds(con, lookup, graph, clusters, records)
    among = "" if records is None else f" WHERE key_a IN ({records})"
    edges = con.sql(f"SELECT key_a, key_b FROM {graph.sql}{among}").to_arrow_table()
    key_a = edges.column("key_a").to_numpy().astype(np.int64, copy=False)
    key_b = edges.column("key_b").to_numpy().astype(np.int64, copy=False)
    chosen = f"SELECT record_key FROM {lookup.sql}" if records is None else records
    keys = con.sql(chosen).to_arrow_table().column(0).to_numpy().astype(np.int64)
    if records is None:
        labels = component_labels(key_space(con, lookup), key_a, key_b)[keys]
    else:
        labels = component_labels_among(keys, key_a, key_b)
    table = pa.table({"record_key": keys, "cluster": labels})
    with arrow_views(con, {"cluster_labels": table}):
        con.execute(f"{create_table(clusters)} AS SELECT * FROM cluster_labels")
    return None


def _build_clusters_in_rounds(
    con: duckdb.DuckDBPyConnection, lookup: TableName, graph: TableName, clusters: TableName, records: str | None
) -> int:
    """`build_clusters` where the links stay in the engine (Spark): components in star
    rounds (`star_contraction.py`), a record without a link its own cluster."""
    among = "" if records is None else f" WHERE key_a IN ({records})"
    chosen = f"SELECT record_key FROM {lookup.sql}" if records is None else records
    labels = TableName(SCRATCH, f"{clusters.name}_components")
    rounds = star_components(con, f"SELECT key_a, key_b FROM {graph.sql}{among}", labels).rounds
    try:
        con.execute(
            f"""
            {create_table(clusters)} AS
            SELECT r.record_key, CAST(coalesce(l.component, r.record_key) AS BIGINT) AS cluster
            FROM ({chosen}) AS r LEFT JOIN {labels.sql} AS l ON l.record_key = r.record_key
            """
        )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {labels.sql}")
    return rounds
