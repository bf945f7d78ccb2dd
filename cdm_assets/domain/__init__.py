"""Domain logic: plain Python and SQL over a DuckDB connection and table names.

Nothing here imports Dagster; the wiring in `cdm_assets.wiring` calls into it.
"""
