"""One sensor watches every landing folder (and the steward's overrides files) and
rebuilds what changed in one run; the identity layer and the marts follow any other
update of what they read by declarative automation; a daily full refresh is declared,
off by default.

On each tick the sensor fingerprints every folder (names, sizes, modification
times). The folders that changed since the last tick get ONE run: their raw
assets, everything downstream of any of them, and the checks of all those, so
the identity layer and the marts are rebuilt once however many sources landed
within the interval, and blocking checks still stop bad data before the marts.
A changed overrides file adds the identity graph of its entity and everything
below it to that run. The run's tags say which sources and files triggered it,
and each changed folder gets an observation of `landing/<source>` with its new
data version.

Everything below the raw assets also carries an automation condition
(`after_upstream_update`): when a raw asset or the identity graph is materialised
by anything else (a backfill, "Materialize" in the UI, `dagster asset materialize
--select raw/crm`), the automation sensor brings what depends on it up to date in
one run, once the blocking checks of its parents passed. After the landing
sensor's own run nothing is left to do, since that run already rebuilt it all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.landing_watch import LandingFingerprint, landing_fingerprint
from cdm_assets.domain.warehouse import QUARANTINE
from cdm_assets.wiring.keys import Namespace
from cdm_assets.wiring.landing import landing_observation

SENSOR_INTERVAL_SECONDS = 30
SENSOR_NAME = "landing_files"


@dataclass(frozen=True)
class Watched:
    """A folder glob (or one file) the sensor watches, and the asset a change of it rebuilds."""

    name: str  # a source name, or `overrides:<entity>`
    pattern: Path
    rebuilds: dg.AssetKey
    landing: dg.AssetKey | None = None  # the observable asset of a source's folder


def watched_items(config: CdmConfig, ns: Namespace) -> list[Watched]:
    items = [
        Watched(name, config.resolve(source.path), ns.raw_asset_key(name), ns.landing_key(name))
        for name, source in config.sources.items()
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
        # every folder whose fingerprint moved gets an observation: its new data version in the UI
        observations = [
            landing_observation(item.landing, current[item.name])
            for item in items
            if item.landing is not None and _moved(current[item.name], previous.get(item.name))
        ]
        if not changed:
            return dg.SensorResult(
                skip_reason=f"no change in {len(items)} landing folder(s)", cursor=cursor, asset_events=observations
            )
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
        return dg.SensorResult(run_requests=[request], cursor=cursor, asset_events=observations)

    return landing_files


def _moved(current: LandingFingerprint, previous: str | None) -> bool:
    before = LandingFingerprint.from_cursor(previous)
    return before is None or before.digest != current.digest


def _changed(
    context: dg.SensorEvaluationContext, item: Watched, current: LandingFingerprint, previous: str | None
) -> bool:
    """Whether a folder changed since the last tick. On the first look at it (a new
    deployment, a reset cursor) it counts as changed only when it holds files newer than
    the latest materialisation of what it rebuilds."""
    if previous is not None:
        return _moved(current, previous)
    if current.files == 0:
        return False
    latest = context.instance.get_latest_materialization_event(item.rebuilds)
    return latest is None or latest.timestamp < current.newest_change


AUTOMATION_SENSOR_NAME = "upstream_updates"


def after_upstream_update() -> dg.AutomationCondition:
    """Dagster's `eager` without building what was never built, and only on parents whose
    blocking checks passed: rebuild once a parent was updated since this asset was last
    handled, when no parent is missing or in progress and the asset is not in a run."""
    condition = (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    )
    return condition.with_label("after an upstream update")


def with_automation(spec: dg.AssetSpec, ns: Namespace) -> dg.AssetSpec:
    """The identity layer, the marts and the quarantine report follow their parents (see
    `after_upstream_update`); the landing folders are observed and the raw assets are the
    landing sensor's."""
    table = ns.table_of(spec.key)
    if table is None or (table.schema not in ("identity", "marts") and table != QUARANTINE):
        return spec
    return spec.replace_attributes(automation_condition=after_upstream_update())


def build_sensors(config: CdmConfig, ns: Namespace, automated: list[dg.AssetKey]) -> list[dg.SensorDefinition]:
    sensors: list[dg.SensorDefinition] = [build_landing_sensor(config, ns)]
    if automated:
        sensors.append(
            dg.AutomationConditionSensorDefinition(
                ns.name(AUTOMATION_SENSOR_NAME),
                target=dg.AssetSelection.assets(*automated),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
                description="Rebuilds the identity layer and the marts below an asset that was updated outside "
                "the landing sensor's runs (a backfill, a materialisation from the UI), in one run.",
            )
        )
    return sensors


# A run with this tag ("true") rebuilds the lookup and the identity graph in full instead of following changes.
FULL_REBUILD_TAG = "cdm/full_rebuild"


def full_rebuild_asked(context: dg.AssetExecutionContext) -> bool:
    """Whether the run is tagged to rebuild in full (`cdm/full_rebuild: true`)."""
    return context.run.tags.get(FULL_REBUILD_TAG, "").lower() == "true"


def daily_full_refresh(asset_keys: list[dg.AssetKey], ns: Namespace) -> dg.ScheduleDefinition:
    """A daily rebuild of this instance's assets (not of the other assets of a project it sits in)."""
    return dg.ScheduleDefinition(
        name=ns.name("daily_full_refresh"),
        cron_schedule="0 3 * * *",
        target=dg.AssetSelection.assets(*asset_keys),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={FULL_REBUILD_TAG: "true"},
        description="Rebuilds every asset once a day, the lookup and the identity graph in full rather than by the "
        "day's changes; off by default (the landing sensor keeps things fresh).",
    )
