"""One `raw/<source>` asset per configured source, built from the config.

The sources are loaded by one subsettable step: a run that selects several
raw assets loads them side by side (`load_raw_sources`), which keeps both
cores busy while a file is parsed; a run that selects one (a landing sensor's
run) loads just that one. Each asset still gets its own materialisation,
metadata, checks and lineage.
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.masking import PreviewPolicy
from cdm_assets.domain.plan import Source
from cdm_assets.domain.raw.load import RawLoadReport, landed_files, load_raw_sources
from cdm_assets.wiring.keys import OWNERS, RAW_GROUP, raw_asset_key
from cdm_assets.wiring.metadata import preview_policy, table_metadata


def raw_asset_spec(config: CdmConfig, source: Source) -> dg.AssetSpec:
    """The asset of one source: every landed file of it, loaded into `raw.<source>`."""
    name, file_format = source.name, source.file_format
    return dg.AssetSpec(
        key=raw_asset_key(name),
        group_name=RAW_GROUP,
        kinds={"duckdb", file_format},
        owners=OWNERS,
        tags={"cdm/entity": source.entity},
        description=(
            f"Every {file_format} file landed at `{config.sources[name].path}` for the {source.entity} source "
            f"**{name}**, one row per accepted input row with `_file` and `_row_number`. "
            "Rows that cannot be accepted go to `raw.quarantine` with the reason; rows of people erased "
            "with `cdm forget` are left out and counted (`suppressed`)."
        ),
        metadata={"cdm/landing_glob": source.path, "cdm/record_id": source.record_id},
    )


def build_raw_assets(config: CdmConfig) -> list[dg.AssetsDefinition]:
    plan = resolve_plan(config)
    if not plan.sources:
        return []
    names_by_key = {raw_asset_key(name): name for name in plan.sources}

    @dg.multi_asset(
        name="raw_sources",
        specs=[raw_asset_spec(config, source) for source in plan.sources.values()],
        can_subset=True,
        pool="duckdb",
    )
    def raw_sources(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        selected = [names_by_key[key] for key in context.selected_asset_keys]
        landings = {}
        for name in selected:
            source = plan.sources[name]
            files = landed_files(Path(source.path))
            if not files:
                context.log.warning(f"sources.{name}.path: no file matches {source.path}; loading an empty table")
            landings[name] = (source, files)
        failed = []
        with duckdb.get_connection() as con:
            for name, outcome in load_raw_sources(con, landings):
                if isinstance(outcome, Exception):
                    context.log.error(f"raw/{name}: {outcome}")
                    failed.append(f"raw/{name}: {outcome}")
                    continue
                yield _materialization(context, con, outcome, preview_policy(config, outcome.table))
        if failed:
            raise dg.Failure(
                description=f"{len(failed)} of {len(selected)} sources could not be loaded; the others were",
                metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in failed))},
            )

    return [raw_sources]


def _materialization(
    context: dg.AssetExecutionContext, con, report: RawLoadReport, previews: PreviewPolicy
) -> dg.MaterializeResult:
    context.log.info(
        f"{report.source}: {report.rows_in} rows in, {report.rows_accepted} accepted, "
        f"{report.rows_quarantined} quarantined, {report.suppressed} suppressed from {len(report.files)} file(s)"
    )
    return dg.MaterializeResult(
        asset_key=raw_asset_key(report.source),
        metadata={
            **table_metadata(con, report.table, previews),
            "files": len(report.files),
            "rows_in": report.rows_in,
            "quarantined": report.rows_quarantined,
            "quarantined_by_reason": dg.MetadataValue.json(dict(report.quarantined_by_reason)),
            # rows of erased people left out (privacy.suppressions): a count, never who
            "suppressed": report.suppressed,
            "load_seconds": round(report.seconds, 2),
        },
    )
