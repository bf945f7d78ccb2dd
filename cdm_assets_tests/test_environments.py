"""Environments: one cdm.yaml for development, test, acceptance and production;
`CDM_ENV` picks the stage, and a stage changes only what it owns."""

from __future__ import annotations

import copy
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cdm_assets.config import BUNDLED_CONFIG, ConfigError, duckdb_path, load_config, parse_config
from cdm_assets.definitions import build_definitions

DEMO = yaml.safe_load(BUNDLED_CONFIG.read_text())
CONFIG_FILE = Path("/configs/cdm.yaml")

STAGES = {
    "acc": {"warehouse": {"duckdb_path": "/srv/cdm/acc.duckdb", "memory_limit": "2GB"}},
    "prod": {
        "warehouse": {"duckdb_path": "/srv/cdm/prod.duckdb", "memory_limit": "8GB"},
        "sources": {"crm": {"path": "/landing/prod/crm/*.csv"}},
        "checks": {"max_quarantine_share": 0.001},
        "identity": {"max_cluster_size": 40},
    },
}


def staged(environments: dict | None = None) -> dict:
    document = copy.deepcopy(DEMO)
    document["environments"] = copy.deepcopy(STAGES if environments is None else environments)
    return document


@pytest.fixture(autouse=True)
def no_stage_set(monkeypatch):
    monkeypatch.delenv("CDM_ENV", raising=False)
    monkeypatch.delenv("CDM_DUCKDB_PATH", raising=False)


def test_acceptance_and_production_resolve_to_different_warehouses(monkeypatch, tmp_path):
    path = tmp_path / "cdm.yaml"
    path.write_text(yaml.safe_dump(staged()))
    monkeypatch.setenv("CDM_ENV", "acc")
    acc = load_config(path)
    monkeypatch.setenv("CDM_ENV", "prod")
    prod = load_config(path)
    assert (acc.environment, prod.environment) == ("acc", "prod")
    assert duckdb_path(acc) == Path("/srv/cdm/acc.duckdb")
    assert duckdb_path(prod) == Path("/srv/cdm/prod.duckdb")
    assert (acc.warehouse.memory_limit, prod.warehouse.memory_limit) == ("2GB", "8GB")


def test_an_overlay_changes_only_the_keys_it_names():
    base, prod = parse_config(staged(), CONFIG_FILE), parse_config(staged(), CONFIG_FILE, "prod")
    assert prod.sources["crm"].path == "/landing/prod/crm/*.csv"
    assert prod.sources["crm"].fields == base.sources["crm"].fields  # the mapping stays the stage's shared one
    assert prod.sources["webshop"].path == base.sources["webshop"].path
    assert prod.checks.max_quarantine_share == 0.001 and base.checks.max_quarantine_share != 0.001
    assert prod.warehouse.threads == base.warehouse.threads
    assert prod.identity.max_cluster_size == 40 and prod.identity.rules == base.identity.rules


def test_without_cdm_env_the_stage_is_dev_and_needs_no_overlay():
    config = parse_config(staged(), CONFIG_FILE)
    assert config.environment == "dev"
    assert config.warehouse.duckdb_path == DEMO["warehouse"]["duckdb_path"]


def test_a_stage_the_config_does_not_declare_is_refused_naming_the_declared_ones(monkeypatch):
    monkeypatch.setenv("CDM_ENV", "prd")
    with pytest.raises(ConfigError) as raised:
        parse_config(staged(), CONFIG_FILE)
    assert str(raised.value) == (
        f"{CONFIG_FILE}: environments.prd: CDM_ENV=prd names no environment of this config (declared: acc, prod)"
    )


def test_an_error_in_an_overlay_names_the_environment_and_its_key():
    document = staged({"prod": {"warehouse": {"memory_limit": "lots"}}})
    with pytest.raises(ConfigError) as raised:
        parse_config(document, CONFIG_FILE, "prod")
    assert str(raised.value).startswith(
        f"{CONFIG_FILE}: environments.prod.warehouse.memory_limit: bad memory limit 'lots'"
    )


@pytest.mark.parametrize(
    ("overlay", "key"),
    [
        ({"entities": {}}, "environments.test.entities"),
        ({"sources": {"crm": {"record_id": "other_id"}}}, "environments.test.sources.crm.record_id"),
        ({"sources": {"erp": {"path": "x/*.csv"}}}, "environments.test.sources.erp"),
        ({"identity": {"match_model": {"threshold": 0.5}}}, "environments.test.identity.match_model"),
    ],
)
def test_a_stage_cannot_change_what_every_stage_shares(overlay, key):
    with pytest.raises(ConfigError) as raised:
        parse_config(staged({"test": overlay}), CONFIG_FILE, "test")
    assert str(raised.value).startswith(f"{CONFIG_FILE}: {key}: ")


def test_every_asset_and_the_code_location_show_the_stage():
    defs = build_definitions(parse_config(staged(), CONFIG_FILE, "acc"))
    graph = defs.get_repository_def().asset_graph
    stages = {graph.get(key).metadata.get("cdm/environment") for key in graph.get_all_asset_keys()}
    assert stages == {"acc"}
    assert defs.metadata["cdm/environment"] == dg.MetadataValue.text("acc")
