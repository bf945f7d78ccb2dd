"""Dagster wiring: assets, checks, sensors and resources over the domain layer."""
