"""Entity variants: a second customer-like entity (B2B accounts beside contacts).

The B2B example (`examples/b2b/cdm.yaml`, data from `cdm sample --b2b`)
is materialised for real, in-process, and checked against the generator's truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from cdm_assets.config import ConfigError, load_config
from cdm_assets.definitions import build_definitions
from cdm_assets.domain.identity.explain import explain_customer
from cdm_assets.sample.b2b import generate_b2b
from cdm_assets_tests.conftest import materialization_metadata, materialize_all
from cdm_assets_tests.plans import entity_of

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "b2b" / "cdm.yaml"
ACCOUNTS = 120


def contact_source(**extra) -> dict:
    return {
        "entity": "customer",
        "path": "landing/contacts/*.csv",
        "record_id": "contact_id",
        "fields": {"first_name": "first_name", "email": "email"},
        **extra,
    }


def account_source(entity: str = "account") -> dict:
    return {
        "entity": entity,
        "path": "landing/accounts/*.csv",
        "record_id": "account_id",
        "identifiers": {"vat": "vat"},
    }


def config_error(write_config, sources: dict, **extra) -> str:
    with pytest.raises(ConfigError) as raised:
        write_config(sources, **extra)
    return str(raised.value)


# --- configuration -----------------------------------------------------------


def test_the_customer_entity_keeps_the_table_names_of_the_design(write_config):
    tables = entity_of(write_config({"contacts": contact_source()})).tables
    assert [str(t) for t in (tables.lookup, tables.graph, tables.id_map, tables.id_history, tables.golden)] == [
        "identity.source_lookup",
        "identity.identity_graph",
        "identity.customer_id_map",
        "identity.customer_id_history",
        "marts.customers",
    ]
    assert (tables.id_column, tables.id_prefix) == ("customer_id", "cus_")


def test_a_declared_entity_gets_its_own_tables_id_column_and_prefix(write_config):
    config = write_config(
        {"contacts": contact_source(), "accounts": account_source()},
        entities={"account": {"table": "companies", "id_prefix": "co_"}},
    )
    tables = entity_of(config, "account").tables
    assert [str(t) for t in (tables.lookup, tables.graph, tables.id_map, tables.id_history, tables.golden)] == [
        "identity.account_source_lookup",
        "identity.account_identity_graph",
        "identity.account_id_map",
        "identity.account_id_history",
        "marts.companies",
    ]
    assert (tables.id_column, tables.id_prefix) == ("account_id", "co_")
    assert config.customer_entities() == ["customer", "account"]


def test_a_source_of_an_undeclared_entity_is_refused_naming_the_key(write_config):
    message = config_error(write_config, {"contacts": contact_source(), "accounts": account_source()})
    assert "sources.accounts.entity" in message
    assert "unknown entity 'account'" in message and "entities" in message


def test_an_entity_cannot_take_a_built_in_name(write_config):
    message = config_error(
        write_config, {"contacts": contact_source(), "accounts": account_source()}, entities={"event": {}}
    )
    assert "entities.event" in message


def test_a_declared_entity_needs_a_source(write_config):
    message = config_error(write_config, {"contacts": contact_source()}, entities={"account": {}})
    assert "entities.account" in message and "no source has entity: account" in message


def test_an_entity_cannot_take_a_table_that_exists(write_config):
    message = config_error(
        write_config,
        {"contacts": contact_source(), "accounts": account_source()},
        entities={"account": {"table": "transactions"}},
    )
    assert "entities.account.table" in message


def test_a_link_must_name_a_source_of_the_linked_entity(write_config):
    sources = {
        "contacts": contact_source(links={"account": {"source": "contacts", "column": "account_ref"}}),
        "accounts": account_source(),
    }
    message = config_error(write_config, sources, entities={"account": {}})
    assert "sources.contacts.links.account.source" in message
    assert "expected one of: accounts" in message


def test_a_link_must_name_a_declared_entity(write_config):
    sources = {"contacts": contact_source(links={"company": {"source": "accounts", "column": "account_ref"}})}
    message = config_error(write_config, sources)
    assert "sources.contacts.links.company" in message


def test_an_entity_rule_may_only_use_identifiers_of_that_entity(write_config):
    rules = [{"name": "same_loyalty_card", "exact": ["identifier:loyalty_card"]}]
    message = config_error(
        write_config,
        {"contacts": contact_source(identifiers={"loyalty_card": "card"}), "accounts": account_source()},
        entities={"account": {"identity": {"rules": rules}}},
    )
    assert "entities.account.identity.rules.0.exact" in message
    assert "declared: vat" in message


# --- the B2B example, materialised ---------------------------------------------


@pytest.fixture(scope="module")
def b2b(tmp_path_factory) -> Path:
    """The example config in a copy of the project layout, with generated B2B data."""
    root = tmp_path_factory.mktemp("b2b")
    (root / "examples" / "b2b").mkdir(parents=True)
    shutil.copy(EXAMPLE, root / "examples" / "b2b" / "cdm.yaml")
    generate_b2b(ACCOUNTS, seed=7, out=root / "data" / "b2b")
    return root


@pytest.fixture(scope="module")
def b2b_run(b2b: Path) -> tuple[dg.ExecuteInProcessResult, Path]:
    config = load_config(b2b / "examples" / "b2b" / "cdm.yaml")
    result = materialize_all(build_definitions(config))
    return result, b2b / "data" / "b2b"


def query(data: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data / "cdm.duckdb"), read_only=True) as con:
        con.execute(f"CREATE TEMP VIEW account_truth AS SELECT * FROM '{data}/truth/accounts.parquet'")
        con.execute(f"CREATE TEMP VIEW contact_truth AS SELECT * FROM '{data}/truth/contacts.parquet'")
        return con.execute(sql).fetchall()


def test_the_example_config_loads_and_names_both_entities():
    config = load_config(EXAMPLE)
    assert config.customer_entities() == ["customer", "account"]
    assert config.linked_entities("customer") == ["account"]
    assert (
        yaml.safe_load(EXAMPLE.read_text())["sources"]["crm_contacts"]["links"]["account"]["source"] == "crm_accounts"
    )


def test_the_b2b_example_materialises_with_every_check_passing(b2b_run):
    result, _ = b2b_run
    assert result.success
    keys = set(materialization_metadata(result))
    assert {
        "identity/account_source_lookup",
        "identity/account_identity_graph",
        "identity/account_id_map",
        "identity/account_id_history",
        "marts/accounts",
        "marts/customers",
    } <= keys
    evaluations = result.get_asset_check_evaluations()
    failed = {
        (e.asset_key.to_user_string(), e.check_name)
        for e in evaluations
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    }
    assert failed == set()
    names = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
    assert {
        ("marts/accounts", "account_id_is_unique"),
        ("identity/account_id_map", "one_account_id_per_record"),
        ("identity/account_id_map", "no_giant_clusters"),
        ("marts/customers", "account_links_resolve"),
    } <= names


def test_each_company_becomes_exactly_one_account(b2b_run):
    _, data = b2b_run
    [(accounts, companies, split, merged)] = query(
        data,
        """
        WITH resolved AS (
            SELECT t.company, m.account_id FROM identity.account_id_map m
            JOIN account_truth t ON t.source = m.source AND t.record_id = m.source_record_id
        )
        SELECT (SELECT count(*) FROM marts.accounts), count(DISTINCT company),
               (SELECT count(*) FROM (SELECT company FROM resolved GROUP BY company HAVING count(DISTINCT account_id) > 1)),
               (SELECT count(*) FROM (SELECT account_id FROM resolved GROUP BY account_id HAVING count(DISTINCT company) > 1))
        FROM resolved
        """,
    )
    assert companies == ACCOUNTS
    assert (accounts, split, merged) == (ACCOUNTS, 0, 0)


def test_account_golden_records_carry_company_attributes_and_no_person_fields(b2b_run):
    _, data = b2b_run
    columns = [row[0] for row in query(data, "SELECT column_name FROM (DESCRIBE marts.accounts)")]
    assert columns[0] == "account_id"
    assert {"company_name", "industry", "website", "phone", "postcode", "sources", "record_count"} <= set(columns)
    assert not {"first_name", "birth_date", "customer_id"} & set(columns)
    [(ids, prefixed, named)] = query(
        data,
        "SELECT count(*), count(*) FILTER (account_id LIKE 'acc\\_%' ESCAPE '\\'), count(company_name) FROM marts.accounts",
    )
    assert ids == prefixed == named


def test_a_contact_carries_the_account_id_of_its_company(b2b_run):
    """Contacts naming either CRM record of a company held twice get that company's one account_id."""
    _, data = b2b_run
    [(linked, wrong, companies_held_twice)] = query(
        data,
        """
        WITH contact_company AS (
            SELECT DISTINCT m.customer_id, t.company
            FROM identity.customer_id_map m
            JOIN contact_truth t ON t.source = m.source AND t.record_id = m.source_record_id
            JOIN raw.crm_contacts c ON c.contact_id = t.record_id AND t.source = 'crm_contacts'
            WHERE c.account_ref IN (SELECT account_id FROM raw.crm_accounts)
        ),
        company_account AS (
            SELECT DISTINCT t.company, m.account_id FROM identity.account_id_map m
            JOIN account_truth t ON t.source = m.source AND t.record_id = m.source_record_id
        )
        SELECT count(*), count(*) FILTER (c.account_id IS DISTINCT FROM a.account_id),
               (SELECT count(*) FROM (SELECT company FROM account_truth WHERE source = 'crm_accounts'
                                      GROUP BY company HAVING count(*) > 1))
        FROM contact_company cc
        JOIN marts.customers c USING (customer_id)
        JOIN company_account a USING (company)
        """,
    )
    assert linked > ACCOUNTS
    assert companies_held_twice > 0
    assert wrong == 0


