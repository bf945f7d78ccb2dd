"""identity.source_lookup: every customer record standardised, with the keys match rules compare."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.identity.lookup_changes import changes_table, current_build
from cdm_assets.domain.identity.reference_data import nickname_roots
from cdm_assets.domain.identity.source_lookup import build_source_lookup, lookup_columns
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets_tests.conftest import write_text
from cdm_assets_tests.plans import customer_tables

SOURCE_LOOKUP = customer_tables().lookup


def customer_source(name: str, record_id: str, fields: dict, **extra) -> dict:
    return {"entity": "customer", "path": f"landing/{name}/*.csv", "record_id": record_id, "fields": fields, **extra}


def csv_text(header: list[str], rows: list[list], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def build(warehouse, config) -> list[dict]:
    """Load every source's landed files into raw tables, build the lookup, return its rows."""
    plan = resolve_plan(config)
    for name, source in plan.sources.items():
        load_raw_source(warehouse, name, source, landed_files(Path(source.path)))
    count = build_source_lookup(warehouse, plan.entities["customer"])
    result = warehouse.execute(f"SELECT * FROM {SOURCE_LOOKUP.sql} ORDER BY record_key")
    columns = [d[0] for d in result.description]
    rows = [dict(zip(columns, row)) for row in result.fetchall()]
    assert count == len(rows)
    return rows


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["source_record_id"]: row for row in rows}


@pytest.fixture
def lookup_of(tmp_path, warehouse, write_config):
    """Build the lookup of one customer source `crm`: `fields` maps canonical fields to the
    columns given in `columns` (column → values, one per record); rows come back in that order."""

    def build_one(fields: dict, columns: dict[str, list], **settings) -> list[dict]:
        values = list(zip(*columns.values()))
        # zero-padded ids keep record_key order equal to the order of the values
        rows = [[f"{i:05d}", *row] for i, row in enumerate(values)]
        write_text(tmp_path / "landing/crm/crm.csv", csv_text(["id", *columns], rows))
        return build(warehouse, write_config({"crm": customer_source("crm", "id", fields, **settings)}))

    return build_one


# -- records and columns ---------------------------------------------------------------


def test_every_customer_record_of_every_source_appears_once(tmp_path, warehouse, write_config):
    webshop = [["W2", "Ann Lee"], ["W1", "Bo Li"]]
    crm = [[" C1 ", "Ann"], ["C10", "Cy"], ["C2", "Di"]]
    write_text(tmp_path / "landing/webshop/a.csv", csv_text(["account_id", "full_name"], webshop))
    write_text(tmp_path / "landing/crm/a.csv", csv_text(["crm_id", "first_name"], crm))
    orders = csv_text(["order_id", "account_id", "amount", "ts"], [["O1", "W1", "1", "x"]])
    write_text(tmp_path / "landing/orders/a.csv", orders)
    config = write_config(
        {
            "webshop": customer_source("webshop", "account_id", {"full_name": "full_name"}, precedence=2),
            "crm": customer_source("crm", "crm_id", {"first_name": "first_name"}, precedence=1),
            "orders": {
                "entity": "transaction",
                "path": "landing/orders/*.csv",
                "record_id": "order_id",
                "customer": {"source": "webshop", "column": "account_id"},
                "fields": {"amount": "amount", "occurred_at": "ts"},
            },
        }
    )
    rows = build(warehouse, config)
    # dense record keys in (source, source_record_id) order; ids trimmed text; no transactions
    assert [(r["record_key"], r["source"], r["source_record_id"], r["precedence"]) for r in rows] == [
        (0, "crm", "C1", 1),
        (1, "crm", "C10", 1),
        (2, "crm", "C2", 1),
        (3, "webshop", "W1", 2),
        (4, "webshop", "W2", 2),
    ]


def test_lookup_has_the_contract_columns_and_types(lookup_of, warehouse):
    fields = {"first_name": "fn", "birth_date": "bd"}
    lookup_of(fields, {"fn": ["Ann"], "bd": ["1980-01-02"], "card": ["K1"]}, identifiers={"loyalty_card": "card"})
    described = dict((row[0], row[1]) for row in warehouse.execute(f"DESCRIBE {SOURCE_LOOKUP.sql}").fetchall())
    assert list(described) == lookup_columns(["loyalty_card"])
    assert described["record_key"] == "BIGINT"
    assert described["precedence"] == "INTEGER"
    assert described["birth_date"] == "DATE"
    assert {described[c] for c in described if c not in ("record_key", "precedence", "birth_date")} == {"VARCHAR"}


