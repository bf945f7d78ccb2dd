"""Data tests as asset checks. Blocking ones (ERROR) stop downstream assets in the run."""

import warnings
from collections.abc import Callable

import dagster as dg
import duckdb

from cdm_assets.config import CdmConfig, ConfigError
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.marts import data_tests
from cdm_assets.domain.marts.events import EVENTS
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.masking import PreviewPolicy
from cdm_assets.domain.plan import EntityPlan, EntityTables
from cdm_assets.domain.sql import StatementError, TableName
from cdm_assets.domain.vocabulary import CUSTOMER
from cdm_assets.wiring.keys import Namespace
from cdm_assets.wiring.metadata import preview_policy


def check_result(
    outcome: data_tests.Outcome, passed: bool, severity: dg.AssetCheckSeverity, previews: PreviewPolicy, **extra
) -> dg.AssetCheckResult:
    """The check's counts, and a sample of failing rows as `privacy.previews` allows."""
    sample = {"failing_sample": dg.MetadataValue.json([previews.row(row) for row in outcome.sample])}
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata={
            "failing_rows": outcome.failing,
            "total_rows": outcome.total,
            "failing_share": round(outcome.share, 6),
            # only the rows changed since the check last passed were tested
            "followed_changes": outcome.followed,
            **(sample if previews.shows_rows else {}),
            **extra,
        },
    )


def built_in_this_run(context: dg.AssetCheckExecutionContext, asset: dg.AssetKey) -> bool:
    """Whether this run materialised `asset`: a check that follows the changes follows them only
    then; run on its own (from the UI, or after a table was touched by hand), it reads whole tables."""
    latest = context.instance.get_latest_materialization_event(asset)
    return latest is not None and latest.run_id == context.run.run_id


def _outcome(
    context: dg.AssetCheckExecutionContext, ns: Namespace, asset: dg.AssetKey, test: Callable, follows: bool
) -> data_tests.Outcome:
    with ns.warehouse_of(context).get_connection() as con:
        return test(con, built_in_this_run(context, asset)) if follows else test(con)


def blocking_check(
    ns: Namespace,
    previews: PreviewPolicy,
    asset: dg.AssetKey,
    name: str,
    description: str,
    test: Callable,
    follows: bool = False,
) -> dg.AssetChecksDefinition:
    """A check that must find no failing row; downstream assets wait for it. A check that
    `follows` the changes gets, beside the connection, whether the run built its asset."""

    @dg.asset_check(
        asset=asset,
        name=name,
        description=description,
        blocking=True,
        **ns.on_warehouse,
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        outcome = _outcome(context, ns, asset, test, follows)
        return check_result(outcome, outcome.failing == 0, dg.AssetCheckSeverity.ERROR, previews)

    return _check


def share_check(
    ns: Namespace,
    previews: PreviewPolicy,
    asset: dg.AssetKey,
    name: str,
    description: str,
    test: Callable,
    max_share: float,
    follows: bool = False,
) -> dg.AssetChecksDefinition:
    """An advisory check: warns when the failing share passes its threshold."""

    @dg.asset_check(asset=asset, name=name, description=description, **ns.on_warehouse)
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        outcome = _outcome(context, ns, asset, test, follows)
        return check_result(
            outcome, outcome.share <= max_share, dg.AssetCheckSeverity.WARN, previews, max_share=max_share
        )

    return _check


def row_count_drop_check(asset: dg.AssetKey, max_drop: float) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="row_count_did_not_drop",
        description=f"Warns when the row count falls by more than {max_drop:.0%} since the previous materialisation.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        records = context.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset), limit=2).records
        counts = [
            r.asset_materialization.metadata.get("dagster/row_count")
            for r in records
            if r.asset_materialization is not None
        ]
        counts = [c.value for c in counts if c is not None]
        current = counts[0] if counts else 0
        previous = counts[1] if len(counts) > 1 else None
        drop = data_tests.row_count_drop(previous, current)
        return dg.AssetCheckResult(
            passed=drop <= max_drop,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "previous_rows": previous if previous is not None else -1,
                "rows": current,
                "drop": round(drop, 4),
            },
        )

    return _check


