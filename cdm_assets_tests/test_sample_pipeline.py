"""The bundled demo config on generated sample data: every layer materialises in-process."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
import yaml

from cdm_assets.config import BUNDLED_CONFIG, load_config
from cdm_assets.definitions import build_definitions
from cdm_assets.sample import generate
from cdm_assets_tests.conftest import materialization_metadata, materialize_all

PERSONS = 400


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Sample data for PERSONS people, the demo config pointed at it, one full materialisation."""
    out = tmp_path_factory.mktemp("demo")
    generate(persons=PERSONS, seed=11, out=out)
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = source["path"].removeprefix("../../data/")
    document["warehouse"]["duckdb_path"] = "cdm.duckdb"
    (out / "cdm.yaml").write_text(yaml.safe_dump(document))
    result = materialize_all(build_definitions(load_config(out / "cdm.yaml")))
    return out, result


def test_every_asset_materialises_and_no_blocking_check_fails(demo_run):
    _, result = demo_run
    assert result.success
    assert len(materialization_metadata(result)) == 18  # 8 raw sources and the quarantine, 5 identity, 4 marts
    blocking = {"no_negative_amounts", "customer_id_is_unique", "one_customer_id_per_record", "customers_exist"}
    failed = [
        e.asset_check_key for e in result.get_asset_check_evaluations() if e.check_name in blocking and not e.passed
    ]
    assert failed == []


def test_rows_in_equal_rows_accepted_plus_quarantined_for_every_source(demo_run):
    out, result = demo_run
    metadata = materialization_metadata(result)
    truth = pd.read_parquet(out / "truth/customer_records.parquet")
    for source in ("crm", "webshop", "loyalty", "newsletter", "support"):
        raw = metadata[f"raw/{source}"]
        assert raw["rows_in"].value == raw["dagster/row_count"].value + raw["quarantined"].value
        assert raw["rows_in"].value == (truth["source"] == source).sum()
        assert raw["quarantined"].value == truth[(truth["source"] == source) & truth["defect"].notna()].shape[0]


def test_transactions_lose_nothing_and_identity_finds_about_one_customer_per_person(demo_run):
    out, result = demo_run
    metadata = materialization_metadata(result)
    truth = pd.read_parquet(out / "truth/transactions.parquet")
    transactions = metadata["marts/transactions"]
    assert transactions["rows_in"].value == len(truth)
    assert transactions["dagster/row_count"].value + transactions["quarantined"].value == len(truth)
    assert (
        transactions["quarantined"].value
        == truth["defect"].isin(["negative amount", "unparseable timestamp", "unknown currency"]).sum()
    )
    with duckdb.connect(str(out / "cdm.duckdb"), read_only=True) as con:
        customers = con.execute("SELECT count(*) FROM marts.customers").fetchone()[0]
    assert PERSONS * 0.95 <= customers <= PERSONS * 1.25


def test_the_declared_column_schemas_are_the_tables_the_demo_config_builds(demo_run):
    from cdm_assets_tests.test_catalogue_checks import assert_schemas_match_the_warehouse, declared_schemas

    out, _ = demo_run
    declared = declared_schemas(build_definitions(load_config(out / "cdm.yaml")))
    assert len(declared) == 5
    assert_schemas_match_the_warehouse(declared, out / "cdm.duckdb")
