"""Raw source loading: every format, quarantine with reasons, rows in = accepted + quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.raw import delimited
from cdm_assets.domain.raw.landed import LandingError
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets_tests.conftest import write_text

CRM = {
    "entity": "customer",
    "path": "landing/crm/*.csv",
    "record_id": "crm_id",
    "fields": {"first_name": "first_name", "email": "email"},
}


def load(warehouse, config, name):
    source = resolve_plan(config).sources[name]
    return load_raw_source(warehouse, name, source, landed_files(Path(source.path)))


def quarantine(warehouse, source):
    return warehouse.execute(
        "SELECT _file, _row_number, column_name, reason, raw_row FROM raw.quarantine "
        "WHERE source = ? ORDER BY _file, _row_number",
        [source],
    ).fetchall()


def test_csv_rows_keep_their_columns_file_and_row_number(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/crm/a.csv", 'crm_id,first_name,email\nC1,Ann,ann@example.com\nC2,"Bob, Jr",\n')
    config = write_config({"crm": CRM})
    report = load(warehouse, config, "crm")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (2, 2, 0)
    rows = warehouse.execute("SELECT crm_id, first_name, email, _file, _row_number FROM raw.crm").fetchall()
    file = str(tmp_path / "landing/crm/a.csv")
    assert rows == [("C1", "Ann", "ann@example.com", file, 1), ("C2", "Bob, Jr", None, file, 2)]


def test_broken_csv_rows_are_quarantined_with_reason_row_and_raw_content(tmp_path, warehouse, write_config):
    text = (
        b"crm_id,first_name,email\n"
        b"C1,Ann,ann@example.com\n"  # row 1 accepted
        b'C2,"Bob\nJr",bob@example.com\n'  # row 2 accepted, a newline inside quotes
        b"C3,Cee\n"  # row 3 too few columns
        b"C4,Dee,dee@example.com,extra\n"  # row 4 too many columns
        b"C5,Eve,eve@\xff.com\n"  # row 5 undecodable
        b"\n"  # row 6 blank: not a record
        b"C1,Ann again,dup@example.com\n"  # row 7 duplicate id
        b",Nobody,no@example.com\n"  # row 8 missing id
        b"C9,Fay,fay@example.com\n"  # row 9 accepted
    )
    path = write_text(tmp_path / "landing/crm/a.csv", text)
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert report.rows_in == 8
    assert report.rows_accepted == 3
    assert report.rows_quarantined == 5
    assert warehouse.execute("SELECT crm_id, _row_number FROM raw.crm ORDER BY 2").fetchall() == [
        ("C1", 1),
        ("C2", 2),
        ("C9", 9),
    ]
    rejected = quarantine(warehouse, "crm")
    assert [(row, column, reason) for _, row, column, reason, _ in rejected] == [
        (3, None, "malformed CSV row: expected 3 columns, found 2"),
        (4, None, "malformed CSV row: expected 3 columns, found 4"),
        (5, "email", "invalid UTF-8 bytes in column email"),
        (7, "crm_id", f"duplicate record id C1: kept {path} row 1"),
        (8, "crm_id", "missing record id (column crm_id)"),
    ]
    raw_rows = {row: raw for _, row, _, _, raw in rejected}
    assert raw_rows[3] == "C3,Cee"
    assert raw_rows[5] == "C5,Eve,eve@\\xFF.com"
    assert json.loads(raw_rows[7]) == {"crm_id": "C1", "first_name": "Ann again", "email": "dup@example.com"}


def test_duplicate_ids_across_files_keep_the_newest_file(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/crm/2024-01-01.csv", "crm_id,first_name,email\nC1,Old,old@example.com\n")
    newer = write_text(tmp_path / "landing/crm/2024-02-01.csv", "crm_id,first_name,email\nC1,New,new@example.com\n")
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (2, 1, 1)
    assert warehouse.execute("SELECT first_name, _file FROM raw.crm").fetchall() == [("New", str(newer))]


@pytest.mark.parametrize("malformed_row", [None, 3217])
def test_large_files_read_in_blocks_keep_every_rows_number(
    tmp_path, warehouse, write_config, monkeypatch, malformed_row
):
    # small blocks: the file is parsed in many pieces on several threads, as a large one is
    monkeypatch.setattr(delimited, "_BLOCK_SIZE", 4096)
    rows = [f"C{i},Name{i},p{i}@example.com" for i in range(1, 5001)]
    if malformed_row is not None:
        rows[malformed_row - 1] = "C_bad,only two"
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,first_name,email\n" + "\n".join(rows) + "\n")
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    rejected = 0 if malformed_row is None else 1
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (5000, 5000 - rejected, rejected)
    numbered = warehouse.execute("SELECT crm_id, _row_number FROM raw.crm").fetchall()
    assert all(crm_id == f"C{number}" for crm_id, number in numbered)
    if malformed_row is not None:
        assert [(row, raw) for _, row, _, _, raw in quarantine(warehouse, "crm")] == [(malformed_row, "C_bad,only two")]


def test_semicolon_delimited_csv_with_local_headers(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/loyalty/leden.csv", "kaartnummer;voornaam;geboortedatum\nK1;Jan;31/12/1980\n")
    source = {
        "entity": "customer",
        "path": "landing/loyalty/*.csv",
        "delimiter": ";",
        "record_id": "kaartnummer",
        "fields": {"first_name": "voornaam", "birth_date": {"column": "geboortedatum", "format": "%d/%m/%Y"}},
    }
    load(warehouse, write_config({"loyalty": source}), "loyalty")
    assert warehouse.execute("SELECT kaartnummer, voornaam, geboortedatum FROM raw.loyalty").fetchall() == [
        ("K1", "Jan", "31/12/1980")
    ]


def test_parquet_keeps_its_types_and_numbers_rows(tmp_path, warehouse, write_config):
    path = tmp_path / "landing/orders/o.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(
        pa.table({"order_id": ["O1", "O2", "O1", None], "amount": [10.5, 3.0, 1.0, 2.0], "ts": ["2024-01-01"] * 4}),
        path,
    )
    source = {
        "entity": "transaction",
        "path": "landing/orders/*.parquet",
        "record_id": "order_id",
        "fields": {"amount": "amount", "occurred_at": "ts"},
    }
    report = load(warehouse, write_config({"crm": CRM, "orders": source}), "orders")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (4, 2, 2)
    assert warehouse.execute("SELECT order_id, amount, _row_number FROM raw.orders ORDER BY 3").fetchall() == [
        ("O1", 10.5, 1),
        ("O2", 3.0, 2),
    ]
    assert [r[3].split(":")[0] for r in quarantine(warehouse, "orders")] == [
        "duplicate record id O1",
        "missing record id (column order_id)",
    ]


def test_json_lines_become_columns_and_bad_lines_are_quarantined(tmp_path, warehouse, write_config):
    text = (
        b'{"subscriber_id": "N1", "email": "a@example.com", "first_name": "Ann"}\n'
        b"\n"
        b'{"subscriber_id": "N2", "email": "b@example.com", "extra": {"nested": 1}}\n'
        b"not json at all\n"
        b'{"subscriber_id": "N4", "email": "\xff"}\n'
        b"[1, 2]\n"
    )
    write_text(tmp_path / "landing/news/s.jsonl", text)
    source = {
        "entity": "customer",
        "path": "landing/news/*.jsonl",
        "record_id": "subscriber_id",
        "fields": {"email": "email", "first_name": "first_name"},
    }
    report = load(warehouse, write_config({"news": source}), "news")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (5, 2, 3)
    assert warehouse.execute(
        "SELECT subscriber_id, email, first_name, extra, _row_number FROM raw.news ORDER BY _row_number"
    ).fetchall() == [("N1", "a@example.com", "Ann", None, 1), ("N2", "b@example.com", None, '{"nested":1}', 3)]
    assert [(row, reason) for _, row, _, reason, _ in quarantine(warehouse, "news")] == [
        (4, "malformed JSON"),
        (5, "invalid UTF-8 bytes"),
        (6, "JSON line is not an object"),
    ]


def test_clean_json_lines_skip_blank_and_whitespace_lines_and_keep_indented_objects(tmp_path, warehouse, write_config):
    text = b'{"subscriber_id": "N1", "email": "a@example.com"}\n   \n\n  {"subscriber_id": "N4"}\n\t\n'
    write_text(tmp_path / "landing/news/s.jsonl", text)
    source = {
        "entity": "customer",
        "path": "landing/news/*.jsonl",
        "record_id": "subscriber_id",
        "fields": {"email": "email"},
    }
    report = load(warehouse, write_config({"news": source}), "news")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (2, 2, 0)
    assert warehouse.execute(
        "SELECT subscriber_id, email, _row_number FROM raw.news ORDER BY _row_number"
    ).fetchall() == [
        ("N1", "a@example.com", 1),
        ("N4", None, 4),
    ]


def test_no_files_yet_gives_an_empty_table_with_the_configured_columns(tmp_path, warehouse, write_config):
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert report.rows_in == 0
    columns = [r[0] for r in warehouse.execute("DESCRIBE raw.crm").fetchall()]
    assert columns == ["crm_id", "first_name", "email", "_file", "_row_number"]


def test_a_configured_column_missing_from_a_file_names_file_and_column(tmp_path, warehouse, write_config):
    path = write_text(tmp_path / "landing/crm/a.csv", "crm_id,first_name,mail\nC1,Ann,a@example.com\n")
    with pytest.raises(LandingError) as raised:
        load(warehouse, write_config({"crm": CRM}), "crm")
    assert str(raised.value).startswith(f"{path}: column(s) 'email' named in the config are not in the file")


def test_a_failing_load_leaves_the_previous_table_and_quarantine_intact(tmp_path, warehouse, write_config):
    config = write_config({"crm": CRM})
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,first_name,email\nC1,Ann,a@example.com\nC1,Dup,d@example.com\n")
    load(warehouse, config, "crm")
    before = (warehouse.execute("SELECT * FROM raw.crm").fetchall(), quarantine(warehouse, "crm"))
    write_text(tmp_path / "landing/crm/b.csv", "crm_id,first_name\nC2,Bob\n")  # lacks the email column
    with pytest.raises(LandingError):
        load(warehouse, config, "crm")
    after = (warehouse.execute("SELECT * FROM raw.crm").fetchall(), quarantine(warehouse, "crm"))
    assert after == before
    leftovers = warehouse.execute("SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%staging%'")
    assert leftovers.fetchall() == []


def test_reloading_replaces_the_sources_quarantine_rows(tmp_path, warehouse, write_config):
    config = write_config({"crm": CRM})
    path = write_text(tmp_path / "landing/crm/a.csv", "crm_id,first_name,email\nC1,Ann,a@example.com\nC2,Bob\n")
    load(warehouse, config, "crm")
    load(warehouse, config, "crm")
    assert len(quarantine(warehouse, "crm")) == 1
    path.write_text("crm_id,first_name,email\nC1,Ann,a@example.com\nC2,Bob,b@example.com\n")
    load(warehouse, config, "crm")
    assert quarantine(warehouse, "crm") == []