def test_a_contact_naming_a_missing_account_keeps_an_empty_account_id_and_is_counted(b2b_run):
    result, data = b2b_run
    [(dangling,)] = query(
        data, "SELECT count(*) FROM raw.crm_contacts WHERE account_ref NOT IN (SELECT account_id FROM raw.crm_accounts)"
    )
    assert dangling > 0
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "account_links_resolve"]
    assert check.metadata["failing_rows"].value == dangling
    [(empty,)] = query(
        data,
        """
        SELECT count(*) FROM raw.crm_contacts c
        JOIN identity.customer_id_map m ON m.source = 'crm_contacts' AND m.source_record_id = c.contact_id
        JOIN marts.customers g USING (customer_id)
        WHERE c.account_ref NOT IN (SELECT account_id FROM raw.crm_accounts) AND g.account_id IS NULL
        """,
    )
    assert empty > 0


def test_account_ids_are_stable_across_reruns_and_explained(b2b, b2b_run):
    config = load_config(b2b / "examples" / "b2b" / "cdm.yaml")
    data = b2b / "data" / "b2b"
    before = dict(query(data, "SELECT source || ':' || source_record_id, account_id FROM identity.account_id_map"))
    ids = dg.AssetSelection.assets(["identity", "account_id_map"], ["identity", "account_id_history"])
    assert materialize_all(build_definitions(config), selection=ids).success
    after = dict(query(data, "SELECT source || ':' || source_record_id, account_id FROM identity.account_id_map"))
    assert after == before
    [(history_columns,)] = query(
        data, "SELECT list(column_name ORDER BY column_name) FROM (DESCRIBE identity.account_id_history)"
    )
    assert {"account_id", "previous_account_id", "change", "changed_at"} <= set(history_columns)
    account = next(iter(after.values()))
    with duckdb.connect(str(data / "cdm.duckdb"), read_only=True) as con:
        text = explain_customer(con, account, entity_of(config, "account").tables)
    assert text.startswith(f"Account {account}:")
    assert "id_vat_number=" in text or "phone=" in text
