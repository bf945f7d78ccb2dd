"""One sensor watches every landing folder (and the steward's overrides files) and
rebuilds what changed in one run; a daily full refresh is declared, off by default.

On each tick the sensor fingerprints every folder (names, sizes, modification
times). The folders that changed since the last tick get ONE run: their raw
assets, everything downstream of any of them, and the checks of all those, so
the identity layer and the marts are rebuilt once however many sources landed
within the interval, and blocking checks still stop bad data before the marts.
A changed overrides file adds the identity graph of its entity and everything
below it to that run. The run's tags say which sources and files triggered it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.landing_watch import LandingFingerprint, landing_fingerprint
from cdm_assets.wiring.keys import Namespace

SENSOR_INTERVAL_SECONDS = 30
SENSOR_NAME = "landing_files"


@dataclass(frozen=True)
class Watched:
    """A folder glob (or one file) the sensor watches, and the asset a change of it rebuilds."""

    name: str  # a source name, or `overrides:<entity>`
    pattern: Path
    rebuilds: dg.AssetKey


def watched_items(config: CdmConfig, ns: Namespace) -> list[Watched]:
    items = [
        Watched(name, config.resolve(source.path), ns.raw_asset_key(name)) for name, source in config.sources.items()
    ]
    for entity in resolve_plan(config).entities.values():
        if entity.overrides is not None:
            graph = ns.table_key(entity.tables.graph)
            items.append(Watched(f"overrides:{entity.name}", Path(entity.overrides), graph))
    return items


def build_landing_sensor(config: CdmConfig, ns: Namespace) -> dg.SensorDefinition:
    items = watched_items(config, ns)
    sensor_name = ns.name(SENSOR_NAME)

    @dg.sensor(
        name=sensor_name,
        description="Rebuilds, in one run, the raw assets of every source whose landed files were added, "
        "changed or removed since the last tick, the identity graph of a changed overrides file, and "
        "everything downstream of them, with their checks.",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=dg.AssetSelection.assets(*(item.rebuilds for item in items)).downstream(),
    )
    def landing_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous = json.loads(context.cursor) if context.cursor else {}
        current = {item.name: landing_fingerprint(item.pattern) for item in items}
        changed = [item for item in items if _changed(context, item, current[item.name], previous.get(item.name))]
        cursor = json.dumps({name: fingerprint.as_cursor() for name, fingerprint in current.items()}, sort_keys=True)
        if not changed:
            return dg.SensorResult(skip_reason=f"no change in {len(items)} landing folder(s)", cursor=cursor)
        names = sorted(item.name for item in changed)
        run_key = "|".join(f"{name}:{current[name].digest}" for name in names)
        request = dg.RunRequest(
            run_key=run_key,
            asset_selection=sorted(
                dg.AssetSelection.assets(*(item.rebuilds for item in changed))
                .downstream()
                .resolve(context.repository_def.asset_graph)
            ),
            tags={"cdm/trigger": sensor_name, "cdm/changed": ",".join(names)},
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return landing_files


def _changed(
    context: dg.SensorEvaluationContext, item: Watched, current: LandingFingerprint, previous: str | None
) -> bool:
    """Whether a folder changed since the last tick. On the first look at it (a new
    deployment, a reset cursor) it counts as changed only when it holds files newer than
    the latest materialisation of what it rebuilds."""
    if previous is not None:
        return LandingFingerprint.from_cursor(previous).digest != current.digest
    if current.files == 0:
        return False
    latest = context.instance.get_latest_materialization_event(item.rebuilds)
    return latest is None or latest.timestamp < current.newest_change


def build_sensors(config: CdmConfig, ns: Namespace) -> list[dg.SensorDefinition]:
    return [build_landing_sensor(config, ns)]


def daily_full_refresh(asset_keys: list[dg.AssetKey], ns: Namespace) -> dg.ScheduleDefinition:
    """A daily rebuild of this instance's assets (not of the other assets of a project it sits in)."""
    return dg.ScheduleDefinition(
        name=ns.name("daily_full_refresh"),
        cron_schedule="0 3 * * *",
        target=dg.AssetSelection.assets(*asset_keys),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Rebuilds every asset once a day; off by default (the landing sensor keeps things fresh).",
    )
