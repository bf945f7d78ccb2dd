"""Dagster wiring: assets, checks, sensors and resources over the domain layer.

(Named `wiring`, not `defs`: `cdm_assets.defs` is the Definitions object.)
"""
