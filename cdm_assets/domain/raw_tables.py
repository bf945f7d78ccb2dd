"""Kept for existing imports: the raw layer lives in `cdm_assets.domain.raw`."""

from cdm_assets.domain.raw.land_file import near_unique_columns  # noqa: F401
from cdm_assets.domain.raw.load import (  # noqa: F401
    RawLoadReport,
    ensure_raw_tables,
    landed_files,
    load_raw_source,
    load_raw_sources,
)
