"""The warehouse resource: the configured DuckDB file, or the Spark warehouse
(`warehouse.engine: spark`). The assets, checks and sensors are the same for both;
only this resource changes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from cdm_assets.config import CdmConfig, ConfigError, duckdb_path
from cdm_assets.config.loader import ENGINE_ENV, engine, spark_warehouse_dir
from cdm_assets.domain.warehouse import (
    NO_COMPACTION,
    WarehouseLocked,
    compact_when_sparse,
    connect_warehouse,
    drop_abandoned_staging_tables,
)

__all__ = ["SparkWarehouseResource", "WarehouseLocked", "WarehouseResource", "connection_config", "warehouse_resource"]

log = logging.getLogger(__name__)

# Every table is built whole and its row order carries no meaning (rows keep
# `_file` and `_row_number`), so DuckDB may write in parallel without
# preserving insertion order: a quarter to a third faster on large builds.
# Row groups are compacted only when a table has many deleted rows (`compact_when_sparse`).
CONNECTION_CONFIG = {"preserve_insertion_order": False, **NO_COMPACTION}


class WarehouseResource(DuckDBResource):
    """DuckDB connections for the steps; no progress bar in run logs. Each connection
    first drops the staging tables a killed run left behind (they may hold personal data)."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # Not DuckDBResource's connect: it retries a locked file for ~100 s without a word.
        connection = connect_warehouse(self.database, config={"custom_user_agent": "dagster", **self.connection_config})
        try:
            connection.execute("SET enable_progress_bar = false")  # a per-connection setting
            dropped = drop_abandoned_staging_tables(connection)
            if dropped:
                log.warning("dropped %d staging table(s) left by a run that died: %s", len(dropped), ", ".join(dropped))
            yield connection
            compacted = compact_when_sparse(connection)
            if compacted:
                log.info("compacting the row groups of %s (many deleted rows)", ", ".join(compacted))
        finally:
            connection.close()


def connection_config(config: CdmConfig) -> dict:
    """DuckDB settings for every connection, with the warehouse's limits from cdm.yaml."""
    limits = {"memory_limit": config.warehouse.memory_limit, "threads": config.warehouse.threads}
    return {**CONNECTION_CONFIG, **{name: value for name, value in limits.items() if value is not None}}


class SparkWarehouseResource(dg.ConfigurableResource):
    """Connections to the warehouse Spark runs (`warehouse.engine: spark`): every table a
    Parquet directory under `warehouse_dir`. A step's process keeps one Spark session."""

    master: str
    warehouse_dir: str
    conf: dict[str, str] = Field(default_factory=dict)

    @contextmanager
    def get_connection(self) -> Iterator[object]:
        from cdm_assets.domain.spark.connection import SparkWarehouse, spark_session

        spark = spark_session(self.master, self.conf)
        with SparkWarehouse(spark, self.warehouse_dir) as connection:
            yield connection


def warehouse_resource(
    config: CdmConfig, honour_duckdb_path_env: bool = True
) -> WarehouseResource | SparkWarehouseResource:
    """The resource of the engine in use (`CDM_ENGINE`, else `warehouse.engine`)."""
    if engine(config, honour_duckdb_path_env) == "spark":
        return spark_resource(config)
    path = duckdb_path(config, honour_duckdb_path_env)
    path.parent.mkdir(parents=True, exist_ok=True)
    return WarehouseResource(database=str(path), connection_config=connection_config(config))


def spark_resource(config: CdmConfig) -> SparkWarehouseResource:
    try:
        import pyspark  # noqa: F401
        import sqlglot  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{config.config_path}: warehouse.engine (or {ENGINE_ENV}) is spark, but pyspark and sqlglot are not "
            "installed: pip install 'cdm[spark]'"
        ) from None
    settings = config.warehouse.spark
    return SparkWarehouseResource(
        master=settings.master,
        warehouse_dir=spark_warehouse_dir(config),
        conf={
            key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in settings.conf.items()
        },
    )
