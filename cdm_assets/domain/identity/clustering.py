"""Connected components over the identity graph.

Union-find over millions of edges is one pass with scipy's sparse-graph
routine (linear in records + links, no iteration count that grows with chain
length); the edges move from DuckDB to numpy through Arrow without a Python
loop over rows.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cdm_assets.domain.sql import TableName, create_table
from cdm_assets.domain.warehouse import arrow_views


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


def build_clusters(con: duckdb.DuckDBPyConnection, lookup: TableName, graph: TableName, clusters: TableName) -> int:
    """Write `clusters` (record_key, cluster) for every record of `lookup`; returns the cluster count."""
    edges = con.sql(f"SELECT key_a, key_b FROM {graph.sql}").to_arrow_table()
    labels = cluster_labels(
        key_space(con, lookup),
        edges.column("key_a").to_numpy().astype(np.int64, copy=False),
        edges.column("key_b").to_numpy().astype(np.int64, copy=False),
    )
    keys = con.sql(f"SELECT record_key FROM {lookup.sql}").to_arrow_table().column(0).to_numpy().astype(np.int64)
    table = pa.table({"record_key": keys, "cluster": labels[keys]})
    with arrow_views(con, {"cluster_labels": table}):
        con.execute(f"{create_table(clusters)} AS SELECT * FROM cluster_labels")
    held = np.zeros(int(labels.max()) + 1 if len(labels) else 0, dtype=bool)
    held[labels[keys]] = True  # the labels of removed records' keys name no cluster
    return int(held.sum())
