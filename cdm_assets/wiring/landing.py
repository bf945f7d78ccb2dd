"""The landing folders as observable source assets: `landing/<source>` upstream of `raw/<source>`.

A landing folder is not built by cdm; it is observed. Its data version is the
folder's fingerprint (names, sizes and modification times of the files that match
the source's `path`), so the UI shows when files landed, which version of the
folder every raw load read, and marks a raw asset stale when its folder has
changed since. The landing sensor (`automation.py`) records an observation on
every tick that sees a folder change; "Observe sources" in the UI does the same
on demand.
"""

import warnings
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.landing_watch import LandingFingerprint, landing_fingerprint
from cdm_assets.domain.plan import Source
from cdm_assets.wiring.keys import LANDING_GROUP, OWNERS, Namespace

# The tag that carries an observation's data version (what `ObserveResult(data_version=...)`
# writes); the sensor's observations set it the same way.
DATA_VERSION_TAG = "dagster/data_version"


def landing_spec(source: Source, ns: Namespace) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=ns.landing_key(source.name),
        group_name=LANDING_GROUP,
        kinds={"folder", source.file_format},
        owners=OWNERS,
        tags={"cdm/entity": source.entity},
        description=(
            f"The {source.file_format} files landed for the {source.entity} source **{source.name}** "
            f"(`{source.path}`). Observed, not built: its data version is the folder's fingerprint "
            "(file names, sizes and modification times), recorded by the landing sensor when it changes."
        ),
        metadata={"cdm/landing_glob": source.path},
    )


def landing_metadata(fingerprint: LandingFingerprint) -> dict:
    newest = datetime.fromtimestamp(fingerprint.newest_change, tz=UTC) if fingerprint.files else None
    return {
        "files": fingerprint.files,
        "bytes": fingerprint.bytes,
        "newest_change": dg.MetadataValue.timestamp(newest) if newest else "no files",
    }


def landing_observation(key: dg.AssetKey, fingerprint: LandingFingerprint) -> dg.AssetObservation:
    """What the landing sensor records of a folder it saw change."""
    return dg.AssetObservation(
        asset_key=key, metadata=landing_metadata(fingerprint), tags={DATA_VERSION_TAG: fingerprint.digest}
    )


def build_landing_assets(config: CdmConfig, ns: Namespace) -> list[dg.AssetsDefinition]:
    plan = resolve_plan(config)
    if not plan.sources:
        return []
    sources_by_key = {ns.landing_key(name): source for name, source in plan.sources.items()}

    def landing_folders(context: dg.AssetExecutionContext):
        for key in sorted(context.selected_asset_keys):
            fingerprint = landing_fingerprint(Path(sources_by_key[key].path))
            yield dg.ObserveResult(
                asset_key=key,
                data_version=dg.DataVersion(fingerprint.digest),
                metadata=landing_metadata(fingerprint),
            )

    with warnings.catch_warnings():  # a beta API of Dagster 1.13, said once in the README
        warnings.simplefilter("ignore", dg.BetaWarning)
        observe = dg.multi_observable_source_asset(
            name=ns.name("landing_folders"),
            specs=[landing_spec(source, ns) for source in plan.sources.values()],
            can_subset=True,
        )
        return [observe(landing_folders)]
