"""One cdm instance's Dagster definitions, assembled from its config in one place."""

from __future__ import annotations

import warnings

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.wiring.automation import build_sensors, daily_full_refresh, with_automation
from cdm_assets.wiring.checks import build_checks, custom_checks, schema_change_checks
from cdm_assets.wiring.columns import with_column_schema
from cdm_assets.wiring.identity import build_identity_assets
from cdm_assets.wiring.keys import DEFAULT, Namespace
from cdm_assets.wiring.landing import build_landing_assets
from cdm_assets.wiring.marts import build_mart_assets, with_freshness
from cdm_assets.wiring.metadata import ENVIRONMENT_METADATA
from cdm_assets.wiring.privacy import build_forget_job
from cdm_assets.wiring.raw import build_raw_assets, quarantine_asset
from cdm_assets.wiring.recovery import build_dead_run_reaper, recovering_in_process_executor
from cdm_assets.wiring.resources import warehouse_resource


def build_definitions(
    config: CdmConfig, ns: Namespace = DEFAULT, executor: bool = True, honour_duckdb_path_env: bool = True
) -> dg.Definitions:
    """All assets, checks and resources for one configuration.

    Runs use the in-process executor: every step talks to one DuckDB file
    that allows a single writer, so parallel step processes would only queue
    on the `duckdb` pool while each paid ~2 s of process start-up. Before its
    first step, a run frees the pool slots of runs whose process was killed.

    `ns` places the instance in a larger project (`CdmComponent`): its key prefix, names
    and warehouse resource key. `executor=False` leaves the executor to that project;
    `honour_duckdb_path_env=False` keeps `CDM_DUCKDB_PATH` from moving its warehouse.
    """
    assets = [
        *build_landing_assets(config, ns),
        *build_raw_assets(config, ns),
        quarantine_asset(config, ns),
        *build_identity_assets(config, ns),
        *build_mart_assets(config, ns),
    ]
    # every asset shows the stage it belongs to (`CDM_ENV`), and so does the code location;
    # the marts carry the freshness the config expects of them
    stage = {ENVIRONMENT_METADATA: config.environment}
    schemas = with_column_schema(config, ns.table_key)
    assets = dg.map_asset_specs(
        lambda spec: with_automation(schemas(with_freshness(config, spec.merge_attributes(metadata=stage), ns)), ns),
        assets,
    )
    # each asset links to the code that builds it (the UI's "Code references"; a beta API
    # of Dagster 1.13, whose warnings would otherwise print at every load)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = list(dg.with_source_code_references(assets))
    asset_keys = {spec.key for definition in assets if definition.is_materializable for spec in definition.specs}
    automated = sorted(spec.key for definition in assets for spec in definition.specs if spec.automation_condition)
    checks = [*build_checks(config, ns), *schema_change_checks(config, ns), *custom_checks(config, asset_keys, ns)]
    location = {**stage, "cdm/config": str(config.config_path) if config.config_path else "(none)"}
    return dg.Definitions(
        assets=assets,
        metadata={ns.name(name): value for name, value in location.items()},
        asset_checks=checks,
        sensors=[*build_sensors(config, ns, automated), build_dead_run_reaper(ns.name("dead_run_reaper"))],
        schedules=[daily_full_refresh(sorted(asset_keys), ns)],
        jobs=[build_forget_job(config, ns)],
        resources={ns.warehouse: warehouse_resource(config, honour_duckdb_path_env)},
        executor=recovering_in_process_executor if executor else None,
    )
