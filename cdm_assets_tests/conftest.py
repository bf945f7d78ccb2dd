"""Shared fixtures: small configs and landing folders built per test."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from cdm_assets.config import CdmConfig, load_config

# The suite runs as the default stage whatever the shell says (see test_environments.py).
os.environ.pop("CDM_ENV", None)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a cdm.yaml into tmp_path and return the loaded config."""

    def write(sources: dict, **extra) -> CdmConfig:
        document = {"warehouse": {"duckdb_path": "warehouse.duckdb"}, "sources": sources, **extra}
        path = tmp_path / "cdm.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return load_config(path)

    return write


@pytest.fixture
def warehouse(tmp_path: Path):
    """A real DuckDB file for the test."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


def write_text(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def materialize_all(defs: dg.Definitions, selection: str | list[str] | None = None) -> dg.ExecuteInProcessResult:
    """Materialise the project's assets in-process, as `dagster asset materialize` would."""
    return dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        resources=defs.resources,
        selection=selection,
        raise_on_error=False,
    )


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Metadata of each materialised asset, by its user-facing key (`raw/crm`)."""
    return {
        event.materialization.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (two cores) for the tests that run the domain on Spark."""
    from cdm_assets.domain.spark.connection import spark_session

    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": 2, "spark.default.parallelism": 2})
    yield session
    session.stop()
