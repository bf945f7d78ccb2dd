"""Sensors that rebuild a source and everything downstream when its files change (and
an entity's identity graph when the steward's overrides file changes), and a daily
full refresh (declared, off by default).

A sensor's run selects the raw asset, everything downstream of it and their
checks, so blocking checks run inside the same run and stop the assets below
them when they fail; one run per detected change, no daemon-side automation
conditions to reason about.
"""

from pathlib import Path

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.landing_watch import LandingFingerprint, landing_fingerprint
from cdm_assets.domain.plan import EntityPlan
from cdm_assets.wiring.keys import raw_asset_key, table_key

SENSOR_INTERVAL_SECONDS = 30


def build_landing_sensor(config: CdmConfig, name: str) -> dg.SensorDefinition:
    """Rebuilds `raw/<name>` and everything downstream when the source's files change."""
    return _file_sensor(
        name=f"{name}_landing_files",
        pattern=config.resolve(config.sources[name].path),
        watched_asset=raw_asset_key(name),
        description=f"Rebuilds raw/{name} and everything downstream when files under {config.sources[name].path} "
        "are added, changed or removed.",
        tags={"cdm/trigger": "landing_files", "cdm/source": name},
    )


def build_overrides_sensor(entity: EntityPlan) -> dg.SensorDefinition:
    """Rebuilds the entity's identity graph and everything downstream when its overrides file changes."""
    graph = table_key(entity.tables.graph)
    return _file_sensor(
        name=f"{entity.name}_overrides_file",
        pattern=Path(entity.overrides),
        watched_asset=graph,
        description=f"Rebuilds {graph.to_user_string()} and everything downstream when the steward's "
        f"overrides file {entity.overrides} is added, changed or removed.",
        tags={"cdm/trigger": "overrides_file", "cdm/entity": entity.name},
    )


def _file_sensor(
    name: str, pattern: Path, watched_asset: dg.AssetKey, description: str, tags: dict[str, str]
) -> dg.SensorDefinition:
    """A sensor requesting one run of `watched_asset` and everything downstream, with their
    checks, when the files matching `pattern` are added, changed or removed."""

    @dg.sensor(
        name=name,
        description=description,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=dg.AssetSelection.assets(watched_asset).downstream(),
    )
    def file_sensor(context: dg.SensorEvaluationContext):
        current = landing_fingerprint(pattern)
        previous = LandingFingerprint.from_cursor(context.cursor)
        if previous is not None and previous.digest == current.digest:
            yield dg.SkipReason(f"no change in {current.files} file(s) at {pattern}")
            return
        context.update_cursor(current.as_cursor())
        if previous is None and current.files == 0:
            yield dg.SkipReason(f"no files at {pattern} yet")
            return
        if previous is None and _built_since(context, watched_asset, current.newest_change):
            # First tick after a restart or a new deployment: what is there was
            # already read, so only later changes need a run.
            yield dg.SkipReason(f"the {current.files} file(s) at {pattern} were loaded by the latest materialisation")
            return
        # The run targets the sensor's selection: the watched asset and everything downstream.
        yield dg.RunRequest(run_key=f"{name}:{current.digest}", tags=tags)

    return file_sensor


def _built_since(context: dg.SensorEvaluationContext, key: dg.AssetKey, newest_change: float) -> bool:
    latest = context.instance.get_latest_materialization_event(key)
    return latest is not None and latest.timestamp >= newest_change


def build_sensors(config: CdmConfig) -> list[dg.SensorDefinition]:
    """A landing sensor per source, and an overrides sensor per entity with an overrides file."""
    landing = [build_landing_sensor(config, name) for name in config.sources]
    entities = resolve_plan(config).entities.values()
    return landing + [build_overrides_sensor(entity) for entity in entities if entity.overrides is not None]


daily_full_refresh = dg.ScheduleDefinition(
    name="daily_full_refresh",
    cron_schedule="0 3 * * *",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuilds every asset once a day; off by default (the landing sensors keep things fresh).",
)
