"""Intake robustness: nothing lost, nothing reinterpreted, one bad row never fails a source."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdm_assets.domain.raw.landed import LandingError
from cdm_assets_tests.conftest import write_text
from cdm_assets_tests.test_raw_sources import CRM, load, quarantine


def test_a_stray_quote_quarantines_one_row_and_loads_the_rest(tmp_path, warehouse, write_config):
    rows = [f"X{i},Ann,a{i}@x.com" for i in range(1, 1001)]
    rows[499] = 'X500,"Ann,a500@x.com'
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,first_name,email\n" + "\n".join(rows) + "\n")
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (1000, 999, 1)
    [(_, row, _, reason, raw)] = quarantine(warehouse, "crm")
    assert (row, raw) == (500, 'X500,"Ann,a500@x.com')
    assert "unterminated quote" in reason
    assert warehouse.execute("SELECT crm_id FROM raw.crm WHERE _row_number = 1000").fetchall() == [("X1000",)]


def test_a_stray_quote_closed_by_a_later_stray_quote_loses_no_row_between(tmp_path, warehouse, write_config):
    rows = [f"X{i},Ann,a{i}@x.com" for i in range(1, 11)]
    rows[2] = 'X3,"Ann,a3@x.com'
    rows[6] = 'X7,Ann",a7@x.com'
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,first_name,email\n" + "\n".join(rows) + "\n")
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert report.rows_in == 10
    assert report.rows_accepted + report.rows_quarantined == 10
    accepted = {r[0] for r in warehouse.execute("SELECT crm_id FROM raw.crm").fetchall()}
    assert {"X4", "X5", "X6", "X8", "X9", "X10"} <= accepted
    assert 3 in [row for _, row, *_ in quarantine(warehouse, "crm")]


def test_null_like_text_stays_as_landed_and_only_empty_fields_are_null(tmp_path, warehouse, write_config):
    write_text(
        tmp_path / "landing/crm/a.csv",
        'crm_id,first_name,email\nNA,N/A,NULL\nnull,nan,#N/A\nC3,,""\n',
    )
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert (report.rows_accepted, report.rows_quarantined) == (3, 0)
    assert warehouse.execute("SELECT crm_id, first_name, email FROM raw.crm ORDER BY _row_number").fetchall() == [
        ("NA", "N/A", "NULL"),
        ("null", "nan", "#N/A"),
        ("C3", None, None),
    ]


def test_a_malformed_row_with_invalid_utf8_is_quarantined_alone(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/crm/a.csv", b"crm_id,first_name,email\nC1,Ann,a@x.com\nC2,B\xffb\nC3,Cee,c@x.com\n")
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (3, 2, 1)
    [(_, row, _, reason, raw)] = quarantine(warehouse, "crm")
    assert (row, reason) == (2, "malformed CSV row: expected 3 columns, found 2")
    assert raw == "C2,B\\xffb"


def test_excel_csv_utf8_export_with_bom_and_quoted_header_loads(tmp_path, warehouse, write_config):
    write_text(
        tmp_path / "landing/crm/a.csv",
        '\ufeff"crm_id","first_name","email"\r\n"C1","Ann","a@x.com"\r\n'.encode("utf-8"),
    )
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert report.rows_accepted == 1
    assert warehouse.execute("SELECT crm_id, first_name, email FROM raw.crm").fetchall() == [("C1", "Ann", "a@x.com")]


def test_a_later_csv_file_may_add_a_column_older_rows_get_null(tmp_path, warehouse, write_config):
    write_text(tmp_path / "landing/crm/1.csv", "crm_id,first_name,email\nC1,Ann,a@x.com\n")
    write_text(tmp_path / "landing/crm/2.csv", "crm_id,first_name,email,city\nC2,Bob,b@x.com,Utrecht\n")
    report = load(warehouse, write_config({"crm": CRM}), "crm")
    assert report.rows_accepted == 2
    assert warehouse.execute("SELECT crm_id, city FROM raw.crm ORDER BY crm_id").fetchall() == [
        ("C1", None),
        ("C2", "Utrecht"),
    ]


def test_a_later_json_lines_file_may_add_a_key(tmp_path, warehouse, write_config):
    source = {"entity": "customer", "path": "landing/news/*.jsonl", "record_id": "id", "fields": {"email": "email"}}
    write_text(tmp_path / "landing/news/1.jsonl", '{"id": "N1", "email": "a@x.com"}\n')
    write_text(tmp_path / "landing/news/2.jsonl", '{"id": "N2", "email": "b@x.com", "city": "Gouda"}\n')
    report = load(warehouse, write_config({"news": source}), "news")
    assert report.rows_accepted == 2
    assert warehouse.execute("SELECT id, city FROM raw.news ORDER BY id").fetchall() == [("N1", None), ("N2", "Gouda")]


def test_parquet_files_that_disagree_on_a_type_name_both_files_and_the_column(tmp_path, warehouse, write_config):
    folder = tmp_path / "landing/orders"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"order_id": [1, 2], "amount": [1.0, 2.0], "ts": ["2024-01-01"] * 2}), folder / "1.parquet")
    pq.write_table(pa.table({"order_id": ["O3"], "amount": [3.0], "ts": ["2024-01-01"]}), folder / "2.parquet")
    source = {
        "entity": "transaction",
        "path": "landing/orders/*.parquet",
        "record_id": "order_id",
        "fields": {"amount": "amount", "occurred_at": "ts"},
    }
    try:
        report = load(warehouse, write_config({"crm": CRM, "orders": source}), "orders")
    except LandingError as error:
        message = str(error)
        assert "1.parquet" in message and "2.parquet" in message and "order_id" in message
        assert "_staging" not in message
    else:
        assert report.rows_accepted == 3


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ('{"id": "N2", "": "x"}', "empty"),
        ('{"id": "N2", "  ": "x"}', "empty"),
        ('{"id": "N2", "a\\"b": "x"}', "quote"),
        ('{"id": "N2", "Email": "x", "email": "y"}', "case"),
    ],
)
def test_a_json_line_with_an_unusable_key_is_quarantined_alone(tmp_path, warehouse, write_config, bad_line, reason):
    source = {"entity": "customer", "path": "landing/news/*.jsonl", "record_id": "id", "fields": {"email": "email"}}
    write_text(
        tmp_path / "landing/news/1.jsonl",
        '{"id": "N1", "email": "a@x.com"}\n' + bad_line + '\n{"id": "N3", "email": "c@x.com"}\n',
    )
    report = load(warehouse, write_config({"news": source}), "news")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (3, 2, 1)
    [(_, row, _, why, raw)] = quarantine(warehouse, "news")
    assert row == 2 and reason in why and raw == bad_line


def test_a_json_line_with_a_control_character_and_invalid_utf8_is_quarantined_alone(tmp_path, warehouse, write_config):
    source = {"entity": "customer", "path": "landing/news/*.jsonl", "record_id": "id", "fields": {"email": "email"}}
    write_text(
        tmp_path / "landing/news/1.jsonl",
        b'{"id": "N1", "email": "a@x.com"}\n{"id": "N2", "email": "\x1f\xff"}\r\n{"id": "N3", "email": "c@x.com"}',
    )
    report = load(warehouse, write_config({"news": source}), "news")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (3, 2, 1)
    [(_, row, _, reason, _)] = quarantine(warehouse, "news")
    assert (row, reason) == (2, "invalid UTF-8 bytes")
