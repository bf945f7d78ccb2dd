"""The identity layer as assets: source lookup, match model, identity graph, stable ids.

Each customer-like entity of the plan gets the same chain of assets over its own tables.
"""

import dataclasses
from pathlib import Path

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.identity.lookup_changes import LookupBuild
from cdm_assets.domain.identity.match_model import ModelSettings, ensure_match_model, model_settings
from cdm_assets.domain.identity.match_model.parameters import StoredModel
from cdm_assets.domain.identity.match_rules import links_per_rule
from cdm_assets.domain.identity.overrides import OverrideReport
from cdm_assets.domain.identity.resolution import (
    assign_ids_from_graph,
    build_graph,
    cluster_size_distribution,
    largest_clusters,
    match_rules,
)
from cdm_assets.domain.identity.source_lookup import build_source_lookup_counting_nulls
from cdm_assets.domain.plan import EntityPlan, Plan
from cdm_assets.domain.raw.load import ensure_raw_tables
from cdm_assets.domain.vocabulary import CUSTOMER
from cdm_assets.domain.warehouse import row_count
from cdm_assets.wiring.automation import full_rebuild_asked
from cdm_assets.wiring.keys import IDENTITY_GROUP, OWNERS, Namespace
from cdm_assets.wiring.metadata import nulled_values_metadata, preview_policy, table_metadata

SPEC_COMMON = {"group_name": IDENTITY_GROUP, "kinds": {"duckdb"}, "owners": OWNERS}


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


def training_age(model: StoredModel, records_now: int) -> dict[str, int | float]:
    """How far the lookup has moved from the records the model (and its value frequencies) was
    trained on: the UI plots `records_now_per_trained`; retrain when it has moved far from 1."""
    if model.trained_on_records is None:
        return {"records_now": records_now}
    return {
        "trained_on_records": model.trained_on_records,
        "records_now": records_now,
        "records_now_per_trained": round(records_now / max(model.trained_on_records, 1), 3),
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


def build_identity_assets(config: CdmConfig, ns: Namespace) -> list[dg.AssetsDefinition]:
    """The identity layer of `customer` and of every declared customer-like entity."""
    plan = resolve_plan(config)
    return [asset for entity in plan.entities.values() for asset in entity_identity_assets(config, plan, entity, ns)]


def entity_identity_assets(
    config: CdmConfig, plan: Plan, entity: EntityPlan, ns: Namespace
) -> list[dg.AssetsDefinition]:
    """Source lookup, match model (when on), identity graph and ids of one entity."""
    settings = model_settings(entity)
    model = [match_model_asset(entity, settings, ns)] if settings is not None else []
    return [
        source_lookup_asset(config, plan, entity, ns),
        *model,
        identity_graph_asset(config, entity, ns, with_model=settings is not None),
        entity_ids_asset(config, entity, ns),
    ]


def _common(ns: Namespace) -> dict:
    return {**SPEC_COMMON, **ns.on_warehouse}


def _records(entity: EntityPlan) -> str:
    return "customer records" if entity.name == CUSTOMER else f"{entity.name} records"


def source_lookup_asset(config: CdmConfig, plan: Plan, entity: EntityPlan, ns: Namespace) -> dg.AssetsDefinition:
    tables = entity.tables

    @dg.asset(
        key=ns.table_key(tables.lookup),
        deps=[ns.raw_asset_key(name) for name in entity.sources],
        **_common(ns),
        description=(
            f"Every record of every {entity.name} source, one row each: names, emails, phones (E.164), "
            "dates, addresses and countries standardised, plus the match keys the identity rules compare. "
            "Values a standardisation leaves NULL (an implausible birth date, an invalid or placeholder "
            "email or phone, an unknown country) are counted per source, field and reason."
        ),
    )
    def source_lookup(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with ns.warehouse_of(context).get_connection() as con:
            for name in ensure_raw_tables(con, plan.sources):
                context.log.warning(f"raw/{name} has not been loaded yet: it counts as an empty source")
            build = build_source_lookup_counting_nulls(con, entity, full=full_rebuild_asked(context))
            changes = lookup_change_metadata(build.build)
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
                **changes,
                "records_standardised": build.standardised,
                # sources read by the record ids their last load recorded, not whole
                "sources_read_by_changes": ", ".join(build.read_by_changes) or "none",
                **nulled_values_metadata(build.nulled),
            }
        )

    return source_lookup


def lookup_change_metadata(build: LookupBuild | None) -> dict[str, int | str]:
    """The records a lookup build added, changed and removed, as numbers the UI plots; or why
    they are not known (a first build, or one whose columns changed)."""
    if build is None or not build.complete:
        return {"changes": "not known: a first build, or the lookup's columns changed"}
    return {"changes/added": build.added, "changes/changed": build.changed, "changes/removed": build.removed}


def match_model_asset(entity: EntityPlan, settings: ModelSettings, ns: Namespace) -> dg.AssetsDefinition:
    tables = entity.tables

    @dg.asset(
        key=ns.table_key(tables.model),
        deps=[ns.table_key(tables.lookup)],
        **_common(ns),
        description=(
            f"The match model of {_records(entity)}: per compared field and level, m (how often the records "
            "of one person reach it) and u (how often two different people do), estimated from the "
            "records themselves, without labels. Trained when missing, when its settings change or "
            "with `retrain: true` in the run config; reused otherwise, so unchanged input keeps every id."
        ),
    )
    def match_model(context: dg.AssetExecutionContext, config: MatchModelRun):
        with ns.warehouse_of(context).get_connection() as con:
            stored, trained = ensure_match_model(con, settings, tables.lookup, tables.model, retrain=config.retrain)
            records_now = row_count(con, tables.lookup)
        context.log.info("match model " + ("trained" if trained else "reused: it fits the settings"))
        return dg.MaterializeResult(metadata={**model_metadata(stored, trained), **training_age(stored, records_now)})

    return match_model


