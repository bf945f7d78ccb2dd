"""The master models as assets: customers, transactions, events, customer metrics."""

from datetime import timedelta

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.marts.attributes import quarantined_attribute_values
from cdm_assets.domain.marts.customer_metrics import CUSTOMER_METRICS, build_customer_metrics
from cdm_assets.domain.marts.customers import build_customers
from cdm_assets.domain.marts.events import EVENTS, build_events
from cdm_assets.domain.marts.transactions import TRANSACTIONS, build_transactions
from cdm_assets.domain.plan import EntityPlan, Plan
from cdm_assets.domain.raw.load import ensure_raw_tables
from cdm_assets.domain.vocabulary import CUSTOMER, EVENT, TRANSACTION
from cdm_assets.wiring.automation import full_rebuild_asked
from cdm_assets.wiring.keys import MARTS_GROUP, OWNERS, Namespace
from cdm_assets.wiring.metadata import preview_policy, table_metadata


def build_mart_assets(config: CdmConfig, ns: Namespace) -> list[dg.AssetsDefinition]:
    plan = resolve_plan(config)
    customer = plan.entities[CUSTOMER].tables
    key = ns.table_key

    def raw_keys(entity: str) -> list[dg.AssetKey]:
        return [ns.raw_asset_key(name) for name in plan.sources_of(entity)]

    common = {
        "group_name": MARTS_GROUP,
        "kinds": {"duckdb"},
        "owners": OWNERS,
        **ns.on_warehouse,
    }

    golden = [golden_records_asset(config, plan, entity, common, ns) for entity in plan.entities.values()]

    @dg.asset(key=key(TRANSACTIONS), deps=[key(customer.id_map), *raw_keys(TRANSACTION)], **common)
    def transactions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Every order and return of every transaction source, linked to its Customer ID.
        Amounts are non-negative (the type tells order from return), currencies ISO 4217,
        timestamps parsed; rows breaking these rules are quarantined with the reason."""
        with ns.warehouse_of(context).get_connection() as con:
            ensure_raw_tables(con, plan.sources)  # sources not landed yet count as empty
            report = build_transactions(con, plan, full=full_rebuild_asked(context))
            metadata = table_metadata(con, TRANSACTIONS, preview_policy(config))
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "rows_in": report.rows_in,
                "quarantined": report.quarantined,
                "unattributed": report.unattributed,
                "followed_changes": report.followed_changes,
                **({"relinked": report.relinked} if report.followed_changes else {}),
            }
        )

    @dg.asset(key=key(EVENTS), deps=[key(customer.id_map), key(customer.lookup), *raw_keys(EVENT)], **common)
    def events(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Every tracked event, linked to a Customer ID by customer reference or email;
        anonymous ids seen with a known customer are stitched to that customer, earlier
        anonymous events included."""
        with ns.warehouse_of(context).get_connection() as con:
            ensure_raw_tables(con, plan.sources)  # sources not landed yet count as empty
            report = build_events(con, plan, full=full_rebuild_asked(context))
            metadata = table_metadata(con, EVENTS, preview_policy(config))
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "attribution": dg.MetadataValue.json(report.by_attribution),
                "followed_changes": report.followed_changes,
                **({"relinked": report.relinked} if report.followed_changes else {}),
            }
        )

    @dg.asset(key=key(CUSTOMER_METRICS), deps=[key(customer.golden), key(TRANSACTIONS), key(EVENTS)], **common)
    def customer_metrics(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Per customer: orders, returns, net revenue per currency, first and last order,
        days since the last order, event count and last event."""
        with ns.warehouse_of(context).get_connection() as con:
            report = build_customer_metrics(con, customer, full=full_rebuild_asked(context))
            metadata = table_metadata(con, CUSTOMER_METRICS, preview_policy(config))
        followed = {"followed_changes": report.followed_changes}
        if report.followed_changes:
            followed["recomputed"] = report.recomputed
        return dg.MaterializeResult(metadata={**metadata, **followed})

    return [*golden, transactions, events, customer_metrics]


def golden_records_asset(
    config: CdmConfig, plan: Plan, entity: EntityPlan, common: dict, ns: Namespace
) -> dg.AssetsDefinition:
    """`marts/customers`, or the golden records of another customer-like entity."""
    tables, linked = entity.tables, entity.linked
    deps = [
        ns.table_key(tables.id_map),
        *(ns.table_key(t.id_map) for t in linked),
        *(ns.raw_asset_key(name) for name in entity.sources),
    ]
    links = "".join(f", the {t.id_column} of its {t.entity}" for t in linked)

    @dg.asset(
        key=ns.table_key(tables.golden),
        deps=deps,
        description=(
            f"One golden record per {tables.label}: each field from the best source by survivorship "
            f"(precedence, then most recent, then most frequent), attributes declared in cdm.yaml{links}, "
            f"the {entity.name}'s sources, record count, first and last seen."
        ),
        **common,
    )
    def golden_records(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with ns.warehouse_of(context).get_connection() as con:
            ensure_raw_tables(con, plan.sources)  # sources not landed yet count as empty
            report = build_customers(con, entity, full=full_rebuild_asked(context))
            metadata = table_metadata(con, tables.golden, preview_policy(config), config)
            quarantined = quarantined_attribute_values(con, entity)
        attributes = ", ".join(entity.attribute_names) or "none"
        # typed attribute values that did not read as their type: left out, and in raw/quarantine
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "attributes": attributes,
                "attribute_values_quarantined": quarantined,
                "followed_changes": report.followed_changes,
                **({"rebuilt": report.rebuilt} if report.followed_changes else {}),
            }
        )

    return golden_records


def with_freshness(config: CdmConfig, spec: dg.AssetSpec, ns: Namespace) -> dg.AssetSpec:
    """A mart's spec with the freshness the config expects (`checks.freshness`): Dagster
    shows it late after `warn_after_hours` and stale after `fail_after_hours` without a
    new materialisation. Other assets are returned as they are."""
    table = ns.table_of(spec.key)
    if table is None or table.schema != "marts":
        return spec
    freshness = config.checks.freshness
    policy = dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=freshness.fail_after_hours),
        warn_window=timedelta(hours=freshness.warn_after_hours) if freshness.warn_after_hours else None,
    )
    return spec.replace_attributes(freshness_policy=policy)
