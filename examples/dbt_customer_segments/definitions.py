"""cdm and a dbt project on its marts in one Dagster code location, with one lineage.

    export CDM_CONFIG=... CDM_DUCKDB_PATH=...          # as for cdm itself
    dbt parse --project-dir examples/dbt_customer_segments --profiles-dir examples/dbt_customer_segments
    dagster dev -f examples/dbt_customer_segments/definitions.py

The dbt models read cdm's marts (their sources map to the assets `marts/...`) and
write the schema `main_analytics` of the same DuckDB file. They run in the `duckdb`
pool, like every cdm step, so a dbt build never writes the file beside a cdm step.
"""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from cdm_assets.config import load_config
from cdm_assets.definitions import build_definitions

PROJECT = DbtProject(project_dir=Path(__file__).parent, profiles_dir=Path(__file__).parent)
PROJECT.prepare_if_dev()  # under `dagster dev`, parse the project when its manifest is missing


@dbt_assets(manifest=PROJECT.manifest_path, pool="duckdb")
def customer_segments(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """The dbt models and their tests, built on cdm's marts."""
    yield from dbt.cli(["build"], context=context).stream()


def dbt_executable() -> str:
    """The `dbt` installed beside this Python (a virtualenv's bin), else whatever PATH has."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def build_example_definitions() -> dg.Definitions:
    resource = DbtCliResource(project_dir=PROJECT, dbt_executable=dbt_executable())
    dbt = dg.Definitions(assets=[customer_segments], resources={"dbt": resource})
    return dg.Definitions.merge(build_definitions(load_config()), dbt)


defs = build_example_definitions()
