"""cdm inside another Dagster project: `CdmComponent` in a `dg` project.

The example project (examples/dagster_project) holds two cdm instances (two configs
under the prefixes `customers` and `b2b`) beside an asset of its own. These tests
copy it (with the B2B example whose config it reuses) and use it as a user would:
`dg check defs`, `dg list defs`, `dg scaffold defs cdm_assets.CdmComponent ...`,
and a materialisation of everything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from cdm_assets.component import CdmComponent
from cdm_assets.sample import generate
from cdm_assets.sample.b2b import generate_b2b
from cdm_assets_tests.conftest import materialize_all

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project, beside a copy of the B2B example it reads."""
    for name in ("dagster_project", "b2b"):
        shutil.copytree(EXAMPLES / name, tmp_path / "examples" / name, ignore=shutil.ignore_patterns("data"))
    return tmp_path / "examples" / "dagster_project"


def run_dg(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CDM_CONFIG", None)
    return subprocess.run(
        [str(BIN / "dg"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_dg_check_defs_passes_with_two_instances_beside_an_asset_of_the_project(project):
    checked = run_dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = run_dg(project, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    keys = {asset["asset_key"] for asset in defs["assets"]}
    assert {"customers/raw/crm", "customers/identity/customer_id_map", "customers/marts/customers"} <= keys
    assert {"b2b/raw/crm_accounts", "b2b/marts/accounts", "b2b/marts/customers"} <= keys
    assert "shop/loyal_customers" in keys
    assert not any(key.startswith(("raw/", "identity/", "marts/")) for key in keys)  # every cdm key is prefixed
    sensors = {sensor["name"] for sensor in defs["sensors"]}
    assert {"customers__landing_files", "b2b__landing_files"} <= sensors
    jobs = {job["name"] for job in defs["jobs"]}
    assert {"customers__forget", "b2b__forget"} <= jobs
    resources = {resource["name"] for resource in defs["resources"]}
    assert {"duckdb_customers", "duckdb_b2b"} <= resources


def test_dg_scaffold_adds_a_third_instance_with_a_starter_config(project):
    scaffolded = run_dg(project, "scaffold", "defs", "cdm_assets.CdmComponent", "newsletter")
    assert scaffolded.returncode == 0, scaffolded.stderr[-3000:]
    folder = project / "shop_analytics" / "defs" / "newsletter"
    declared = yaml.safe_load((folder / "defs.yaml").read_text())
    assert declared == {
        "type": "cdm_assets.CdmComponent",
        "attributes": {"config_path": "cdm.yaml", "key_prefix": "newsletter"},
    }
    assert "sources:" in (folder / "cdm.yaml").read_text()
    # scaffolding reads cdm's component, not its bundled demo project
    assert "demo/cdm.yaml" not in scaffolded.stdout + scaffolded.stderr

    checked = run_dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "newsletter/cdm.yaml: sources.crm.path: no file matches" in checked.stdout + checked.stderr


def test_both_instances_build_into_their_own_warehouses_and_the_project_asset_reads_one(project, tmp_path, monkeypatch):
    generate(persons=300, seed=3, out=project / "data")
    generate_b2b(accounts=60, seed=3, out=tmp_path / "data" / "b2b")
    # CDM_DUCKDB_PATH moves cdm's own warehouse, never a component's: it would put every instance in one file
    stray = tmp_path / "stray.duckdb"
    monkeypatch.setenv("CDM_DUCKDB_PATH", str(stray))
    monkeypatch.syspath_prepend(str(project))
    try:
        defs = dg.load_from_defs_folder(path_within_project=project / "shop_analytics")
        result = materialize_all(defs)
    finally:
        for module in [name for name in sys.modules if name.split(".")[0] == "shop_analytics"]:
            del sys.modules[module]
    assert result.success
    materialised = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert {"customers/marts/customers", "b2b/marts/accounts", "shop/loyal_customers"} <= materialised
    checks = result.get_asset_check_evaluations()
    assert {c.asset_key.to_user_string() for c in checks if not c.passed and c.severity.value == "ERROR"} == set()

    assert not stray.exists()
    with duckdb.connect(str(project / "data" / "cdm.duckdb"), read_only=True) as con:
        customers = con.execute("SELECT count(*) FROM marts.customers").fetchone()[0]
        loyal = con.execute("SELECT count(*) FROM marts.customer_metrics WHERE orders >= 3").fetchone()[0]
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    with duckdb.connect(str(tmp_path / "data" / "b2b" / "cdm.duckdb"), read_only=True) as con:
        accounts = con.execute("SELECT count(*) FROM marts.accounts").fetchone()[0]
    assert 250 <= customers <= 350  # 300 people, resolved
    assert 40 <= accounts <= 80  # 60 companies
    assert "accounts" not in tables  # the B2B instance wrote to its own file only
    loyal_metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["shop", "loyal_customers"])
    )
    assert loyal_metadata["loyal_customers"].value == loyal


def test_a_key_prefix_part_that_cannot_name_a_resource_is_a_clear_error():
    with pytest.raises(ValueError, match="key_prefix: 'my-shop' is not a name of letters, digits and _"):
        CdmComponent(config_path="cdm.yaml", key_prefix=["my-shop"])
    assert CdmComponent(config_path="cdm.yaml", key_prefix="shop_nl").namespace.warehouse == "duckdb_shop_nl"