def identity_graph_asset(config: CdmConfig, entity: EntityPlan, ns: Namespace, with_model: bool) -> dg.AssetsDefinition:
    tables = entity.tables
    rules = match_rules(entity)

    @dg.asset(
        key=ns.table_key(tables.graph),
        deps=[ns.table_key(tables.lookup), *([ns.table_key(tables.model)] if with_model else [])],
        **_common(ns),
        metadata={"rules": dg.MetadataValue.json([dataclasses.asdict(r) for r in rules])},
        description=(
            f"Which {_records(entity)} are the same {'person' if entity.name == CUSTOMER else entity.name}: "
            "one row per link between two records, labelled with the hard rule that linked them (first in "
            "configured order) or `match_model`, with the model's match probability, match weight and the "
            "weight of each compared field. A steward's overrides win: a `link` adds a link labelled "
            "`override`, an `unlink` cuts the weakest links between two records (moved to "
            f"`{tables.cut_links}`); each line's outcome is in `{tables.overrides}`."
        ),
    )
    def identity_graph(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if entity.overrides is not None and not Path(entity.overrides).is_file():
            context.log.warning(f"{entity.overrides}: no overrides file yet; the rules and the model decide alone")
        with ns.warehouse_of(context).get_connection() as con:
            built = build_graph(con, entity, full=full_rebuild_asked(context))
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
                "followed_changes": built.followed_changes,
                **({"rule_blocks_rebuilt": built.rule_blocks_rebuilt} if built.followed_changes else {}),
                **({"rows_rewritten": built.rows_rewritten} if built.rows_rewritten is not None else {}),
                **per_rule_numbers,
                **model_numbers,
                **override_metadata(context, entity, built.overrides),
            }
        )

    return identity_graph


def override_metadata(
    context: dg.AssetExecutionContext, entity: EntityPlan, report: OverrideReport | None
) -> dict[str, int]:
    """Lines of the overrides file per status and the links they cut, as numbers; a warning
    naming the file and line for each override the build could not honour."""
    if entity.overrides is None or report is None:
        return {}
    for override in report.unknown:
        context.log.warning(
            f"{entity.overrides}:{override.line}: no {entity.name} record "
            f"{override.source_a}:{override.record_id_a} or {override.source_b}:{override.record_id_b}; "
            f"the {override.action} is not applied"
        )
    for override, unlink_line in report.overruled:
        context.log.warning(
            f"{entity.overrides}:{override.line}: the link is overruled by the unlink at line {unlink_line}, "
            "which it contradicts through other records"
        )
    statuses = {f"overrides/{status.replace(' ', '_')}": n for status, n in sorted(report.statuses.items())}
    return {**statuses, "overrides/links_cut": report.links_cut}


def entity_ids_asset(config: CdmConfig, entity: EntityPlan, ns: Namespace) -> dg.AssetsDefinition:
    tables, label, name = entity.tables, entity.tables.label, entity.name
    map_key, history_key, graph_key = (ns.table_key(t) for t in (tables.id_map, tables.id_history, tables.graph))

    @dg.multi_asset(
        name=ns.name(f"{name}_ids"),
        specs=[
            dg.AssetSpec(
                map_key,
                deps=[graph_key],
                **SPEC_COMMON,
                description=(
                    f"The stable {label} of every {name} record: connected groups of the identity "
                    "graph, keeping their ids across re-runs (merges keep the older id, splits leave it "
                    "with the larger part)."
                ),
            ),
            dg.AssetSpec(
                history_key,
                deps=[graph_key],
                **SPEC_COMMON,
                description=(
                    f"Every {label} change: created, merged, split, moved, retired, or override (a merge, "
                    "split or move a steward's override made); append-only."
                ),
            ),
        ],
        **ns.on_warehouse,
    )
    def entity_ids(context: dg.AssetExecutionContext):
        with ns.warehouse_of(context).get_connection() as con:
            assignment = assign_ids_from_graph(con, tables, full=full_rebuild_asked(context))
            sizes = cluster_size_distribution(con, tables)
            largest = largest_clusters(con, tables)
            map_metadata = table_metadata(con, tables.id_map, preview_policy(config), config)
            history_metadata = table_metadata(con, tables.id_history, preview_policy(config), config)
        yield dg.MaterializeResult(
            asset_key=map_key,
            metadata={
                **map_metadata,
                f"{name}s": assignment.customers,
                # what this assignment changed: the rest kept their records and ids
                f"{name}s_changed": assignment.customers - assignment.settled,
                "records_changed": assignment.records_changed,
                # the records clustered again: every record, or those of the clusters a batch touched
                "records_clustered": assignment.records_clustered,
                # on an engine that clusters in star rounds (Spark), how many it took
                **(
                    {"clustering_rounds": assignment.clustering_rounds}
                    if assignment.clustering_rounds is not None
                    else {}
                ),
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
                "override": assignment.override,
            },
        )

    return entity_ids
