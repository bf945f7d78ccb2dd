"""Match rules: who is linked, who is kept apart, and why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdm_assets.config import BUNDLED_CONFIG, ConfigError, parse_config
from cdm_assets.domain.identity.default_rules import default_rules
from cdm_assets.domain.identity.match_rules import build_identity_graph
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.plan import MatchRule
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets_tests.conftest import write_text
from cdm_assets_tests.plans import entity_of

HEADER = "id,first_name,last_name,email,phone,birth_date,street,zip\n"
CRM = {
    "entity": "customer",
    "path": "crm/*.csv",
    "record_id": "id",
    "phone_region": "NL",
    "fields": {
        "first_name": "first_name",
        "last_name": "last_name",
        "email": "email",
        "phone": "phone",
        "birth_date": "birth_date",
        "street": "street",
        "postcode": "zip",
    },
}


@pytest.fixture
def links(tmp_path, warehouse, write_config):
    """Load CSV rows as one customer source and return the linked id pairs with their rules.

    With `cards`, each row ends in a loyalty card number (identifier `loyalty_card`).
    """

    def run(
        rows: list[str], rules: list[MatchRule] | None = None, max_records_per_key: int = 50, cards: bool = False
    ) -> dict:
        header = HEADER.replace("\n", ",card\n") if cards else HEADER
        write_text(tmp_path / "crm/crm.csv", header + "\n".join(rows) + "\n")
        config = write_config({"crm": {**CRM, "identifiers": {"loyalty_card": "card"}} if cards else CRM})
        customers = entity_of(config)
        load_raw_source(warehouse, "crm", customers.sources["crm"], landed_files(config.resolve("crm/*.csv")))
        build_source_lookup(warehouse, customers)
        identifiers = ["loyalty_card"] if cards else []
        build_identity_graph(warehouse, rules or default_rules(identifiers), max_records_per_key, customers.tables)
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
    found = links(
        [
            "1,Piet,de Boer,familie.deboer@kpnmail.nl,,1970-01-01,,",
            "2,Marja,de Boer,familie.deboer@kpnmail.nl,,1972-05-05,,",
            "3,Sanne,de Boer,familie.deboer@kpnmail.nl,,2001-09-09,,",
        ]
    )
    assert found == {}


def test_twins_with_similar_names_and_their_own_phones_stay_apart(links):
    found = links(
        [
            "1,Anna,Visser,anna.visser@gmail.com,0611111222,1990-03-03,Kerkstraat 5,1234 AB",
            "2,Anne,Visser,anne.visser@gmail.com,0622222333,1990-03-03,Kerkstraat 5,1234 AB",
        ]
    )
    assert found == {}


def test_the_same_person_at_the_same_address_with_a_typo_is_linked(links):
    found = links(
        [
            "1,Jacqueline,Malinauskas,,,1984-08-08,Main Street 4,4878",
            "2,Jacquline,Malinauskas,,,1984-08-08,Main Street 4,4878",
        ]
    )
    assert ("1", "2") in found


def test_a_duplicate_with_typos_in_both_names_at_the_same_birth_date_and_address_is_linked(links):
    found = links(
        [
            "1,Jacqueline,Malinauskas,,,1984-08-08,Main Street 4,4878",
            "2,Jacquline,Maliauskas,,,1984-08-08,Main Street 4,4878",
        ]
    )
    assert found == {("1", "2"): "birth_date_address_and_similar_names"}


def test_twins_with_similar_names_at_one_address_stay_apart_also_with_a_typo_in_a_last_name(links):
    found = links(
        [
            "1,Sara,Jansen,sara.jansen@gmail.com,0611111222,1990-03-03,Kerkstraat 5,1234 AB",
            "2,Sarah,Jansne,sarah.jansen@ziggo.nl,0622222333,1990-03-03,Kerkstraat 5,1234 AB",
            "3,Sarah,Jansne,,,1990-03-03,Kerkstraat 5,1234 AB",  # no phone, no email: pairs with both twins
        ]
    )
    assert found == {("2", "3"): "name_and_birth_date"}  # Sara's link to record 3 is cut


def test_the_same_full_name_in_one_postcode_links_a_record_without_house_number(links):
    found = links(
        [
            "1,Jan,de Vries,,,1971-06-01,Kerkstraat 5,1234 AB",
            "2,Jan,de Vries,,,,Kerkstraat,1234AB",
        ]
    )
    assert found == {("1", "2"): "full_name_and_postcode"}


def test_a_father_and_son_of_one_name_at_one_address_stay_apart(links):
    found = links(
        [
            "1,Jan,de Vries,,,1951-06-01,Kerkstraat 5,1234 AB",
            "2,Jan,de Vries,,,1979-11-23,Kerkstraat 5,1234 AB",
        ]
    )
    assert found == {}


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
    found = links(
        ["1,Ann,Lee,ann@lee.org,,1990-01-01,,", "2,Anne,Lee,ann@lee.org,,1990-01-01,,", "3,Bo,Chan,ann@lee.org,,,,"],
        rules,
    )
    assert found == {("1", "2"): "same_last_name_and_birth_date", ("1", "3"): "same_email", ("2", "3"): "same_email"}


def test_a_placeholder_phone_shared_by_many_records_cannot_contradict(links):
    strangers = [f"{i},Kim{i},Peters{i},,0612345678,,," for i in range(10, 15)]
    found = links(
        [
            "1,Jan,Jansen,jan.jansen@ziggo.nl,0612345678,,,",
            "2,Jan,Jansen,jan.jansen@ziggo.nl,0687654321,,,",
            *strangers,
        ],
        max_records_per_key=4,
    )
    assert found == {("1", "2"): "email_and_first_name"}


def test_a_common_last_name_still_blocks_with_a_birth_date(links):
    # "Jansen" is held by more records than max_records_per_key; only
    # placeholder-prone keys (email, phone, address, identifiers) count alone
    others = [f"{i},Piet,Jansen,,,19{i}-01-01,," for i in range(50, 55)]
    found = links(["1,Jan,Jansen,,,1980-05-05,,", "2,Jan,Jansen,,,1980-05-05,,", *others], max_records_per_key=4)
    assert found == {("1", "2"): "name_and_birth_date"}


def test_an_email_shared_by_people_with_different_last_names_links_nobody(links):
    found = links(
        [
            "1,Lisa,Baxter,lisa26@gmail.com,,,,",
            "2,Lisa,Smith,lisa26@gmail.com,,,,",
            "3,Lisa,,lisa26@gmail.com,,,,",  # whose? the inbox has two last names
        ]
    )
    assert found == {}


def test_a_record_without_a_last_name_joins_its_first_name_in_a_household_inbox(links):
    found = links(
        [
            "1,Piet,de Boer,familie.deboer@kpnmail.nl,,1970-01-01,,",
            "2,Marja,de Boer,familie.deboer@kpnmail.nl,,1972-05-05,,",
            "3,Marja,,familie.deboer@kpnmail.nl,,,,",
        ]
    )
    assert found == {("2", "3"): "email_and_first_name"}


def test_twins_joined_only_through_a_fuzzy_name_are_split_where_their_phones_conflict(links):
    found = links(
        [
            "1,Sara,Jansen,familie.jansen@ziggo.nl,0611111222,1990-03-03,,",
            "2,Sarah,Jansen,familie.jansen@ziggo.nl,0622222333,1990-03-03,,",
            "3,Sarah,Jansen,familie.jansen@ziggo.nl,,1990-03-03,,",  # no phone: pairs with both twins
        ]
    )
    assert found == {("2", "3"): "email_and_first_name"}


def test_a_typo_in_the_first_name_links_on_the_same_phone(links):
    found = links(["1,Didier,Deryck,,+32 485 74 13 62,,,", "2,Ddier,Deryck,,0032485741362,,,"])
    assert found == {("1", "2"): "phone_and_first_name"}


def test_a_double_first_name_written_without_hyphen_matches_when_split_elsewhere(links):
    found = links(["1,Heinz Dieter,Stiffel,,0612340987,,,", "2,Heinz,Dieter Stiffel,,0612340987,,,"])
    assert found == {("1", "2"): "phone_and_first_name"}


def test_first_and_last_name_swapped_with_a_typo_still_match(links):
    found = links(["1,Benny,Vanparys,,0612340987,,,", "2,Vanparys,Bneny,,0612340987,,,"])
    assert found == {("1", "2"): "phone_and_first_name"}


def test_a_first_name_only_record_matches_a_swapped_record_on_a_private_email(links):
    found = links(["1,Masson,Michele,michele.masson@free.fr,,,,", "2,Michele,,michele.masson@free.fr,,,,"])
    assert found == {("1", "2"): "email_and_first_name"}


def test_max_edits_links_values_one_typo_apart(links):
    rules = [MatchRule(name="phone_typo", exact=["last_name", "birth_date"], max_edits={"phone": 1})]
    found = links(
        [
            "1,Ann,Lee,,0612345670,1990-01-01,,",
            "2,Ann,Lee,,0612345607,1990-01-01,,",  # two digits swapped: one edit
            "3,Ann,Lee,,0698765432,1990-01-01,,",
        ],
        rules,
    )
    assert found == {("1", "2"): "phone_typo"}


def test_max_edits_takes_neighbouring_numbers_for_two_customers_not_a_typo(links):
    rules = [MatchRule(name="phone_typo", exact=["last_name", "birth_date"], max_edits={"phone": 2})]
    found = links(
        [
            "1,Ann,Lee,,0612345619,1990-01-01,,",
            "2,Ann,Lee,,0612345620,1990-01-01,,",  # the next line of a family plan: two edits, one apart
            "3,Ann,Lee,,0612345618,1990-01-01,,",  # one edit, in the last digit
        ],
        rules,
    )
    assert found == {}


def test_max_edits_compares_birth_dates_as_written(links):
    rules = [MatchRule(name="birth_date_typo", exact=["last_name", "first_name"], max_edits={"birth_date": 1})]
    found = links(["1,Ann,Lee,,,1990-01-12,,", "2,Ann,Lee,,,1990-01-21,,", "3,Ann,Lee,,,1990-07-30,,"], rules)
    assert found == {("1", "2"): "birth_date_typo"}


def test_a_card_number_with_two_digits_swapped_at_the_same_address_is_linked(links):
    found = links(
        [
            "1,Madeline,Boyes,,,1976-05-22,Main Street 4,5062,L00012345",
            "2,Naomi,Boyes,,,1976-05-22,Main Street 4,5062,L00021345",  # first name replaced as well
        ],
        cards=True,
    )
    assert found == {("1", "2"): "loyalty_card_typo_and_address"}


def test_a_card_typo_with_the_same_birth_date_and_first_name_is_linked_after_a_move(links):
    found = links(
        [
            "1,Samuel,Goldsworthy,,,1927-06-07,Main Street 28,4055,L00061165",
            "2,Samuel,Hobson,,,1927-06-07,High Street 3,4005,L00061265",
        ],
        cards=True,
    )
    assert found == {("1", "2"): "loyalty_card_typo_birth_date_and_first_name"}


def test_twins_with_sequential_loyalty_cards_stay_apart(links):
    found = links(
        [
            "1,Tom,Visser,,,2004-02-29,Kerkstraat 5,1234 AB,L00000049",
            "2,Tim,Visser,,,2004-02-29,Kerkstraat 5,1234 AB,L00000050",
            "3,Lotte,Visser,,,1975-08-12,Kerkstraat 5,1234 AB,L00000051",
            "4,Anna,Visser,,,2004-02-29,Kerkstraat 5,1234 AB,L00000052",  # a triplet: one apart in the last digit
        ],
        cards=True,
    )
    assert found == {}


def test_family_cards_one_typo_apart_stay_apart_where_their_phones_differ(links):
    found = links(
        [
            "1,Piet,de Boer,,0611111222,1970-01-01,Kerkstraat 5,1234 AB,L00031270",
            "2,Marja,de Boer,,0622222333,1972-05-05,Kerkstraat 5,1234 AB,L00031720",  # a later card, digits swapped
        ],
        cards=True,
    )
    assert found == {}


@pytest.mark.parametrize(
    ("max_edits", "message"),
    [
        ({"shoe_size": 1}, "unknown max_edits key 'shoe_size'"),
        ({"identifier:passport": 1}, "'identifier:passport' names no identifier declared"),
        ({"phone": 0}, "max_edits for 'phone' must be 1, 2 or 3"),
    ],
)
def test_a_bad_max_edits_is_a_config_error_naming_the_rule(max_edits, message):
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    document["identity"]["rules"] = [{"name": "typo", "exact": ["birth_date"], "max_edits": max_edits}]
    with pytest.raises(ConfigError) as raised:
        parse_config(document, Path("/configs/cdm.yaml"))
    assert message in str(raised.value) and "identity.rules.0" in str(raised.value)
