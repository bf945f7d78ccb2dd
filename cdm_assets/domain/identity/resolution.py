"""The identity step end to end: source lookup → identity graph → Customer IDs.

Each stage is also a separate Dagster asset; this module strings them
together for benchmarks and tools that run the step without Dagster, and
holds the summaries both report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from cdm_assets.config.model import CdmConfig, MatchRule
from cdm_assets.domain.identity.clustering import build_clusters
from cdm_assets.domain.identity.customer_ids import CUSTOMER_ID_MAP, IdAssignment, assign_customer_ids
from cdm_assets.domain.identity.match_rules import (
    IDENTITY_GRAPH,
    SOURCE_LOOKUP,
    build_identity_graph,
    default_rules,
)
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.warehouse import TableName, staged_tables


def match_rules(config: CdmConfig) -> list[MatchRule]:
    """The configured rules, or the defaults for this config's identifiers."""
    if config.identity.rules is not None:
        return list(config.identity.rules)
    return default_rules(config.identifier_names())


def assign_ids_from_graph(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> IdAssignment:
    """Cluster the identity graph and give every cluster its stable Customer ID."""
    with staged_tables(con, TableName("identity", "clusters")) as (clusters,):
        build_clusters(con, SOURCE_LOOKUP, IDENTITY_GRAPH, clusters)
        return assign_customer_ids(con, SOURCE_LOOKUP, clusters, now=now)


@dataclass
class IdentityRun:
    records: int
    links: int
    assignment: IdAssignment
    seconds: dict[str, float] = field(default_factory=dict)


def run_identity_resolution(con: duckdb.DuckDBPyConnection, config: CdmConfig) -> IdentityRun:
    """Rebuild the whole identity layer from the raw customer tables."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    records = build_source_lookup(con, config)
    seconds["source_lookup"] = time.perf_counter() - start
    start = time.perf_counter()
    links = build_identity_graph(con, match_rules(config), config.identity.max_records_per_key)
    seconds["identity_graph"] = time.perf_counter() - start
    start = time.perf_counter()
    assignment = assign_ids_from_graph(con)
    seconds["customer_ids"] = time.perf_counter() - start
    return IdentityRun(records, links, assignment, seconds)


def cluster_size_distribution(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """Number of customers per cluster size (records per customer_id)."""
    rows = con.execute(
        f"""
        SELECT size, count(*) FROM (
            SELECT count(*) AS size FROM {CUSTOMER_ID_MAP.sql} GROUP BY customer_id
        ) GROUP BY size ORDER BY size
        """
    ).fetchall()
    return {int(size): int(n) for size, n in rows}


def largest_clusters(con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[tuple[str, int]]:
    return [
        (customer_id, int(size))
        for customer_id, size in con.execute(
            f"""
            SELECT customer_id, count(*) AS size FROM {CUSTOMER_ID_MAP.sql}
            GROUP BY customer_id ORDER BY size DESC, customer_id LIMIT ?
            """,
            [limit],
        ).fetchall()
    ]
