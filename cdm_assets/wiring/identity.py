"""The identity layer as assets: source lookup, identity graph, Customer IDs."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from cdm_assets.config import CdmConfig
from cdm_assets.config.model import CUSTOMER
from cdm_assets.domain.identity.entity_tables import CUSTOMER_TABLES, entity_tables
from cdm_assets.domain.identity.match_model import ensure_match_model, model_settings
from cdm_assets.domain.identity.match_model.parameters import StoredModel
from cdm_assets.domain.identity.match_rules import links_per_rule
from cdm_assets.domain.identity.resolution import (
    assign_ids_from_graph,
    build_graph,
    cluster_size_distribution,
    largest_clusters,
    match_rules,
)
from cdm_assets.domain.identity.source_lookup import build_source_lookup_counting_nulls
from cdm_assets.domain.raw.load import ensure_raw_tables
from cdm_assets.domain.warehouse import TableName
from cdm_assets.wiring.metadata import nulled_values_metadata, preview_policy, table_metadata
from cdm_assets.wiring.raw import OWNERS, raw_asset_key

IDENTITY_GROUP = "identity"


def table_key(table: TableName) -> dg.AssetKey:
    """The asset key of a warehouse table: `identity.source_lookup` → identity/source_lookup."""
    return dg.AssetKey([table.schema, table.name])


SOURCE_LOOKUP_KEY = table_key(CUSTOMER_TABLES.lookup)
MATCH_MODEL_KEY = table_key(CUSTOMER_TABLES.model)
IDENTITY_GRAPH_KEY = table_key(CUSTOMER_TABLES.graph)
CUSTOMER_ID_MAP_KEY = table_key(CUSTOMER_TABLES.id_map)
CUSTOMER_ID_HISTORY_KEY = table_key(CUSTOMER_TABLES.id_history)


class MatchModelRun(dg.Config):
    """Run config of the match model asset."""

    retrain: bool = False  # estimate the model anew even when a stored one fits the settings


def model_metadata(model: StoredModel, trained: bool) -> dict[str, dg.MetadataValue | float | bool | str]:
    """The model as a table (m, u, weight per level), a text chart of the weights,
    and each level's weight as a number the UI plots across materialisations."""
    rows, chart, numbers = [], [], {}
    for parameters in model.parameters:
        missing = [None] * len(parameters.levels)
        given_u = parameters.u_given_surname or missing
        given_weights = parameters.weights_given_surname() or missing
        for level, m, u, weight, u_relatives, weight_relatives in zip(
            parameters.levels, parameters.m, parameters.u, parameters.weights(), given_u, given_weights
        ):
            rows.append(
                dg.TableRecord(
                    {"comparison": parameters.comparison, "level": level, "m": round(m, 6), "u": round(u, 9),
                     "match_weight": round(weight, 2),
                     "u_among_relatives": None if u_relatives is None else round(u_relatives, 9),
                     "match_weight_among_relatives": None if weight_relatives is None else round(weight_relatives, 2)}
                )
            )  # fmt: skip
            bar = ("+" if weight >= 0 else "-") * min(int(abs(weight) + 0.5), 30)
            chart.append(f"| {parameters.comparison} | {level} | {weight:+.1f} | `{bar}` |")
            numbers[f"weight/{parameters.comparison}/{level}"] = round(weight, 3)
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("comparison", "string"), dg.TableColumn("level", "string"), dg.TableColumn("m", "float"),
            dg.TableColumn("u", "float"), dg.TableColumn("match_weight", "float"),
            dg.TableColumn("u_among_relatives", "float", description="u beside a shared surname and no shared first name"),
            dg.TableColumn("match_weight_among_relatives", "float"),
        ]
    )  # fmt: skip
    return {
        "trained_now": trained,
        "trained_at": model.trained_at.isoformat(sep=" ", timespec="seconds"),
        "prior": model.prior,
        "parameters": dg.MetadataValue.table(rows, schema=schema),
        "match_weights": dg.MetadataValue.md(
            "| comparison | level | weight (bits) | |\n| --- | --- | --- | --- |\n" + "\n".join(chart)
        ),
        **numbers,
    }


# Cluster sizes the UI plots across runs, one number each: the last bucket holds every larger size.
SIZE_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, None))


def size_buckets(sizes: dict[int, int]) -> dict[str, int]:
    """Customers per cluster size bucket (`clusters/size_1`, ..., `clusters/size_5_9`, `clusters/size_10_up`)."""
    buckets = {}
    for low, high in SIZE_BUCKETS:
        name = f"size_{low}" if low == high else (f"size_{low}_{high}" if high else f"size_{low}_up")
        buckets[f"clusters/{name}"] = sum(
            n for size, n in sizes.items() if size >= low and (high is None or size <= high)
        )
    return buckets


def build_identity_assets(config: CdmConfig) -> list[dg.AssetsDefinition]:
    """The identity layer of `customer` and of every declared customer-like entity."""
    return [asset for entity in config.customer_entities() for asset in entity_identity_assets(config, entity)]