def test_identifiers_become_id_columns_empty_for_sources_without_them(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/loyalty/a.csv", csv_text(["kaart", "naam"], [["K1", "Jan"]]))
    write_text(tmp_path / "landing/crm/a.csv", csv_text(["id", "fn", "nid"], [["C1", "Jan", " 123 "]]))
    config = write_config(
        {
            "loyalty": customer_source(
                "loyalty", "kaart", {"first_name": "naam"}, identifiers={"loyalty_card": "kaart"}
            ),
            "crm": customer_source("crm", "id", {"first_name": "fn"}, identifiers={"national_id": "nid"}),
        }
    )
    rows = by_id(build(warehouse, config))
    assert (rows["K1"]["id_loyalty_card"], rows["K1"]["id_national_id"]) == ("K1", None)
    assert (rows["C1"]["id_loyalty_card"], rows["C1"]["id_national_id"]) == (None, "123")


def test_identifiers_compare_without_case_spaces_dashes_dots_and_slashes(tmp_path, warehouse, write_config):
    rows = [["C1", "nl-12 345.678/9"], ["C2", " NL12345678\u00a09 "], ["C3", " - "], ["C4", "K_1"]]
    write_text(tmp_path / "landing/crm/a.csv", csv_text(["id", "vat"], rows))
    config = write_config({"crm": customer_source("crm", "id", {}, identifiers={"vat_number": "vat"})})
    ids = {id_: row["id_vat_number"] for id_, row in by_id(build(warehouse, config)).items()}
    assert ids == {"C1": "NL123456789", "C2": "NL123456789", "C3": None, "C4": "K_1"}


def test_rebuilding_replaces_the_lookup_and_leaves_no_staging_tables(tmp_path, warehouse, write_config):
    path = write_text(tmp_path / "landing/crm/a.csv", csv_text(["id", "fn"], [["C1", "Ann"], ["C2", "Bo"]]))
    config = write_config({"crm": customer_source("crm", "id", {"first_name": "fn"})})
    assert len(build(warehouse, config)) == 2
    path.write_text(csv_text(["id", "fn"], [["C3", "Cy"]]))
    assert [r["source_record_id"] for r in build(warehouse, config)] == ["C3"]
    leftovers = warehouse.execute("SELECT table_name FROM information_schema.tables WHERE table_name LIKE '_staging%'")
    assert leftovers.fetchall() == []


def test_a_rebuild_keeps_each_records_key_and_records_what_it_added_changed_and_removed(
    tmp_path, warehouse, write_config
):
    path = write_text(
        tmp_path / "landing/crm/a.csv", csv_text(["id", "fn"], [["C1", "Ann"], ["C2", "Bo"], ["C3", "Cy"]])
    )
    config = write_config({"crm": customer_source("crm", "id", {"first_name": "fn"})})
    first = {r["source_record_id"]: r["record_key"] for r in build(warehouse, config)}
    assert first == {"C1": 0, "C2": 1, "C3": 2}
    assert current_build(warehouse, SOURCE_LOOKUP).complete is False  # nothing to compare a first build with
    # C1 stays, C2 changes its name, C3 goes, C0 (sorting first) and C4 arrive
    path.write_text(csv_text(["id", "fn"], [["C0", "Dee"], ["C1", "Ann"], ["C2", "Bob"], ["C4", "Eve"]]))
    second = {r["source_record_id"]: r["record_key"] for r in build(warehouse, config)}
    assert second == {"C1": 0, "C2": 1, "C0": 3, "C4": 4}  # C3's key 2 is not handed out again
    build_now = current_build(warehouse, SOURCE_LOOKUP)
    assert (build_now.added, build_now.changed, build_now.removed) == (2, 1, 1)
    changes = warehouse.execute(
        f"SELECT side, source_record_id, first_name FROM {changes_table(SOURCE_LOOKUP).sql} ORDER BY 2, 1"
    ).fetchall()
    assert changes == [
        ("new", "C0", "Dee"), ("new", "C2", "Bob"), ("old", "C2", "Bo"), ("old", "C3", "Cy"), ("new", "C4", "Eve"),
    ]  # fmt: skip
    # the same input again changes nothing, and the next build follows on from this one
    assert {r["source_record_id"]: r["record_key"] for r in build(warehouse, config)} == second
    again = current_build(warehouse, SOURCE_LOOKUP)
    assert (again.added, again.changed, again.removed, again.previous_build_id) == (0, 0, 0, build_now.build_id)
    # a removed record's key stays retired even when the record with the largest key goes
    path.write_text(csv_text(["id", "fn"], [["C1", "Ann"], ["C5", "Fay"]]))
    assert {r["source_record_id"]: r["record_key"] for r in build(warehouse, config)} == {"C1": 0, "C5": 5}


def test_a_customer_source_not_loaded_yet_is_named_in_the_error(warehouse, write_config):
    config = write_config({"crm": customer_source("crm", "id", {"first_name": "fn"})})
    with pytest.raises(LookupError, match=r"raw\.crm"):
        build_source_lookup(warehouse, resolve_plan(config).entities["customer"])


def test_parquet_columns_with_native_types_are_standardised(tmp_path, warehouse, write_config):
    path = tmp_path / "landing/crm/a.parquet"
    path.parent.mkdir(parents=True)
    table = pa.table(
        {
            "id": pa.array([7, 8], pa.int64()),
            "born": pa.array([date(1980, 5, 17), date(1, 1, 1)], pa.date32()),
            "phone": pa.array([31612345678.0, None], pa.float64()),
        }
    )
    pq.write_table(table, path)
    source = customer_source("crm", "id", {"birth_date": "born", "phone": "phone"})
    source["path"] = "landing/crm/*.parquet"
    rows = by_id(build(warehouse, write_config({"crm": source})))
    assert (rows["7"]["birth_date"], rows["7"]["phone_key"]) == (date(1980, 5, 17), "31612345678")
    assert rows["8"]["birth_date"] is None  # a placeholder year, before the plausible window


# -- names ---------------------------------------------------------------------------------


def test_last_comma_first_is_split_into_first_and_last_name(lookup_of):
    names = ["Jansen, Piet", "Berg, Jan van der", "de Vries,  Anna Maria", "Smith, Mr John"]
    rows = lookup_of({"full_name": "name"}, {"name": names})
    assert [(r["first_name"], r["last_name"]) for r in rows] == [
        ("Piet", "Jansen"),
        ("Jan", "van der Berg"),
        ("Anna Maria", "de Vries"),
        ("John", "Smith"),
    ]


def test_full_name_first_word_is_the_first_name_and_the_rest_the_last_name(lookup_of):
    names = ["Jan van der Berg", "Dhr. Pieter de Vries", "Mevr. Anna  Bakker-de Jong", "Madonna", "Dr. Ludwig Mises"]
    rows = lookup_of({"full_name": "name"}, {"name": names})
    assert [(r["first_name"], r["last_name"]) for r in rows] == [
        ("Jan", "van der Berg"),
        ("Pieter", "de Vries"),
        ("Anna", "Bakker-de Jong"),
        ("Madonna", None),
        ("Ludwig", "Mises"),
    ]


def test_mapped_first_and_last_names_are_used_and_sensibly_capitalised(lookup_of):
    fields = {"first_name": "fn", "last_name": "ln", "full_name": "full"}
    columns = {
        "fn": ["  JAN ", "sean", "Élodie", "Ronald", "jean-pierre", ""],
        "ln": ["VAN DER BERG", "o'brien", "de la Fontaine", "McDonald", "LE PEN", ""],
        "full": ["Ignored Name", "", "", "", "", "Kees de Boer"],  # fills in only where typed names are empty
    }
    rows = lookup_of(fields, columns)
    assert [(r["first_name"], r["last_name"]) for r in rows] == [
        ("Jan", "van der Berg"),
        ("Sean", "O'Brien"),
        ("Élodie", "de la Fontaine"),
        ("Ronald", "McDonald"),
        ("Jean-Pierre", "Le Pen"),
        ("Kees", "de Boer"),
    ]


def test_name_keys_fold_accents_and_last_name_core_drops_leading_particles(lookup_of):
    columns = {
        "fn": ["Élodie", "Jean-Pierre", "Søren", "Zoë", "Björn"],
        "ln": ["van der Berg", "d'Artagnan", "Müller-Lüdenscheidt", "De", "'t Hart"],
    }
    rows = lookup_of({"first_name": "fn", "last_name": "ln"}, columns)
    assert [(r["first_name_key"], r["last_name_key"], r["last_name_core"]) for r in rows] == [
        ("elodie", "vanderberg", "berg"),
        ("jeanpierre", "dartagnan", "artagnan"),
        ("soren", "mullerludenscheidt", "mullerludenscheidt"),
        ("zoe", "de", "de"),
        ("bjorn", "thart", "hart"),
    ]


def test_nicknames_share_a_first_name_root(lookup_of):
    groups = [
        ["Bob", "Rob", "Robbie", "Robert"],
        ["Liz", "Beth", "Elisabeth", "Elizabeth"],
        ["Jan", "Hans", "Johannes", "John"],
        ["Kees", "Cornelis"],
        ["Henk", "Hendrik", "Heinrich"],
    ]
    names = [name for group in groups for name in group]
    rows = lookup_of({"first_name": "fn"}, {"fn": names})
    roots = {r["first_name"]: r["first_name_root"] for r in rows}
    for group in groups:
        assert len({roots[name] for name in group}) == 1, group
    assert roots["Bob"] == "robert" and roots["Liz"] == "elizabeth"
    # a name without nicknames is its own root; for two given names the first one counts
    more = lookup_of({"first_name": "fn"}, {"fn": ["Anouk", "Jan Peter"]})
    assert [(r["first_name_key"], r["first_name_root"]) for r in more] == [
        ("anouk", "anouk"),
        ("janpeter", "johannes"),
    ]


def test_nickname_table_is_large_and_each_nickname_has_one_root():
    pairs = nickname_roots()  # raises when a nickname has two roots
    nicknames = [name for name, root in pairs if name != root]
    assert len(nicknames) >= 80


# -- emails --------------------------------------------------------------------------------


def test_email_is_trimmed_lower_cased_and_empty_unless_it_looks_like_one(lookup_of):
    emails = ["  Jan.Jansen@Gmail.COM ", "mailto:ann@ziggo.nl", "not an email", "jan@", "a b@c.nl", "x@localhost"]
    rows = lookup_of({"email": "em"}, {"em": emails})
    assert [r["email"] for r in rows] == ["jan.jansen@gmail.com", "ann@ziggo.nl", None, None, None, None]
    assert [r["email_key"] for r in rows] == ["jan.jansen@gmail.com", "ann@ziggo.nl", None, None, None, None]


def test_placeholder_email_has_no_match_key(lookup_of):
    placeholders = [
        "test@test.com",
        "noemail@hotmail.com",
        "no@email.nl",
        "none@none.com",
        "jan@example.com",
        "info@example.org",
        "aaaa@gmail.com",
        "x@x.nl",
        "geen-email@ziggo.nl",
        "someone@shop.invalid",
    ]
    rows = lookup_of({"email": "em"}, {"em": placeholders})
    assert [r["email"] for r in rows] == placeholders  # still shown ...
    assert [r["email_key"] for r in rows] == [None] * len(placeholders)  # ... but never matched


# -- phones --------------------------------------------------------------------------------


def test_phone_formats_of_one_number_share_e164_and_key(lookup_of):
    formats = [
        "+31 6 12345678",
        "0031612345678",
        "06-12345678",
        "+31 (0)6 1234 5678",
        "31612345678",
        "06.12.34.56.78",
        "06 12 34 56 78 ext. 12",
    ]
    rows = lookup_of({"phone": "ph"}, {"ph": formats}, phone_region="NL")
    assert {(r["phone"], r["phone_key"]) for r in rows} == {("+31612345678", "612345678")}


def test_phone_without_region_still_gets_a_national_key(lookup_of):
    rows = lookup_of({"phone": "ph"}, {"ph": ["0612345678", "+31 6 12345678", "612345678"]})
    assert [(r["phone"], r["phone_key"]) for r in rows] == [
        (None, "612345678"),  # no country and no phone_region: no E.164, but the same key
        ("+31612345678", "612345678"),
        (None, "612345678"),
    ]


def test_national_phone_uses_the_records_country_before_the_sources_region(lookup_of):
    columns = {"ph": ["020 7946 0018", "020 123 4567", "(212) 555-0123"], "co": ["United Kingdom", "", "USA"]}
    rows = lookup_of({"phone": "ph", "country": "co"}, columns, phone_region="NL")
    assert [r["phone"] for r in rows] == ["+442079460018", "+31201234567", "+12125550123"]


def test_junk_phone_numbers_have_no_key(lookup_of):
    junk = ["0000000000", "1234567890", "06-11111111", "0123456789", "12345", "+31 6", "call me"]
    rows = lookup_of({"phone": "ph"}, {"ph": junk}, phone_region="NL")
    assert [(r["phone"], r["phone_key"]) for r in rows] == [(None, None)] * len(junk)


def varied_valid_numbers(region: str, per_kind: int = 10, seed: int = 11) -> list[str]:
    """Valid mobile and fixed-line numbers of `region`, written the ways people write them."""
    rng = random.Random(f"{seed}-{region}")
    typed = []
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(region, kind)
        national = str(example.national_number)
        found = 0
        while found < per_kind:
            digits = national[:-4] + "".join(rng.choice("0123456789") for _ in range(4))
            number = phonenumbers.parse(f"+{example.country_code}{digits}")
            if not phonenumbers.is_valid_number_for_region(number, region):
                continue
            found += 1
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            national_format = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            typed += [
                e164,  # +31612345678
                international,  # +31 6 12345678
                international.replace(" ", "-"),  # +31-6-12345678
                national_format,  # 06 12345678, (020) 123 4567, (212) 555-0123
                national_format.replace(" ", ""),
                national_format.replace(" ", "-"),
                ("011 " if region == "US" else "00") + e164[1:],  # 0031612345678
            ]
    return typed


def test_sql_e164_agrees_with_phonenumbers_on_valid_numbers(lookup_of):
    numbers = [(raw, region) for region in ("NL", "BE", "DE", "GB", "FR", "US") for raw in varied_valid_numbers(region)]
    assert len(numbers) >= 500
    # the record's country says which region a national number belongs to
    typed, regions = zip(*numbers)
    rows = lookup_of({"phone": "ph", "country": "co"}, {"ph": list(typed), "co": list(regions)})
    for (raw, region), row in zip(numbers, rows, strict=True):
        parsed = phonenumbers.parse(raw, region)
        assert row["phone"] == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), (raw, region)
        assert row["phone_key"] == phonenumbers.national_significant_number(parsed), (raw, region)


