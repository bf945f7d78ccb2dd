"""No personal data in Dagster metadata by default: previews and failing-row samples
show masked values (`privacy.previews: masked`), none (`off`) or all (`full`)."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest
import yaml

from cdm_assets.config import BUNDLED_CONFIG, load_config
from cdm_assets.definitions import build_definitions
from cdm_assets.domain.masking import PreviewPolicy, mask
from cdm_assets.domain.sql import TableName
from cdm_assets.sample import generate
from cdm_assets.wiring.metadata import table_metadata
from cdm_assets_tests.conftest import materialize_all

PERSONS = 300


def metadata_text(result) -> str:
    """Every metadata value of every materialisation and check evaluation, as one text."""
    parts = [
        repr(value.value) for event in result.get_asset_materialization_events()
        for value in event.materialization.metadata.values()
    ]  # fmt: skip
    parts += [repr(value.value) for e in result.get_asset_check_evaluations() for value in e.metadata.values()]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("privacy")
    generate(persons=PERSONS, seed=5, out=out)
    return out


def run_with(sample, previews: str | None):
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = source["path"].removeprefix("../../data/")
    document["warehouse"]["duckdb_path"] = f"cdm-{previews}.duckdb"
    if previews is not None:
        document["privacy"] = {"previews": previews}
    path = sample / f"cdm-{previews}.yaml"
    path.write_text(yaml.safe_dump(document))
    result = materialize_all(build_definitions(load_config(path)))
    assert result.success
    with duckdb.connect(str(sample / f"cdm-{previews}.duckdb"), read_only=True) as con:
        emails, phones = (
            {
                row[0]
                for row in con.execute(
                    f"SELECT DISTINCT {column} FROM identity.source_lookup WHERE {column} IS NOT NULL"
                ).fetchall()
            }
            for column in ("email", "phone")
        )
    return metadata_text(result), emails, phones


def test_by_default_no_metadata_of_any_asset_or_check_holds_an_email_or_phone_of_the_sample(sample):
    text, emails, phones = run_with(sample, None)
    assert emails and phones
    assert [e for e in emails if e in text] == []
    assert [p for p in phones if p in text] == []
    assert [p for p in phones if p.lstrip("+") in text] == []  # nor in a raw column's own spelling
    assert "***@" in text  # the previews are there, masked


def test_full_previews_show_the_values_as_they_are(sample):
    text, emails, _phones = run_with(sample, "full")
    assert any(e in text for e in emails)


def test_with_previews_off_a_table_shows_its_counts_and_schema_but_no_rows(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA identity")
    con.execute("CREATE TABLE identity.source_lookup AS SELECT 'anna@example.nl' AS email, '+31612345678' AS phone")
    off = table_metadata(con, TableName("identity", "source_lookup"), PreviewPolicy("off"))
    assert off["dagster/row_count"] == 1 and len(off["dagster/column_schema"].columns) == 2
    assert "anna" not in off["preview"].value and "+316" not in off["preview"].value
    masked = table_metadata(con, TableName("identity", "source_lookup"), PreviewPolicy("masked"))
    assert "a***@e***.nl" in masked["preview"].value and "***78" in masked["preview"].value


def test_each_kind_of_personal_value_keeps_only_what_tells_it_apart_for_a_person_reading_metadata():
    assert mask("name", "Marloes") == "M."
    assert mask("email", "jan.smit@gmail.com") == "j***@g***.com"
    assert mask("phone", "+31 6 1234 5678") == "***78"
    assert mask("birth_date", date(1971, 5, 14)) == "1971"
    assert mask("birth_date", "14/05/1971") == "1971"
    assert mask("postcode", "1234 AB") == "12**"
    assert mask("hidden", "Kerkstraat 9") == "***"
    assert (mask("reference", "W0000001"), mask("reference", "an@na.nl")) == ("W0000001", "a***@n***.nl")


def test_a_raw_source_masks_its_own_columns_by_the_fields_they_map_to():
    config = load_config(BUNDLED_CONFIG)
    from cdm_assets.wiring.metadata import preview_policy

    loyalty = preview_policy(config, TableName("raw", "loyalty"))
    assert loyalty.value("e_mail", "a.b@c.nl") == "a***@c***.nl"
    assert loyalty.value("voornaam", "Gustaaf") == "G."
    assert loyalty.value("kaartnummer", "L00000001") == "***"  # an identifier column
    assert json.dumps(loyalty.row({"woonplaats": "Antwerpen"})) == '{"woonplaats": "Antwerpen"}'
