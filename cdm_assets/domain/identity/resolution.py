"""The identity step end to end: source lookup → identity graph → Customer IDs.

Each stage is also a separate Dagster asset; this module strings them
together for benchmarks and tools that run the step without Dagster, and
holds the summaries both report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import duckdb

from cdm_assets.domain.identity.cluster_changes import RecordedChanges, TouchedClusters, can_follow, cluster_touched
from cdm_assets.domain.identity.clustering import build_clusters
from cdm_assets.domain.identity.customer_ids import IdAssignment, assign_customer_ids
from cdm_assets.domain.identity.default_rules import default_rules, identifier_rules
from cdm_assets.domain.identity.graph_changes import GraphState
from cdm_assets.domain.identity.lookup_changes import changes_table, current_build
from cdm_assets.domain.identity.match_model import ensure_match_model, model_settings, scoring_model
from cdm_assets.domain.identity.match_rules import GraphBuild, build_identity_graph
from cdm_assets.domain.identity.override_file import Override, read_overrides
from cdm_assets.domain.identity.overrides import clusters_made_by_overrides
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.plan import EntityPlan, EntityTables, MatchRule
from cdm_assets.domain.sql import SCRATCH, TableName, quote_ident
from cdm_assets.domain.table_versions import Delta, input_deltas
from cdm_assets.domain.warehouse import staged_tables


def match_rules(entity: EntityPlan) -> list[MatchRule]:
    """The entity's hard rules: the configured ones; else, beside the match model, one
    per source identifier (`same_<identifier>`); else (model switched off) the default rule set."""
    if entity.rules is not None:
        return list(entity.rules)
    if entity.match_model is not None:
        return identifier_rules(entity.identifier_names)
    return default_rules(entity.identifier_names)


def build_graph(
    con: duckdb.DuckDBPyConnection, entity: EntityPlan, retrain: bool = False, full: bool = False
) -> GraphBuild:
    """The identity graph of `entity`: its hard rules and, when on, its match model
    (reused from the warehouse, or trained when missing, changed or `retrain`). It follows
    the lookup's last changes when it can (see `build_identity_graph`), unless `full`."""
    tables = entity.tables
    settings = model_settings(entity)
    model = None
    if settings is not None:
        stored, _ = ensure_match_model(con, settings, tables.lookup, tables.model, retrain=retrain)
        model = scoring_model(settings, stored)
    overrides = steward_overrides(entity)
    return build_identity_graph(
        con, match_rules(entity), entity.max_records_per_key, tables, model=model, overrides=overrides,
        lookup_build=current_build(con, tables.lookup), full=full,
    )  # fmt: skip


def steward_overrides(entity: EntityPlan) -> list[Override]:
    """The lines of the entity's overrides file; none when no file is configured or it is not there yet."""
    if entity.overrides is None or not Path(entity.overrides).is_file():
        return []
    return read_overrides(entity.overrides)


def assign_ids_from_graph(
    con: duckdb.DuckDBPyConnection, tables: EntityTables, now: datetime | None = None, full: bool = False
) -> IdAssignment:
    """Cluster the identity graph and give every cluster its stable Customer ID. Unless
    `full`, only the clusters the graph's changes since the last assignment touched are
    worked on, when the last assignment left what that needs (`cluster_changes`)."""
    scratch = [TableName(SCRATCH, f"{tables.entity}_{part}") for part in ("clusters", "made_by_overrides")]
    touched = TouchedClusters.scratch(tables) if not full and can_follow(con, tables) else None
    inputs = input_deltas(con, tables.id_map, [tables.graph, tables.lookup])
    recorded = None
    if inputs.all(Delta.NONE, Delta.RECORDED):  # the graph's and the lookup's changes since the map are at hand
        recorded = RecordedChanges(
            GraphState.of(tables.graph).changes if inputs.of(tables.graph) is Delta.RECORDED else None,
            changes_table(tables.lookup) if inputs.of(tables.lookup) is Delta.RECORDED else None,
        )
    with staged_tables(con, *scratch, *(touched.tables if touched else ())) as staging:
        clusters, made_by_overrides = staging[:2]
        if touched is None:
            rounds = build_clusters(con, tables.lookup, tables.graph, clusters)
            everyone = clusters.sql
        else:
            touched = TouchedClusters(*staging[2:])
            rounds = cluster_touched(con, tables, touched, clusters, recorded)
            everyone = (
                f"(SELECT record_key, cluster FROM {tables.id_map.sql} WHERE NOT ({touched.previous_rows()}) "
                f"UNION ALL SELECT record_key, cluster FROM {clusters.sql})"
            )
        clusters_made_by_overrides(con, tables.graph, tables.cut_links, everyone, made_by_overrides)
        assignment = assign_customer_ids(
            con, tables.lookup, clusters, tables, now=now, made_by_overrides=made_by_overrides, touched=touched,
            built_from=inputs.now,
        )  # fmt: skip
    return replace(assignment, clustering_rounds=rounds)


@dataclass
class IdentityRun:
    records: int
    links: int
    assignment: IdAssignment
    seconds: dict[str, float] = field(default_factory=dict)


def run_identity_resolution(con: duckdb.DuckDBPyConnection, entity: EntityPlan) -> IdentityRun:
    """Rebuild the whole identity layer of `entity` from its raw tables."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    records = build_source_lookup(con, entity)
    seconds["source_lookup"] = time.perf_counter() - start
    start = time.perf_counter()
    links = build_graph(con, entity).links
    seconds["identity_graph"] = time.perf_counter() - start
    start = time.perf_counter()
    assignment = assign_ids_from_graph(con, entity.tables)
    seconds["customer_ids"] = time.perf_counter() - start
    return IdentityRun(records, links, assignment, seconds)


def cluster_size_distribution(con: duckdb.DuckDBPyConnection, tables: EntityTables) -> dict[int, int]:
    """Number of customers per cluster size (records per customer_id). A customer is one
    cluster of the map, so its integer `cluster` is grouped on, not its id's text."""
    rows = con.execute(
        f"""
        SELECT size, count(*) FROM (SELECT count(*) AS size FROM {tables.id_map.sql} GROUP BY cluster)
        GROUP BY size ORDER BY size
        """
    ).fetchall()
    return {int(size): int(n) for size, n in rows}


def largest_clusters(con: duckdb.DuckDBPyConnection, tables: EntityTables, limit: int = 5) -> list[tuple[str, int]]:
    """The `limit` customers with the most records (ties: the one holding the smaller record key first)."""
    id_column = quote_ident(tables.id_column)
    return [
        (customer_id, int(size))
        for customer_id, size in con.execute(
            f"""
            WITH largest AS (
                SELECT cluster, count(*) AS size FROM {tables.id_map.sql}
                GROUP BY cluster ORDER BY size DESC, cluster LIMIT ?
            )
            SELECT any_value(m.{id_column}), any_value(largest.size)
            FROM largest JOIN {tables.id_map.sql} m USING (cluster)
            GROUP BY cluster ORDER BY any_value(largest.size) DESC, cluster
            """,
            [limit],
        ).fetchall()
    ]
