"""Configuration: load and validate `cdm.yaml`. Nothing else lives here."""

from cdm_assets.config.environments import DEFAULT_ENVIRONMENT, ENVIRONMENT_ENV, active_environment
from cdm_assets.config.loader import (
    BUNDLED_CONFIG,
    CONFIG_ENV,
    DUCKDB_PATH_ENV,
    ConfigError,
    config_path,
    duckdb_path,
    load_config,
    parse_config,
)
from cdm_assets.config.model import CdmConfig
from cdm_assets.config.sources import (
    CANONICAL_FIELDS,
    CustomerReference,
    DateColumn,
    SourceConfig,
    column_of,
    format_of,
)

__all__ = [
    "BUNDLED_CONFIG",
    "CANONICAL_FIELDS",
    "CONFIG_ENV",
    "DEFAULT_ENVIRONMENT",
    "DUCKDB_PATH_ENV",
    "ENVIRONMENT_ENV",
    "CdmConfig",
    "ConfigError",
    "CustomerReference",
    "DateColumn",
    "SourceConfig",
    "active_environment",
    "column_of",
    "config_path",
    "duckdb_path",
    "format_of",
    "load_config",
    "parse_config",
]
