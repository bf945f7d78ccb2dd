"""Match rules: who is linked, who is kept apart, and why."""

from __future__ import annotations

import pytest

from cdm_assets.config.model import MatchRule
from cdm_assets.domain.identity.match_rules import build_identity_graph, default_rules
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.raw_tables import landed_files, load_raw_source
from cdm_assets_tests.conftest import write_text

HEADER = "id,first_name,last_name,email,phone,birth_date,street,zip\n"
CRM = {
    "entity": "customer", "path": "crm/*.csv", "record_id": "id", "phone_region": "NL",
    "fields": {"first_name": "first_name", "last_name": "last_name", "email": "email", "phone": "phone",
               "birth_date": "birth_date", "street": "street", "postcode": "zip"},
}


@pytest.fixture
def links(tmp_path, warehouse, write_config):
    """Load CSV rows as one customer source and return the linked id pairs with their rules."""

    def run(rows: list[str], rules: list[MatchRule] | None = None, max_records_per_key: int = 50) -> dict:
        write_text(tmp_path / "crm/crm.csv", HEADER + "\n".join(rows) + "\n")
        config = write_config({"crm": CRM})
        load_raw_source(warehouse, "crm", config.sources["crm"], landed_files(config.resolve("crm/*.csv")))
        build_source_lookup(warehouse, config)
        build_identity_graph(warehouse, rules or default_rules([]), max_records_per_key)
        pairs = warehouse.execute("SELECT record_id_a, record_id_b, rule FROM identity.identity_graph").fetchall()
        return {tuple(sorted((a, b))): rule for a, b, rule in pairs}

    return run


def test_records_with_the_same_email_and_first_name_are_linked(links):
    found = links(["1,Jan,Jansen,jan.jansen@ziggo.nl,,,,", "2,jan,JANSEN, Jan.Jansen@Ziggo.nl ,,,,"])
    assert found == {("1", "2"): "email_and_first_name"}


def test_a_nickname_counts_as_the_same_first_name(links):
    found = links(["1,Robert,Smith,rob@mail.co.uk,,,,", "2,Bob,Smith,rob@mail.co.uk,,,,"])
    assert found == {("1", "2"): "email_and_first_name"}


def test_a_phone_without_country_code_meets_the_international_form(links):
    found = links(["1,Anna,Bakker,,+31 6 11223344,,,", "2,Anna,Bakker,,0611223344,,,"])
    assert found == {("1", "2"): "phone_and_first_name"}


def test_a_household_sharing_an_inbox_stays_apart(links):
    found = links([
        "1,Piet,de Boer,familie.deboer@kpnmail.nl,,1970-01-01,,",
        "2,Marja,de Boer,familie.deboer@kpnmail.nl,,1972-05-05,,",
        "3,Sanne,de Boer,familie.deboer@kpnmail.nl,,2001-09-09,,",
    ])
    assert found == {}


def test_twins_with_similar_names_and_their_own_phones_stay_apart(links):
    found = links([
        "1,Anna,Visser,anna.visser@gmail.com,0611111222,1990-03-03,Kerkstraat 5,1234 AB",
        "2,Anne,Visser,anne.visser@gmail.com,0622222333,1990-03-03,Kerkstraat 5,1234 AB",
    ])
    assert found == {}


def test_the_same_person_at_the_same_address_with_a_typo_is_linked(links):
    found = links([
        "1,Jacqueline,Malinauskas,,,1984-08-08,Main Street 4,4878",
        "2,Jacquline,Malinauskas,,,1984-08-08,Main Street 4,4878",
    ])
    assert ("1", "2") in found


def test_a_conflicting_birth_date_blocks_an_email_link(links):
    found = links(["1,Tom,Smit,t.smit@gmail.com,,1980-01-01,,", "2,Tom,Smit,t.smit@gmail.com,,1999-12-31,,"])
    assert found == {}


def test_a_placeholder_email_links_nobody(links):
    found = links([f"{i},Jan,Jansen,test@test.com,,,," for i in range(1, 4)])
    assert found == {}


def test_a_key_shared_by_more_records_than_the_limit_links_nothing(links):
    rows = [f"{i},Kim,Peters,shared.inbox@company.nl,,,," for i in range(1, 8)]
    assert links(rows, max_records_per_key=6) == {}


def test_rules_are_configurable_and_each_link_carries_the_first_rule_that_made_it(links):
    rules = [
        MatchRule(name="same_last_name_and_birth_date", exact=["last_name", "birth_date"]),
        MatchRule(name="same_email", exact=["email"]),
    ]
    found = links(["1,Ann,Lee,ann@lee.org,,1990-01-01,,", "2,Anne,Lee,ann@lee.org,,1990-01-01,,", "3,Bo,Chan,ann@lee.org,,,,"], rules)
    assert found == {("1", "2"): "same_last_name_and_birth_date", ("1", "3"): "same_email", ("2", "3"): "same_email"}
