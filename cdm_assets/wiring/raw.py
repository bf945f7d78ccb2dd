"""One `raw/<source>` asset per configured source, built from the config.

The sources are loaded by one subsettable step: a run that selects several
raw assets loads them side by side (`load_raw_sources`), which keeps both
cores busy while a file is parsed; a run that selects one (a landing sensor's
run) loads just that one. Each asset still gets its own materialisation,
metadata, checks and lineage.
"""

from pathlib import Path

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.masking import HIDDEN, PreviewPolicy
from cdm_assets.domain.plan import Source
from cdm_assets.domain.raw.load import RawLoadReport, landed_files, load_raw_sources
from cdm_assets.domain.vocabulary import TRANSACTION
from cdm_assets.domain.warehouse import QUARANTINE, ensure_quarantine, quarantine_summary
from cdm_assets.wiring.automation import full_rebuild_asked
from cdm_assets.wiring.keys import OWNERS, QUALITY_GROUP, RAW_GROUP, Namespace
from cdm_assets.wiring.metadata import preview_policy, table_metadata


def raw_asset_spec(config: CdmConfig, source: Source, ns: Namespace) -> dg.AssetSpec:
    """The asset of one source: every landed file of it, loaded into `raw.<source>`."""
    name, file_format = source.name, source.file_format
    return dg.AssetSpec(
        key=ns.raw_asset_key(name),
        deps=[ns.landing_key(name)],
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


def build_raw_assets(config: CdmConfig, ns: Namespace) -> list[dg.AssetsDefinition]:
    plan = resolve_plan(config)
    if not plan.sources:
        return []
    names_by_key = {ns.raw_asset_key(name): name for name in plan.sources}

    @dg.multi_asset(
        name=ns.name("raw_sources"),
        specs=[raw_asset_spec(config, source, ns) for source in plan.sources.values()],
        can_subset=True,
        **ns.on_warehouse,
    )
    def raw_sources(context: dg.AssetExecutionContext):
        selected = [names_by_key[key] for key in context.selected_asset_keys]
        landings = {}
        for name in selected:
            source = plan.sources[name]
            files = landed_files(Path(source.path))
            if not files:
                context.log.warning(f"sources.{name}.path: no file matches {source.path}; loading an empty table")
            landings[name] = (source, files)
        failed = []
        with ns.warehouse_of(context).get_connection() as con:
            for name, outcome in load_raw_sources(con, landings, full=full_rebuild_asked(context)):
                if isinstance(outcome, Exception):
                    context.log.error(f"raw/{name}: {outcome}")
                    failed.append(f"raw/{name}: {outcome}")
                    continue
                yield _materialization(context, con, outcome, preview_policy(config, outcome.table), ns)
        if failed:
            raise dg.Failure(
                description=f"{len(failed)} of {len(selected)} sources could not be loaded; the others were",
                metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in failed))},
            )

    return [raw_sources]


def _materialization(
    context: dg.AssetExecutionContext, con, report: RawLoadReport, previews: PreviewPolicy, ns: Namespace
) -> dg.MaterializeResult:
    context.log.info(
        f"{report.source}: {report.rows_in} rows in, {report.rows_accepted} accepted, "
        f"{report.rows_quarantined} quarantined, {report.suppressed} suppressed from {len(report.files)} file(s)"
    )
    return dg.MaterializeResult(
        asset_key=ns.raw_asset_key(report.source),
        metadata={
            **table_metadata(con, report.table, previews),
            "files": len(report.files),
            "rows_in": report.rows_in,
            "quarantined": report.rows_quarantined,
            "quarantined_by_reason": dg.MetadataValue.json(dict(report.quarantined_by_reason)),
            # rows of erased people left out (privacy.suppressions): a count, never who
            "suppressed": report.suppressed,
            "load_seconds": round(report.seconds, 2),
            # all files are read unless only new or changed ones were
            "files_read": report.files_read if report.files_read is not None else len(report.files),
        },
    )


_SUMMARY_SCHEMA = dg.TableSchema(
    columns=[dg.TableColumn(name, "string") for name in ("source", "stage", "category")]
    + [dg.TableColumn("rows", "int")]
)


def quarantine_asset(config: CdmConfig, ns: Namespace) -> dg.AssetsDefinition:
    """`raw/quarantine`: every row a load or the transactions mart kept out, by source and category."""
    plan = resolve_plan(config)
    deps = [ns.raw_asset_key(name) for name in plan.sources]
    if plan.sources_of(TRANSACTION):
        deps.append(ns.table_key(TRANSACTIONS))
    # golden records quarantine the attribute values that do not read as their type
    deps += [ns.table_key(entity.tables.golden) for entity in plan.entities.values()]

    @dg.asset(
        key=ns.table_key(QUARANTINE),
        deps=deps,
        group_name=QUALITY_GROUP,
        kinds={"duckdb"},
        owners=OWNERS,
        **ns.on_warehouse,
        description=(
            "Every input row that was kept out, one row each: the source, the stage that rejected it "
            "(`raw` for the loads, `transactions` for the mart's checks, `attributes` for typed attribute "
            "values of the golden records), the file and row, the column to "
            "blame, the `category` of the problem (duplicate record id, malformed row, unknown currency, "
            "...), the offending `value` and the raw row as it arrived. Written by the loads and the "
            "transactions mart; this asset reports it after them: rows per source and category, plotted "
            "across runs."
        ),
    )
    def quarantine(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with ns.warehouse_of(context).get_connection() as con:
            ensure_quarantine(con)
            summary = quarantine_summary(con)
            # the reason and value quote the offending input, which may be personal: masked like the raw row
            previews = PreviewPolicy(preview_policy(config).mode, {"reason": HIDDEN, "value": HIDDEN})
            metadata = table_metadata(con, QUARANTINE, previews)
        per_source: dict[str, int] = {}
        for source, _stage, _category, rows in summary:
            per_source[source] = per_source.get(source, 0) + rows
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "rows_by_source_and_category": dg.MetadataValue.table(
                    records=[
                        dg.TableRecord({"source": s, "stage": st, "category": c, "rows": n}) for s, st, c, n in summary
                    ],
                    schema=_SUMMARY_SCHEMA,
                ),
                # one number per source, so the UI plots each source's quarantine across runs
                **{f"rows/{source}": per_source.get(source, 0) for source in plan.sources},
            }
        )

    return quarantine