# -- dates -------------------------------------------------------------------------------------


def test_loyalty_dates_in_day_month_year_are_parsed(tmp_path, warehouse, write_config):
    tomorrow = (date.today() + timedelta(days=1)).strftime("%d/%m/%Y")
    write_text(
        tmp_path / "landing/loyalty/leden.csv",
        csv_text(
            ["kaartnummer", "voornaam", "geboortedatum"],
            [
                ["L1", "Jan", "31/12/1980"],
                ["L2", "Els", " 5/3/1975 "],
                ["L3", "Piet", "31/02/1980"],
                ["L4", "Kees", "01/01/1850"],
                ["L5", "Ans", tomorrow],
                ["L6", "Wim", "1980-12-31"],
            ],
            delimiter=";",
        ),
    )
    fields = {"first_name": "voornaam", "birth_date": {"column": "geboortedatum", "format": "%d/%m/%Y"}}
    source = customer_source("loyalty", "kaartnummer", fields, delimiter=";")
    rows = by_id(build(warehouse, write_config({"loyalty": source})))
    assert {key: row["birth_date"] for key, row in rows.items()} == {
        "L1": date(1980, 12, 31),
        "L2": date(1975, 3, 5),
        "L3": None,  # no such day
        "L4": date(1850, 1, 1),  # historical dates are plausible
        "L5": None,  # in the future
        "L6": None,  # not in the configured format
    }


