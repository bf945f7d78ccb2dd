"""cdm.yaml: every mistake stops loading with one message naming file, key and expectation."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import yaml

from cdm_assets.config import BUNDLED_CONFIG, ConfigError, duckdb_path, load_config, parse_config

DEMO = yaml.safe_load(BUNDLED_CONFIG.read_text())
CONFIG_FILE = Path("/configs/cdm.yaml")


def error_for(change) -> str:
    document = copy.deepcopy(DEMO)
    change(document)
    with pytest.raises(ConfigError) as raised:
        parse_config(document, CONFIG_FILE)
    return str(raised.value)


def test_the_bundled_demo_config_is_valid():
    config = load_config(BUNDLED_CONFIG)
    assert set(config.sources) >= {"crm", "webshop", "loyalty", "newsletter", "support"}
    assert config.sources["loyalty"].delimiter == ";"


def test_unset_cdm_config_means_the_bundled_demo(monkeypatch):
    monkeypatch.delenv("CDM_CONFIG", raising=False)
    assert load_config().config_path == BUNDLED_CONFIG


def test_cdm_config_points_at_another_file(monkeypatch, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"sources": {"crm": DEMO["sources"]["crm"]}}))
    monkeypatch.setenv("CDM_CONFIG", str(path))
    assert list(load_config().sources) == ["crm"]


def test_missing_record_id_names_the_key():
    message = error_for(lambda d: d["sources"]["crm"].pop("record_id"))
    assert message == f"{CONFIG_FILE}: sources.crm.record_id: required key is missing"


def test_unknown_entity_lists_the_allowed_ones():
    message = error_for(lambda d: d["sources"]["crm"].update(entity="persona"))
    assert message.startswith(f"{CONFIG_FILE}: sources.crm.entity: ")
    assert "expected one of: customer, transaction, event" in message
    assert "entities" in message  # points at where other customer-like entities are declared


def test_unknown_canonical_field_lists_the_fields_of_the_entity():
    message = error_for(lambda d: d["sources"]["crm"]["fields"].update(birthdate="dob"))
    assert message.startswith(f"{CONFIG_FILE}: sources.crm.fields.birthdate: unknown canonical field 'birthdate'")
    assert "birth_date" in message and "postcode" in message


def test_bad_date_format_is_refused_with_an_example():
    message = error_for(
        lambda d: d["sources"]["crm"]["fields"].update(birth_date={"column": "birth_date", "format": "YYYY-MM-DD"})
    )
    assert message == (
        f"{CONFIG_FILE}: sources.crm.fields.birth_date.format: bad date format 'YYYY-MM-DD': "
        "expected a strftime format such as '%Y-%m-%d' or '%d/%m/%Y'"
    )


def test_unknown_strftime_directive_is_named():
    message = error_for(
        lambda d: d["sources"]["loyalty"]["fields"].update(birth_date={"column": "x", "format": "%d/%Q"})
    )
    assert "sources.loyalty.fields.birth_date.format" in message and "%Q" in message


def test_transaction_pointing_at_a_missing_source():
    message = error_for(lambda d: d["sources"]["webshop_orders"]["customer"].update(source="webshp"))
    assert message == (
        f"{CONFIG_FILE}: sources.webshop_orders.customer.source: source 'webshp' does not exist; "
        "customer sources are: crm, loyalty, newsletter, support, webshop"
    )


def test_transaction_pointing_at_a_non_customer_source():
    message = error_for(lambda d: d["sources"]["webshop_orders"]["customer"].update(source="clickstream"))
    assert "sources.webshop_orders.customer.source: source 'clickstream' is a event source" in message


def test_unsafe_source_name():
    message = error_for(lambda d: d["sources"].update({"Web-Shop": d["sources"]["webshop"]}))
    assert message.startswith(f"{CONFIG_FILE}: sources.Web-Shop: unsafe source name 'Web-Shop'")


def test_unsafe_column_name():
    message = error_for(lambda d: d["sources"]["crm"]["fields"].update(email='email"; DROP TABLE x; --'))
    assert message.startswith(f"{CONFIG_FILE}: sources.crm.fields.email: unsafe column name")


def test_unknown_key_is_refused():
    assert error_for(lambda d: d["sources"]["crm"].update(colour="blue")) == (
        f"{CONFIG_FILE}: sources.crm.colour: unknown key"
    )


def test_unknown_phone_region():
    message = error_for(lambda d: d["sources"]["webshop"].update(phone_region="XX"))
    assert "sources.webshop.phone_region: unknown phone region 'XX'" in message


def test_format_that_cannot_be_inferred():
    message = error_for(lambda d: d["sources"]["crm"].update(path="landing/crm/*.xlsx"))
    assert message == (
        f"{CONFIG_FILE}: sources.crm.format: cannot tell the format from 'landing/crm/*.xlsx'; "
        "expected one of: csv, parquet, jsonl"
    )


def test_transaction_without_amount():
    message = error_for(lambda d: d["sources"]["webshop_orders"]["fields"].pop("amount"))
    assert message == f"{CONFIG_FILE}: sources.webshop_orders.fields: a transaction source must map amount"


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "cdm.yaml"
    broken.write_text("sources: [unclosed")
    with pytest.raises(ConfigError, match=f"{broken}: not valid YAML"):
        load_config(broken)


def test_a_glob_matching_nothing_is_a_warning_not_an_error(tmp_path, caplog):
    path = tmp_path / "cdm.yaml"
    path.write_text(yaml.safe_dump({"sources": {"crm": {**DEMO["sources"]["crm"], "path": "landing/*.csv"}}}))
    with caplog.at_level(logging.WARNING):
        config = load_config(path)
    assert config.sources["crm"]
    assert "sources.crm.path: no file matches" in caplog.text


def test_relative_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    path = tmp_path / "cdm.yaml"
    path.write_text(
        yaml.safe_dump({"warehouse": {"duckdb_path": "wh/cdm.duckdb"}, "sources": {"crm": DEMO["sources"]["crm"]}})
    )
    monkeypatch.delenv("CDM_DUCKDB_PATH", raising=False)
    config = load_config(path)
    assert duckdb_path(config) == tmp_path / "wh" / "cdm.duckdb"
    monkeypatch.setenv("CDM_DUCKDB_PATH", str(tmp_path / "other.duckdb"))
    assert duckdb_path(config) == tmp_path / "other.duckdb"


def test_warehouse_limits_reach_every_duckdb_connection(write_config, tmp_path):
    from cdm_assets.wiring.resources import warehouse_resource

    config = write_config(
        {"crm": {"entity": "customer", "path": "crm/*.csv", "record_id": "id", "fields": {"email": "email"}}},
        warehouse={"duckdb_path": "w.duckdb", "memory_limit": "1GB", "threads": 1},
    )
    with warehouse_resource(config).get_connection() as con:
        [(limit, threads)] = con.sql("SELECT current_setting('memory_limit'), current_setting('threads')").fetchall()
    assert (limit, threads) == ("953.6 MiB", 1)  # DuckDB reports 1GB (10^9 bytes) in MiB


def test_a_memory_limit_must_be_a_size(write_config):
    message = error_for(lambda d: d["warehouse"].update(memory_limit="lots"))
    assert message.startswith(f"{CONFIG_FILE}: warehouse.memory_limit: ")
    assert "expected a size such as '4GB'" in message


def test_two_sources_with_the_same_name_are_a_config_error_naming_file_and_key(tmp_path):
    path = tmp_path / "cdm.yaml"
    crm = yaml.safe_dump({"crm": DEMO["sources"]["crm"]}, sort_keys=False)
    indented = "".join("  " + line for line in crm.splitlines(keepends=True))
    path.write_text("sources:\n" + indented + indented)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: sources.crm: ") and "duplicate key" in message and "line" in message


def test_any_duplicate_key_is_a_config_error(tmp_path):
    path = tmp_path / "cdm.yaml"
    source = yaml.safe_dump({"crm": DEMO["sources"]["crm"]}, sort_keys=False).replace(
        "entity:", "record_id: x\n  entity:", 1
    )
    path.write_text("sources:\n" + "".join("  " + line for line in source.splitlines(keepends=True)))
    with pytest.raises(ConfigError, match=r"sources\.crm\.record_id: duplicate key"):
        load_config(path)


def test_an_unknown_encoding_is_a_config_error():
    message = error_for(lambda d: d["sources"]["crm"].update(encoding="klingon-8"))
    assert (
        message
        == f"{CONFIG_FILE}: sources.crm.encoding: unknown encoding 'klingon-8'; expected one Python knows, such as 'utf-8', 'latin-1' or 'cp1252'"
    )


def test_a_warehouse_path_that_is_a_directory_is_a_config_error(tmp_path, monkeypatch):
    document = {"warehouse": {"duckdb_path": "/"}, "sources": {"crm": DEMO["sources"]["crm"]}}
    with pytest.raises(ConfigError, match=r"warehouse\.duckdb_path: / is a directory; expected a DuckDB file"):
        parse_config(document, tmp_path / "cdm.yaml")
    monkeypatch.setenv("CDM_DUCKDB_PATH", str(tmp_path))
    config = parse_config({**document, "warehouse": {}}, tmp_path / "cdm.yaml")
    with pytest.raises(ConfigError, match=r"CDM_DUCKDB_PATH: .* is a directory"):
        duckdb_path(config)


@pytest.mark.parametrize("number_format", [{"decimal": ",", "thousands": ","}, {"decimal": ";"}, {"thousand": "."}])
def test_a_bad_number_format_is_a_config_error(number_format):
    message = error_for(lambda d: d["sources"]["crm"].update(number_format=number_format))
    assert message.startswith(f"{CONFIG_FILE}: sources.crm.number_format")