def entity_identity_assets(config: CdmConfig, entity: str) -> list[dg.AssetsDefinition]:
    tables = entity_tables(config, entity)
    raw_sources = [raw_asset_key(name) for name in config.sources_of(entity)]
    rules = match_rules(config, entity)
    lookup_key, graph_key = table_key(tables.lookup), table_key(tables.graph)
    map_key, history_key = table_key(tables.id_map), table_key(tables.id_history)
    label = tables.label
    records = "customer records" if entity == CUSTOMER else f"{entity} records"
    spec_common = {"group_name": IDENTITY_GROUP, "kinds": {"duckdb"}, "owners": OWNERS}

    @dg.asset(
        key=lookup_key,
        deps=raw_sources,
        **spec_common,
        pool="duckdb",
        description=(
            f"Every record of every {entity} source, one row each: names, emails, phones (E.164), "
            "dates, addresses and countries standardised, plus the match keys the identity rules compare. "
            "Values a standardisation leaves NULL (an implausible birth date, an invalid or placeholder "
            "email or phone, an unknown country) are counted per source, field and reason."
        ),
    )
    def source_lookup(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            for name in ensure_raw_tables(con, config.sources):
                context.log.warning(f"raw/{name} has not been loaded yet: it counts as an empty source")
            build = build_source_lookup_counting_nulls(con, config, entity)
            per_source = dict(
                con.execute(
                    f"SELECT source, count(*) FROM {tables.lookup.sql} GROUP BY source ORDER BY source"
                ).fetchall()
            )
            metadata = table_metadata(con, tables.lookup, preview_policy(config), config)
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "records_per_source": dg.MetadataValue.json(per_source),
                **nulled_values_metadata(build.nulled),
            }
        )

    settings_of_model = model_settings(config, entity)
    model_key = table_key(tables.model)
    model_assets = []
    if settings_of_model is not None:

        @dg.asset(
            key=model_key,
            deps=[lookup_key],
            **spec_common,
            pool="duckdb",
            description=(
                f"The match model of {records}: per compared field and level, m (how often the records "
                "of one person reach it) and u (how often two different people do), estimated from the "
                "records themselves, without labels. Trained when missing, when its settings change or "
                "with `retrain: true` in the run config; reused otherwise, so unchanged input keeps every id."
            ),
        )
        def match_model(context: dg.AssetExecutionContext, config: MatchModelRun, duckdb: DuckDBResource):
            with duckdb.get_connection() as con:
                stored, trained = ensure_match_model(
                    con, settings_of_model, tables.lookup, tables.model, retrain=config.retrain
                )
            context.log.info("match model " + ("trained" if trained else "reused: it fits the settings"))
            return dg.MaterializeResult(metadata=model_metadata(stored, trained))

        model_assets.append(match_model)

    @dg.asset(
        key=graph_key,
        deps=[lookup_key, *([model_key] if settings_of_model is not None else [])],
        **spec_common,
        pool="duckdb",
        metadata={"rules": dg.MetadataValue.json([r.model_dump() for r in rules])},
        description=(
            f"Which {records} are the same {'person' if entity == CUSTOMER else entity}: one row per link "
            "between two records, labelled with the hard rule that linked them (first in configured order) "
            "or `match_model`, with the model's match probability, match weight and the weight of each "
            "compared field."
        ),
    )
    def identity_graph(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            built = build_graph(con, config, entity)
            per_rule = links_per_rule(con, tables.graph)
            metadata = table_metadata(con, tables.graph, preview_policy(config), config)
        # one number per rule, so the UI plots each rule's links across runs; and the model's
        # pairs: scored, over the threshold, held apart by cannot-link, dropped for a conflict
        per_rule_numbers = {f"links/{rule}": count for rule, count in per_rule.items()}
        model_numbers = {f"model/{name}": count for name, count in (built.model_pairs or {}).items()}
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "links_per_rule": dg.MetadataValue.json(per_rule),
                **per_rule_numbers,
                **model_numbers,
            }
        )

    @dg.multi_asset(
        name=f"{entity}_ids",
        specs=[
            dg.AssetSpec(
                map_key,
                deps=[graph_key],
                **spec_common,
                description=(
                    f"The stable {label} of every {entity} record: connected groups of the identity "
                    "graph, keeping their ids across re-runs (merges keep the older id, splits leave it "
                    "with the larger part)."
                ),
            ),
            dg.AssetSpec(
                history_key,
                deps=[graph_key],
                **spec_common,
                description=f"Every {label} change: created, merged, split, moved, retired; append-only.",
            ),
        ],
        pool="duckdb",
    )
    def entity_ids(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        with duckdb.get_connection() as con:
            assignment = assign_ids_from_graph(con, tables=tables)
            sizes = cluster_size_distribution(con, tables)
            largest = largest_clusters(con, tables=tables)
            map_metadata = table_metadata(con, tables.id_map, preview_policy(config), config)
            history_metadata = table_metadata(con, tables.id_history, preview_policy(config), config)
        yield dg.MaterializeResult(
            asset_key=map_key,
            metadata={
                **map_metadata,
                f"{entity}s": assignment.customers,
                "cluster_size_distribution": dg.MetadataValue.json({str(k): v for k, v in sizes.items()}),
                **size_buckets(sizes),
                "largest_clusters": dg.MetadataValue.table(
                    records=[dg.TableRecord({tables.id_column: cid, "records": size}) for cid, size in largest],
                    schema=dg.TableSchema(
                        columns=[dg.TableColumn(tables.id_column, "string"), dg.TableColumn("records", "int")]
                    ),
                ),
            },
        )
        yield dg.MaterializeResult(
            asset_key=history_key,
            metadata={
                **history_metadata,
                "created": assignment.created,
                "merged": assignment.merged,
                "split": assignment.split,
                "retired": assignment.retired,
            },
        )

    return [source_lookup, *model_assets, identity_graph, entity_ids]
