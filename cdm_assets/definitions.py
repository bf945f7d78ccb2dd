"""The Dagster project: cdm's own code location, built from `cdm.yaml` (`CDM_CONFIG`)."""

from cdm_assets.config import load_config
from cdm_assets.wiring.project import build_definitions

__all__ = ["build_definitions", "defs"]

defs = build_definitions(load_config())
