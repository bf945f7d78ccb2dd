"""A team's own Dagster project, with cdm added as components (see pyproject.toml)."""
