"""One `raw/<source>` asset per configured source, built from the config."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from cdm_assets.config import CdmConfig, SourceConfig
from cdm_assets.wiring.metadata import table_metadata
from cdm_assets.domain.raw_tables import landed_files, load_raw_source

RAW_GROUP = "raw"
OWNERS = ["team:data-platform"]


def raw_asset_key(source_name: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source_name])


def build_raw_asset(config: CdmConfig, name: str, source: SourceConfig) -> dg.AssetsDefinition:
    """The asset that loads every landed file of one source into `raw.<source>`."""
    pattern = config.resolve(source.path)
    file_format = source.file_format()

    @dg.asset(
        key=raw_asset_key(name),
        group_name=RAW_GROUP,
        kinds={"duckdb", file_format},
        owners=OWNERS,
        pool="duckdb",
        tags={"cdm/entity": source.entity},
        description=(
            f"Every {file_format} file landed at `{source.path}` for the {source.entity} source "
            f"**{name}**, one row per accepted input row with `_file` and `_row_number`. "
            "Rows that cannot be accepted go to `raw.quarantine` with the reason."
        ),
        metadata={"cdm/landing_glob": str(pattern), "cdm/record_id": source.record_id},
    )
    def raw_source(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        files = landed_files(pattern)
        if not files:
            context.log.warning(f"sources.{name}.path: no file matches {pattern}; loading an empty table")
        with duckdb.get_connection() as con:
            report = load_raw_source(con, name, source, files)
            metadata = table_metadata(con, report.table)
        context.log.info(
            f"{name}: {report.rows_in} rows in, {report.rows_accepted} accepted, "
            f"{report.rows_quarantined} quarantined from {len(files)} file(s)"
        )
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "files": len(files),
                "rows_in": report.rows_in,
                "quarantined": report.rows_quarantined,
                "quarantined_by_reason": dg.MetadataValue.json(dict(report.quarantined_by_reason)),
            }
        )

    return raw_source


def build_raw_assets(config: CdmConfig) -> list[dg.AssetsDefinition]:
    return [build_raw_asset(config, name, source) for name, source in config.sources.items()]