def build_checks(config: CdmConfig, ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """Every built-in check: the marts', each customer-like entity's and each raw source's."""
    plan = resolve_plan(config)
    checks = mart_checks(config, plan.entities[CUSTOMER].tables, ns)
    for entity in plan.entities.values():
        checks += entity_checks(config, entity, ns)
        checks += link_checks(config, entity, ns)
    return checks + quarantine_checks(config, ns)


def mart_checks(config: CdmConfig, customers: EntityTables, ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """Transactions and events: no negative amounts, known customers, and few unattributed rows."""
    previews, limits = preview_policy(config), config.checks
    golden = customers.golden
    transactions_key, events_key = ns.table_key(TRANSACTIONS), ns.table_key(EVENTS)
    return [
        blocking_check(
            ns,
            previews,
            transactions_key,
            "no_negative_amounts",
            "Transaction amounts are never negative.",
            data_tests.negative_amounts,
        ),
        blocking_check(
            ns,
            previews,
            transactions_key,
            "customers_exist",
            "Every customer_id in marts.transactions exists in marts.customers.",
            lambda con, follow: data_tests.orphan_customer_ids_following(
                con,
                f"{transactions_key.to_user_string()}:customers_exist",
                TRANSACTIONS,
                "transaction_id",
                golden,
                follow,
            ),
            follows=True,
        ),
        blocking_check(
            ns,
            previews,
            events_key,
            "customers_exist",
            "Every customer_id in marts.events exists in marts.customers.",
            lambda con, follow: data_tests.orphan_customer_ids_following(
                con, f"{events_key.to_user_string()}:customers_exist", EVENTS, "event_id", golden, follow
            ),
            follows=True,
        ),
        share_check(
            ns,
            previews,
            transactions_key,
            "attributed_share",
            "Warns when too many transactions match no customer.",
            lambda con: data_tests.unattributed_rows(con, TRANSACTIONS, "transaction_id"),
            limits.max_unattributed_share,
        ),
        share_check(
            ns,
            previews,
            events_key,
            "attributed_share",
            "Warns when too many events stay anonymous.",
            lambda con: data_tests.unattributed_rows(con, EVENTS, "event_id"),
            # Anonymous browsing is normal: only warn when most events stay anonymous.
            max(limits.max_unattributed_share, 0.5),
        ),
    ]


def quarantine_checks(config: CdmConfig, ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """Per raw source: warn when more than `checks.max_quarantine_share` of its rows are quarantined."""
    share = config.checks.max_quarantine_share
    checks = []
    for name in config.sources:
        table = TableName("raw", name)
        checks.append(
            share_check(
                ns,
                preview_policy(config, table),
                ns.raw_asset_key(name),
                "quarantine_share",
                f"Warns when more than {share:.1%} of the rows of {name} are quarantined.",
                lambda con, name=name, table=table: data_tests.quarantined_rows(con, name, table),
                share,
            )
        )
    return checks


def custom_checks(config: CdmConfig, asset_keys: set[dg.AssetKey], ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """The checks written in cdm.yaml (`checks.custom`): SQL returning the failing rows of an
    asset's table; blocking ones stop what is downstream, the others warn. A check on an asset
    the config does not build is a config error naming its key."""
    checks = []
    for index, custom in enumerate(config.checks.custom):
        table = TableName(*custom.asset.split("/"))
        key = ns.table_key(table)
        if key not in asset_keys:
            raise ConfigError(
                f"{config.config_path}: checks.custom.{index}.asset: no asset {custom.asset} in this config; "
                "expected the key of a table it builds, e.g. marts/customers"
            )
        description = custom.description or f"Your check: no row of {custom.asset} is returned by its SQL."

        def test(con, custom=custom, table=table, index=index) -> data_tests.Outcome:
            try:
                return data_tests.custom_rows(con, custom.sql, table)
            except (duckdb.Error, StatementError) as error:
                raise dg.Failure(description=f"checks.custom.{index}.sql ({custom.name}): {error}") from None

        factory = blocking_check if custom.blocking else _warning_check
        checks.append(factory(ns, preview_policy(config, table), key, custom.name, description, test))
    return checks


def _warning_check(
    ns: Namespace, previews: PreviewPolicy, asset: dg.AssetKey, name: str, description: str, test: Callable
) -> dg.AssetChecksDefinition:
    """An advisory check that warns on any failing row."""
    return share_check(ns, previews, asset, name, description, test, 0.0)


def schema_change_checks(config: CdmConfig, ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """Warn when a raw source's columns change between two loads (added, removed, retyped)."""
    with warnings.catch_warnings():  # the builder is marked beta in Dagster 1.13; say so once, in the README
        warnings.simplefilter("ignore", dg.BetaWarning)
        return list(dg.build_column_schema_change_checks(assets=[ns.raw_asset_key(name) for name in config.sources]))


def entity_checks(config: CdmConfig, entity: EntityPlan, ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """The identity and golden-record checks of a customer-like entity (customers, accounts, ...)."""
    tables = entity.tables
    previews = preview_policy(config)
    golden, id_map = ns.table_key(tables.golden), ns.table_key(tables.id_map)
    max_size = entity.max_cluster_size
    return [
        blocking_check(
            ns,
            previews,
            golden,
            f"{tables.id_column}_is_unique",
            f"One golden record per {tables.label}.",
            lambda con, follow: data_tests.duplicate_customer_ids_following(
                con, f"{golden.to_user_string()}:{tables.id_column}_is_unique", tables, follow
            ),
            follows=True,
        ),
        blocking_check(
            ns,
            previews,
            id_map,
            f"one_{tables.id_column}_per_record",
            f"Every {entity.name} record of the source lookup has exactly one {tables.label}.",
            lambda con, follow: data_tests.records_without_exactly_one_customer_id_following(
                con, f"{id_map.to_user_string()}:one_{tables.id_column}_per_record", tables, follow
            ),
            follows=True,
        ),
        share_check(
            ns,
            previews,
            id_map,
            "no_giant_clusters",
            f"Warns when a {tables.label} holds more than {max_size} records (over-merging).",
            lambda con, follow: data_tests.oversized_clusters_following(
                con, f"{id_map.to_user_string()}:no_giant_clusters", max_size, tables, follow
            ),
            0.0,
            follows=True,
        ),
        row_count_drop_check(golden, config.checks.max_row_count_drop),
    ]


def link_checks(config: CdmConfig, entity: EntityPlan, ns: Namespace) -> list[dg.AssetChecksDefinition]:
    """Per linked entity: warn when records name linked records that do not exist (a contact's
    account id matching no account)."""
    checks = []
    previews = preview_policy(config)
    golden = ns.table_key(entity.tables.golden)
    for target in entity.linked:
        linked = target.entity
        links = [
            data_tests.Link(name, source.record_id, source.links[linked].column, source.links[linked].source)
            for name, source in sorted(entity.sources.items())
            if linked in source.links
        ]
        checks.append(
            share_check(
                ns,
                previews,
                golden,
                f"{linked}_links_resolve",
                f"Warns when more than {config.checks.max_unattributed_share:.0%} of the {linked} references "
                f"of {entity.name} records name no {linked} record.",
                lambda con, links=links, target=target: data_tests.dangling_links(con, links, target),
                config.checks.max_unattributed_share,
            )
        )
    return checks