def test_iso_birth_dates_are_parsed_when_no_format_is_configured(lookup_of):
    rows = lookup_of({"birth_date": "bd"}, {"bd": ["1980-12-31", "31/12/1980", ""]})
    assert [r["birth_date"] for r in rows] == [date(1980, 12, 31), None, None]


# -- addresses and countries ---------------------------------------------------------------


def test_postcodes_get_their_countrys_spacing_and_a_compact_key(lookup_of):
    columns = {
        "pc": ["1234ab", " 1234  AB ", "sw1a1aa", "10115", "1000", "12345"],
        "co": ["NL", "", "GB", "DE", "Belgium", "NL"],
    }
    rows = lookup_of({"postcode": "pc", "country": "co"}, columns)
    assert [(r["postcode"], r["postcode_key"]) for r in rows] == [
        ("1234 AB", "1234AB"),
        ("1234 AB", "1234AB"),  # a format no other country has applies without a country
        ("SW1A 1AA", "SW1A1AA"),
        ("10115", "10115"),
        ("1000", "1000"),
        ("12345", "12345"),  # not a Dutch postcode: kept as typed
    ]


def test_house_number_is_taken_from_the_street_and_makes_the_address_key(lookup_of):
    streets = [
        "Kerkstraat 12",
        "Kerkstraat 12a",
        "Kerkstraat 12 A",
        "Kerkstraat 12-3",
        "Straße des 17. Juni 135",
        "10 Downing Street",
        "221B Baker Street",
        "Postbus",
        "",
    ]
    rows = lookup_of({"street": "st", "postcode": "pc"}, {"st": streets, "pc": ["1234 AB"] * len(streets)})
    assert [(r["street"], r["house_number"], r["address_key"]) for r in rows] == [
        ("Kerkstraat 12", "12", "1234AB|12"),
        ("Kerkstraat 12a", "12A", "1234AB|12A"),
        ("Kerkstraat 12 A", "12A", "1234AB|12A"),
        ("Kerkstraat 12-3", "12-3", "1234AB|12-3"),
        ("Straße des 17. Juni 135", "135", "1234AB|135"),
        ("10 Downing Street", "10", "1234AB|10"),
        ("221B Baker Street", "221B", "1234AB|221B"),
        ("Postbus", None, None),
        (None, None, None),
    ]


