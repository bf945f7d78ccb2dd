"""Typed attributes: `attributes:` may give a type; values land typed in the golden record,
and a value that does not read as its type is left out and quarantined, the record kept."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

import pytest

from cdm_assets.config import ConfigError
from cdm_assets.domain.marts.customers import build_customers
from cdm_assets_tests.marts_fixtures import create_identity, create_raw
from cdm_assets_tests.plans import entity_of

LOYALTY = {
    "entity": "customer",
    "path": "loyalty/*.csv",
    "record_id": "card",
    "number_format": {"decimal": ",", "thousands": "."},
    "fields": {"first_name": "voornaam"},
    "attributes": {
        "joined_at": {"column": "lid_sinds", "type": "timestamp", "format": "%d-%m-%Y %H:%M"},
        "birthday_voucher": {"column": "voucher_datum", "type": "date"},
        "opt_in": {"column": "nieuwsbrief", "type": "boolean"},
        "visits": {"column": "bezoeken", "type": "integer"},
        "points": {"column": "punten", "type": "decimal"},
        "tier": "niveau",
    },
}
COLUMNS = ["card", "voornaam", "lid_sinds", "voucher_datum", "nieuwsbrief", "bezoeken", "punten", "niveau"]


@pytest.fixture
def loyalty(warehouse):
    def load(*rows: tuple) -> None:
        create_raw(warehouse, "loyalty", COLUMNS, list(rows))
        records = [{"source": "loyalty", "source_record_id": row[0], "first_name": row[1]} for row in rows]
        create_identity(warehouse, records, {f"loyalty:{row[0]}": f"cus_{row[0]}" for row in rows})

    return load


def golden(con, customer_id: str) -> dict:
    cursor = con.execute("SELECT * FROM marts.customers WHERE customer_id = ?", [customer_id])
    return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))


def test_typed_attributes_land_typed_in_the_golden_record(warehouse, loyalty, write_config):
    loyalty(("L1", "Anna", "05-03-2021 14:30", "2026-07-01", " Ja ", "12", "1.234,5", "goud"))
    build_customers(warehouse, entity_of(write_config({"loyalty": LOYALTY})))
    anna = golden(warehouse, "cus_L1")
    assert anna["joined_at"] == datetime(2021, 3, 5, 14, 30)
    assert anna["birthday_voucher"] == date(2026, 7, 1)
    assert anna["opt_in"] is True
    assert anna["visits"] == 12
    assert anna["points"] == Decimal("1234.5")
    assert anna["tier"] == "goud"  # no type: text, as before


def test_a_value_that_is_not_its_type_is_left_out_and_quarantined_and_the_record_stays(
    warehouse, loyalty, write_config
):
    loyalty(
        ("L1", "Anna", "2021-03-05", "1 juli", "misschien", "12.5", "1,234.5", "goud"),
        ("L2", "Bert", "", "", "nee", "3", "10", "zilver"),
    )
    build_customers(warehouse, entity_of(write_config({"loyalty": LOYALTY})))
    anna = golden(warehouse, "cus_L1")
    assert (anna["joined_at"], anna["birthday_voucher"], anna["opt_in"], anna["visits"], anna["points"]) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert anna["first_name"] == "Anna" and anna["tier"] == "goud"
    assert golden(warehouse, "cus_L2")["opt_in"] is False  # empty values are missing, not wrong
    quarantined = warehouse.execute(
        "SELECT _row_number, column_name, category, value, reason FROM raw.quarantine "
        "WHERE stage = 'attributes' ORDER BY column_name"
    ).fetchall()
    assert [row[:4] for row in quarantined] == [
        (1, "bezoeken", "unparseable integer", "12.5"),
        (1, "lid_sinds", "unparseable timestamp", "2021-03-05"),
        (1, "nieuwsbrief", "unparseable boolean", "misschien"),
        (1, "punten", "unparseable decimal", "1,234.5"),
        (1, "voucher_datum", "unparseable date", "1 juli"),
    ]
    assert quarantined[1][4] == "attribute joined_at is not a timestamp, format %d-%m-%Y %H:%M: 2021-03-05"


def test_rebuilding_replaces_the_quarantined_values(warehouse, loyalty, write_config):
    config = write_config({"loyalty": LOYALTY})
    loyalty(("L1", "Anna", "", "", "misschien", "", "", ""))
    build_customers(warehouse, entity_of(config))
    loyalty(("L1", "Anna", "", "", "ja", "", "", ""))
    build_customers(warehouse, entity_of(config))
    assert warehouse.execute("SELECT count(*) FROM raw.quarantine WHERE stage = 'attributes'").fetchone() == (0,)


def test_sources_must_agree_on_an_attribute_type(write_config):
    shop = {
        "entity": "customer",
        "path": "shop/*.csv",
        "record_id": "id",
        "fields": {"first_name": "name"},
        "attributes": {"opt_in": "newsletter"},
    }
    expected = "sources.shop.attributes.opt_in: type text here but boolean in sources.loyalty"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        write_config({"loyalty": LOYALTY, "shop": shop})


def test_a_format_belongs_to_dates_and_timestamps_only(write_config):
    bad = {**LOYALTY, "attributes": {"opt_in": {"column": "nieuwsbrief", "type": "boolean", "format": "%Y"}}}
    with pytest.raises(ConfigError, match="a format is for timestamp and date attributes, not boolean"):
        write_config({"loyalty": bad})
