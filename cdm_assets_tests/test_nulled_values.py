"""Nothing dropped silently: every value the source lookup leaves NULL is counted by reason,
and the plausible birth-date window is configurable, by default every real past date."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest
import yaml

from cdm_assets.config import BUNDLED_CONFIG, ConfigError, parse_config
from cdm_assets.definitions import build_definitions
from cdm_assets.domain.identity.source_lookup import build_source_lookup_counting_nulls
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets_tests.conftest import materialization_metadata, materialize_all, write_text
from cdm_assets_tests.plans import entity_of
from cdm_assets_tests.test_source_lookup import csv_text, customer_source

FIELDS = {
    "first_name": "first", "last_name": "last", "email": "email", "phone": "phone",
    "birth_date": "born", "postcode": "zip", "country": "country",
}  # fmt: skip
COLUMNS = ["id", "first", "last", "email", "phone", "born", "zip", "country"]


def record(id_: str, **values: str) -> dict[str, str]:
    """A crm row: `values` by column name (the columns of FIELDS and any other), the rest empty."""
    return {"id": id_, **values}


def crm_csv(rows: list[dict[str, str]]) -> str:
    columns = [*COLUMNS, *sorted({c for row in rows for c in row} - set(COLUMNS))]
    return csv_text(columns, [[row.get(column, "") for column in columns] for row in rows])


@pytest.fixture
def crm_lookup(tmp_path, warehouse, write_config):
    """Build the lookup of one customer source `crm` from `rows`; returns (lookup rows by id, counts
    as {(field, reason): values})."""

    def build(
        rows: list[dict], source: dict | None = None, fields: dict = FIELDS, **extra
    ) -> tuple[dict[str, dict], dict]:
        write_text(tmp_path / "landing/crm/crm.csv", crm_csv(rows))
        source = customer_source("crm", "id", fields, **{"phone_region": "NL", **(source or {})})
        config = write_config({"crm": source}, **extra)
        customers = entity_of(config)
        load_raw_source(warehouse, "crm", customers.sources["crm"], landed_files(config.resolve(source["path"])))
        built = build_source_lookup_counting_nulls(warehouse, customers)
        result = warehouse.execute(f"SELECT * FROM {customers.tables.lookup.sql}")
        names = [d[0] for d in result.description]
        lookup = {row[names.index("source_record_id")]: dict(zip(names, row)) for row in result.fetchall()}
        assert {c.source for c in built.nulled} <= {"crm"}
        return lookup, {(c.field, c.reason): c.values for c in built.nulled}

    return build


# -- the birth-date window -------------------------------------------------------------------


def test_a_birth_date_in_1850_survives_standardisation_by_default(crm_lookup):
    lookup, counts = crm_lookup([record("1", first="Johanna", last="Visser", born="1850-03-04")])
    assert lookup["1"]["birth_date"] == date(1850, 3, 4)
    assert counts == {}


def test_a_birth_date_in_the_future_is_nulled_and_counted(crm_lookup):
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    lookup, counts = crm_lookup([record("1", born=tomorrow), record("2", born="1980-01-02")])
    assert (lookup["1"]["birth_date"], lookup["2"]["birth_date"]) == (None, date(1980, 1, 2))
    assert counts == {("birth_date", "outside plausible window"): 1}


def test_dates_outside_a_configured_window_and_unparseable_dates_are_counted_by_reason(crm_lookup):
    rows = [
        record("1", born="1850-03-04"),  # before the configured window
        record("2", born="2005-06-07"),  # after it
        record("3", born="1980-01-02"),
        record("4", born="1980-02-31"),  # no such day
        record("5", born="04/03/1850"),  # not the configured (ISO) format
        record("6", born="   "),  # blank: never a value
    ]
    window = {"birth_dates": {"earliest": "1900-01-01", "latest": "2000-12-31"}}
    lookup, counts = crm_lookup(rows, identity=window)
    assert [lookup[str(i)]["birth_date"] for i in range(1, 7)] == [None, None, date(1980, 1, 2), None, None, None]
    assert counts == {("birth_date", "outside plausible window"): 2, ("birth_date", "unparseable"): 2}


def test_a_typo_that_makes_no_calendar_date_is_nulled_but_keeps_its_digits_as_the_match_key(crm_lookup):
    rows = [
        record("1", born="1949-00-13"),  # month 0
        record("2", born="2001-12-64"),  # day 64
        record("3", born="1980-01-02"),
        record("4", born="0000-00-00"),  # a placeholder: year outside the window
        record("5", born="13.01.1949"),  # not the configured format's shape
        record("6", born="2999-01-02"),  # a real date outside the window: no key either
    ]
    lookup, counts = crm_lookup(rows)
    assert [lookup[str(i)]["birth_date"] for i in range(1, 7)] == [None, None, date(1980, 1, 2), None, None, None]
    assert [lookup[str(i)]["birth_date_key"] for i in range(1, 7)] == [
        "19490013",
        "20011264",
        "19800102",
        None,
        None,
        None,
    ]
    assert counts == {("birth_date", "unparseable"): 4, ("birth_date", "outside plausible window"): 1}


def test_the_birth_date_key_reads_the_configured_format(crm_lookup):
    rows = [record("1", born="31/13/1958"), record("2", born="4/3/1958")]
    lookup, _ = crm_lookup(rows, fields={**FIELDS, "birth_date": {"column": "born", "format": "%d/%m/%Y"}})
    assert (lookup["1"]["birth_date_key"], lookup["2"]["birth_date_key"]) == ("19581331", "19580304")
    assert lookup["2"]["birth_date"] == date(1958, 3, 4)


def test_the_default_window_refuses_year_one_placeholders_and_accepts_the_middle_ages(crm_lookup):
    lookup, counts = crm_lookup([record("1", born="0001-01-01"), record("2", born="1066-10-14")])
    assert (lookup["1"]["birth_date"], lookup["2"]["birth_date"]) == (None, date(1066, 10, 14))
    assert counts == {("birth_date", "outside plausible window"): 1}


def test_no_earliest_birth_date_means_no_lower_bound(crm_lookup):
    lookup, counts = crm_lookup([record("1", born="0001-01-01")], identity={"birth_dates": {"earliest": None}})
    assert lookup["1"]["birth_date"] == date(1, 1, 1)
    assert counts == {}


def test_a_window_that_ends_before_it_starts_is_refused_naming_the_key():
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    document["identity"]["birth_dates"] = {"earliest": "2000-01-01", "latest": "1990-01-01"}
    with pytest.raises(ConfigError, match=r"identity\.birth_dates.*after the latest"):
        parse_config(document, BUNDLED_CONFIG)


# -- other fields ----------------------------------------------------------------------------


def test_placeholder_and_invalid_emails_are_counted_apart(crm_lookup):
    rows = [
        record("1", email="test@test.com"),
        record("2", email="jan@example.com"),
        record("3", email="not an email"),
        record("4", email="ann@ziggo.nl"),
    ]
    lookup, counts = crm_lookup(rows)
    assert lookup["1"]["email"] == "test@test.com" and lookup["1"]["email_key"] is None  # shown, never matched
    assert counts == {("email_key", "placeholder"): 2, ("email", "invalid"): 1}


def test_placeholder_and_unparseable_phones_are_counted_apart(crm_lookup):
    rows = [
        record("1", phone="0123456789"),  # a run
        record("2", phone="06-11111111"),  # subscriber digits all the same
        record("3", phone="12345"),  # too short
        record("4", phone="call me"),
        record("5", phone="0000000000"),  # read as 00 + a calling code that does not exist
        record("6", phone="06-12345678"),
    ]
    lookup, counts = crm_lookup(rows)
    assert [lookup[str(i)]["phone_key"] for i in range(1, 7)] == [None] * 5 + ["612345678"]
    assert counts == {("phone", "placeholder"): 2, ("phone", "unparseable"): 3}


def test_a_phone_kept_only_as_a_key_is_counted_for_its_missing_e164_form(crm_lookup):
    lookup, counts = crm_lookup([record("1", phone="0612345678")], source={"phone_region": None})
    assert (lookup["1"]["phone"], lookup["1"]["phone_key"]) == (None, "612345678")
    assert counts == {("phone", "no region to read it in (key kept)"): 1}


def test_unknown_countries_keyless_names_postcodes_and_identifiers_are_counted(crm_lookup):
    rows = [
        record("1", first="123", last="Visser", zip="--", country="Atlantis", card=" - "),
        record("2", first="Jan", last="?", zip="1234 AB", country="Nederland", card="L-1"),
    ]
    lookup, counts = crm_lookup(rows, source={"identifiers": {"loyalty_card": "card"}})
    assert lookup["1"]["country"] is None and lookup["2"]["country"] == "NL"
    assert counts == {
        ("first_name_key", "no letters"): 1,
        ("last_name_key", "no letters"): 1,
        ("postcode_key", "no letters or digits"): 1,
        ("country", "unknown"): 1,
        ("id_loyalty_card", "only separators"): 1,
    }


def test_blank_values_are_not_counted(crm_lookup):
    blank = record("1", first=" ", last=" ", email=" ", phone=" ", born=" ", zip=" ", country=" ")
    _, counts = crm_lookup([blank, record("2")])
    assert counts == {}


# -- through Dagster -----------------------------------------------------------------------


@pytest.fixture
def people(tmp_path):
    write_text(
        tmp_path / "landing/crm/crm.csv",
        crm_csv(
            [
                record("A1", first="Johanna", last="Visser", born="1850-03-04"),
                record("A2", first="Johanna", last="Visser", born="1850-03-04", email="test@test.com"),
                record("B1", first="Pieter", last="Smit", born="1985-06-07"),
                record("B2", first="Pieter", last="Smit", born="1985-06-07", email="test@test.com"),
                record("C1", first="Kees", last="Bakker", born="2999-01-01", phone="06-11111111"),
            ]
        ),
    )
    return tmp_path


def test_a_birth_date_in_1850_links_records_as_a_modern_one_does(people, write_config):
    assert materialize_all(build_definitions(write_config({"crm": customer_source("crm", "id", FIELDS)}))).success
    with duckdb.connect(str(people / "warehouse.duckdb"), read_only=True) as con:
        ids = dict(con.execute("SELECT source_record_id, customer_id FROM identity.customer_id_map").fetchall())
        rules = dict(
            con.execute(
                "SELECT least(record_id_a, record_id_b), rule FROM identity.identity_graph ORDER BY 1"
            ).fetchall()
        )
    assert ids["A1"] == ids["A2"] and ids["B1"] == ids["B2"] and ids["A1"] != ids["B1"]
    assert rules["A1"] == rules["B1"]  # linked the same way


def test_nulled_value_counts_appear_in_the_source_lookup_metadata(people, write_config):
    result = materialize_all(build_definitions(write_config({"crm": customer_source("crm", "id", FIELDS)})))
    assert result.success
    metadata = materialization_metadata(result)["identity/source_lookup"]
    assert metadata["values_nulled"].value == 4
    table = [record.data for record in metadata["nulled_values"].records]
    assert table == [
        {"source": "crm", "field": "email_key", "reason": "placeholder", "values": 2},
        {"source": "crm", "field": "phone", "reason": "placeholder", "values": 1},
        {"source": "crm", "field": "birth_date", "reason": "outside plausible window", "values": 1},
    ]
    # counts only: none of the values themselves
    assert not {"test@test.com", "06-11111111", "2999-01-01"} & {str(v) for row in table for v in row.values()}