def test_country_codes_and_names_in_several_languages_become_iso_codes(lookup_of):
    typed = {
        "NL": "NL", "nld": "NL", "Nederland": "NL", "the Netherlands": "NL", "Holland": "NL", "Pays-Bas": "NL",
        "Deutschland": "DE", "Germany": "DE", "DEU": "DE", "België": "BE", "Belgie": "BE", "Belgique": "BE",
        "Belgien": "BE", "United Kingdom": "GB", "UK": "GB", "Great Britain": "GB", "GBR": "GB", "USA": "US",
        "United States": "US", "France": "FR", "Frankrijk": "FR", "Österreich": "AT", "España": "ES",
        "Atlantis": None,
    }  # fmt: skip
    rows = lookup_of({"country": "co"}, {"co": list(typed)})
    assert {t: r["country"] for t, r in zip(typed, rows, strict=True)} == typed


def test_without_a_country_column_the_country_is_not_guessed_from_the_phone_region(lookup_of):
    rows = lookup_of({"phone": "ph"}, {"ph": ["06 12345678"]}, phone_region="NL")
    assert (rows[0]["country"], rows[0]["phone"]) == (None, "+31612345678")


def test_a_source_without_landed_files_adds_no_records(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/crm/a.csv", csv_text(["id", "fn"], [["C1", "Ann"]]))
    config = write_config(
        {
            "crm": customer_source("crm", "id", {"first_name": "fn"}),
            "loyalty": customer_source("loyalty", "kaart", {"email": "mail"}, identifiers={"card": "kaart"}),
        }
    )
    assert [(r["record_key"], r["source"], r["first_name"], r["id_card"]) for r in build(warehouse, config)] == [
        (0, "crm", "Ann", None)
    ]


def test_particles_written_after_the_surname_go_back_in_front_of_it(lookup_of):
    fields = {"first_name": "fn", "last_name": "ln", "full_name": "full"}
    columns = {
        "fn": ["Wouter", "", "", "", ""],
        "ln": ["Bourgondië, van", "", "", "", ""],
        "full": ["", "Wouter Bourgondië, van", "Bourgondië, van, Wouter", "Berg, van der, Jan", "Berg, Jan van der"],
    }
    rows = lookup_of(fields, columns)
    assert [(r["first_name"], r["last_name"]) for r in rows] == [("Wouter", "van Bourgondië")] * 3 + [
        ("Jan", "van der Berg")
    ] * 2
    assert {(r["first_name_key"], r["last_name_key"], r["last_name_core"]) for r in rows[:3]} == {
        ("wouter", "vanbourgondie", "bourgondie")
    }
