"""The raw layer in Dagster: one asset per configured source, materialised in-process."""

from __future__ import annotations

import dagster as dg
import duckdb

from cdm_assets.definitions import build_definitions
from cdm_assets_tests.conftest import materialization_metadata, materialize_all, write_text

CRM = {"entity": "customer", "path": "landing/crm/*.csv", "record_id": "crm_id", "fields": {"email": "email"}}
NEWS = {"entity": "customer", "path": "landing/news/*.jsonl", "record_id": "id", "fields": {"email": "mail"}}


def test_the_factory_builds_one_raw_asset_per_configured_source(write_config):
    config = write_config({"crm": CRM, "newsletter": NEWS, "shop": {**CRM, "path": "shop/*.parquet"}})
    defs = build_definitions(config)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/crm", "raw/newsletter", "raw/shop"} <= keys
    spec = defs.resolve_assets_def(dg.AssetKey(["raw", "shop"])).specs_by_key[dg.AssetKey(["raw", "shop"])]
    assert spec.kinds == {"duckdb", "parquet"}
    assert spec.group_name == "raw"


def test_materialising_raw_assets_reports_counts_schema_and_preview(tmp_path, write_config):
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,email\nC1,a@example.com\nC2\nC3,c@example.com\n")
    write_text(tmp_path / "landing/news/n.jsonl", '{"id": "N1", "mail": "n@example.com"}\n')
    defs = build_definitions(write_config({"crm": CRM, "newsletter": NEWS}))
    result = materialize_all(defs)
    assert result.success
    crm = materialization_metadata(result)["raw/crm"]
    assert crm["dagster/row_count"].value == 2
    assert crm["quarantined"].value == 1
    assert crm["rows_in"].value == 3
    assert [c.name for c in crm["dagster/column_schema"].schema.columns] == ["crm_id", "email", "_file", "_row_number"]
    assert "| C1 | a***@e***.com |" in crm["preview"].value  # personal values masked (privacy.previews)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.newsletter").fetchone() == (1,)


def test_a_source_that_cannot_be_loaded_fails_the_run_but_the_others_load(tmp_path, write_config):
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,email\nC1,a@example.com\n")
    write_text(tmp_path / "landing/news/n.jsonl", '{"id": "N1", "mail": "n@example.com"}\n')
    write_text(tmp_path / "shop/broken.csv", "shop_id\nS1\n")  # has no `email` column
    shop = {**CRM, "path": "shop/*.csv", "record_id": "shop_id"}
    defs = build_definitions(write_config({"crm": CRM, "newsletter": NEWS, "shop": shop}))
    result = materialize_all(defs, selection=[f"raw/{name}" for name in ("crm", "newsletter", "shop")])
    assert not result.success
    assert set(materialization_metadata(result)) == {"raw/crm", "raw/newsletter"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    errors = failure.step_failure_data.user_failure_data.metadata["errors"].value
    assert "raw/shop" in errors and "broken.csv" in errors and "email" in errors
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.crm").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'shop'").fetchone() == (
            0,
        )


def test_selecting_one_raw_asset_loads_only_that_source(tmp_path, write_config):
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,email\nC1,a@example.com\n")
    write_text(tmp_path / "landing/news/n.jsonl", '{"id": "N1", "mail": "n@example.com"}\n')
    defs = build_definitions(write_config({"crm": CRM, "newsletter": NEWS}))
    result = materialize_all(defs, selection="raw/newsletter")
    assert result.success
    assert set(materialization_metadata(result)) == {"raw/newsletter"}
    assert materialization_metadata(result)["raw/newsletter"]["load_seconds"].value >= 0
