"""The warehouse resource, pointed at the configured DuckDB file."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from cdm_assets.config import CdmConfig, duckdb_path


def warehouse_resource(config: CdmConfig) -> DuckDBResource:
    path = duckdb_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(path))
