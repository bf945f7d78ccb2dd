"""The identity layer as assets: source lookup, identity graph, Customer IDs."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from cdm_assets.config import CdmConfig
from cdm_assets.wiring.metadata import table_metadata
from cdm_assets.wiring.raw import OWNERS, raw_asset_key
from cdm_assets.domain.identity.customer_ids import CUSTOMER_ID_HISTORY, CUSTOMER_ID_MAP
from cdm_assets.domain.identity.match_rules import IDENTITY_GRAPH, SOURCE_LOOKUP, build_identity_graph, links_per_rule
from cdm_assets.domain.identity.resolution import (
    assign_ids_from_graph,
    cluster_size_distribution,
    largest_clusters,
    match_rules,
)
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.raw_tables import ensure_raw_tables

IDENTITY_GROUP = "identity"
SOURCE_LOOKUP_KEY = dg.AssetKey(["identity", "source_lookup"])
IDENTITY_GRAPH_KEY = dg.AssetKey(["identity", "identity_graph"])
CUSTOMER_ID_MAP_KEY = dg.AssetKey(["identity", "customer_id_map"])
CUSTOMER_ID_HISTORY_KEY = dg.AssetKey(["identity", "customer_id_history"])


def build_identity_assets(config: CdmConfig) -> list[dg.AssetsDefinition]:
    customer_sources = [raw_asset_key(name) for name in config.sources_of("customer")]
    rules = match_rules(config)

    @dg.asset(
        key=SOURCE_LOOKUP_KEY,
        deps=customer_sources,
        group_name=IDENTITY_GROUP,
        kinds={"duckdb"},
        owners=OWNERS,
        pool="duckdb",
    )
    def source_lookup(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        """Every customer record of every customer source, one row each: names, emails,
        phones (E.164), dates, addresses and countries standardised, plus the match keys
        the identity rules compare."""
        with duckdb.get_connection() as con:
            for name in ensure_raw_tables(con, config.sources):
                context.log.warning(f"raw/{name} has not been loaded yet: it counts as an empty source")
            build_source_lookup(con, config)
            per_source = dict(
                con.execute(f"SELECT source, count(*) FROM {SOURCE_LOOKUP.sql} GROUP BY source ORDER BY source").fetchall()
            )
            metadata = table_metadata(con, SOURCE_LOOKUP)
        return dg.MaterializeResult(metadata={**metadata, "records_per_source": dg.MetadataValue.json(per_source)})

    @dg.asset(
        key=IDENTITY_GRAPH_KEY,
        deps=[SOURCE_LOOKUP_KEY],
        group_name=IDENTITY_GROUP,
        kinds={"duckdb"},
        owners=OWNERS,
        pool="duckdb",
        metadata={"rules": dg.MetadataValue.json([r.model_dump() for r in rules])},
    )
    def identity_graph(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        """Which customer records are the same person: one row per link between two
        records, labelled with the first match rule (in configured order) that linked them
        and its similarity score where the rule has one."""
        with duckdb.get_connection() as con:
            build_identity_graph(con, rules, config.identity.max_records_per_key)
            per_rule = links_per_rule(con)
            metadata = table_metadata(con, IDENTITY_GRAPH)
        return dg.MaterializeResult(metadata={**metadata, "links_per_rule": dg.MetadataValue.json(per_rule)})

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                CUSTOMER_ID_MAP_KEY,
                deps=[IDENTITY_GRAPH_KEY],
                group_name=IDENTITY_GROUP,
                kinds={"duckdb"},
                owners=OWNERS,
                description=(
                    "The stable Customer ID of every customer record: connected groups of the identity "
                    "graph, keeping their ids across re-runs (merges keep the older id, splits leave it "
                    "with the larger part)."
                ),
            ),
            dg.AssetSpec(
                CUSTOMER_ID_HISTORY_KEY,
                deps=[IDENTITY_GRAPH_KEY],
                group_name=IDENTITY_GROUP,
                kinds={"duckdb"},
                owners=OWNERS,
                description="Every Customer ID change: created, merged, split, moved, retired; append-only.",
            ),
        ],
        pool="duckdb",
    )
    def customer_ids(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        """Clusters the identity graph and assigns stable Customer IDs."""
        with duckdb.get_connection() as con:
            assignment = assign_ids_from_graph(con)
            sizes = cluster_size_distribution(con)
            largest = largest_clusters(con)
            map_metadata = table_metadata(con, CUSTOMER_ID_MAP)
            history_metadata = table_metadata(con, CUSTOMER_ID_HISTORY)
        yield dg.MaterializeResult(
            asset_key=CUSTOMER_ID_MAP_KEY,
            metadata={
                **map_metadata,
                "customers": assignment.customers,
                "cluster_size_distribution": dg.MetadataValue.json({str(k): v for k, v in sizes.items()}),
                "largest_clusters": dg.MetadataValue.md(
                    "| customer_id | records |\n| --- | --- |\n"
                    + "\n".join(f"| {cid} | {size} |" for cid, size in largest)
                ),
            },
        )
        yield dg.MaterializeResult(
            asset_key=CUSTOMER_ID_HISTORY_KEY,
            metadata={
                **history_metadata,
                "created": assignment.created,
                "merged": assignment.merged,
                "split": assignment.split,
                "retired": assignment.retired,
            },
        )

    return [source_lookup, identity_graph, customer_ids]
