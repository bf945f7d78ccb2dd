"""Sensors that rebuild a source and everything downstream when its files change,
and a daily full refresh (declared, off by default).

A sensor's run selects the raw asset, everything downstream of it and their
checks, so blocking checks run inside the same run and stop the assets below
them when they fail; one run per detected change, no daemon-side automation
conditions to reason about.
"""

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.domain.landing_watch import LandingFingerprint, landing_fingerprint
from cdm_assets.wiring.raw import raw_asset_key

SENSOR_INTERVAL_SECONDS = 30


def build_landing_sensor(config: CdmConfig, name: str) -> dg.SensorDefinition:
    pattern = config.resolve(config.sources[name].path)
    selection = dg.AssetSelection.assets(raw_asset_key(name)).downstream()

    @dg.sensor(
        name=f"{name}_landing_files",
        description=f"Rebuilds raw/{name} and everything downstream when files under {config.sources[name].path} "
        "are added, changed or removed.",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=selection,
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        current = landing_fingerprint(pattern)
        previous = LandingFingerprint.from_cursor(context.cursor)
        if previous is not None and previous.digest == current.digest:
            yield dg.SkipReason(f"no change in {current.files} file(s) at {pattern}")
            return
        context.update_cursor(current.as_cursor())
        if previous is None and current.files == 0:
            yield dg.SkipReason(f"no files at {pattern} yet")
            return
        if previous is None and _loaded_since(context, name, current.newest_change):
            # First tick after a restart or a new deployment: what is there was
            # already loaded, so only later changes need a run.
            yield dg.SkipReason(f"the {current.files} file(s) at {pattern} were loaded by the latest materialisation")
            return
        # The run targets the sensor's selection: this source and everything downstream.
        yield dg.RunRequest(
            run_key=f"{name}:{current.digest}",
            tags={"cdm/trigger": "landing_files", "cdm/source": name},
        )

    return landing_sensor


def _loaded_since(context: dg.SensorEvaluationContext, name: str, newest_change: float) -> bool:
    latest = context.instance.get_latest_materialization_event(raw_asset_key(name))
    return latest is not None and latest.timestamp >= newest_change


def build_sensors(config: CdmConfig) -> list[dg.SensorDefinition]:
    return [build_landing_sensor(config, name) for name in config.sources]


daily_full_refresh = dg.ScheduleDefinition(
    name="daily_full_refresh",
    cron_schedule="0 3 * * *",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuilds every asset once a day; off by default (the landing sensors keep things fresh).",
)
