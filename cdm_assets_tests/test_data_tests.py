"""Data tests pass on good data and fail, with a sample of failing rows, on crafted bad data."""

from __future__ import annotations

import pytest

from cdm_assets.domain.marts import data_tests
from cdm_assets.domain.marts.events import EVENTS
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.sql import TableName
from cdm_assets_tests.marts_fixtures import create_identity, create_raw
from cdm_assets_tests.plans import customer_tables

CUSTOMERS = customer_tables().golden


@pytest.fixture
def marts(warehouse):
    warehouse.execute("CREATE SCHEMA marts")
    warehouse.execute("CREATE TABLE marts.customers (customer_id VARCHAR)")
    warehouse.execute("INSERT INTO marts.customers VALUES ('cus_a'), ('cus_b')")
    warehouse.execute(
        "CREATE TABLE marts.transactions (transaction_id VARCHAR, source VARCHAR, customer_id VARCHAR, amount DECIMAL(18,2), type VARCHAR)"
    )
    warehouse.execute("INSERT INTO marts.transactions VALUES ('O1', 'shop', 'cus_a', 10, 'order')")
    warehouse.execute("CREATE TABLE marts.events (event_id VARCHAR, source VARCHAR, customer_id VARCHAR)")
    warehouse.execute("INSERT INTO marts.events VALUES ('E1', 'clicks', 'cus_b'), ('E2', 'clicks', NULL)")
    create_identity(
        warehouse,
        [{"source": "shop", "source_record_id": "W1"}, {"source": "shop", "source_record_id": "W2"}],
        {"shop:W1": "cus_a", "shop:W2": "cus_b"},
    )
    return warehouse


def test_negative_amounts(marts):
    assert data_tests.negative_amounts(marts).failing == 0
    marts.execute("INSERT INTO marts.transactions VALUES ('O2', 'shop', 'cus_a', -3, 'order')")
    outcome = data_tests.negative_amounts(marts)
    assert (outcome.failing, outcome.total) == (1, 2)
    assert outcome.sample == [{"transaction_id": "O2", "source": "shop", "amount": "-3.00", "type": "order"}]


def test_customer_id_uniqueness(marts):
    assert data_tests.duplicate_customer_ids(marts, customer_tables()).failing == 0
    marts.execute("INSERT INTO marts.customers VALUES ('cus_a')")
    assert data_tests.duplicate_customer_ids(marts, customer_tables()).sample == [{"customer_id": "cus_a", "rows": 2}]


def test_every_record_has_exactly_one_customer_id(marts):
    assert data_tests.records_without_exactly_one_customer_id(marts, customer_tables()).failing == 0
    marts.execute("INSERT INTO identity.customer_id_map VALUES ('shop', 'W1', 'cus_z')")  # W1 twice
    marts.execute("INSERT INTO identity.source_lookup (record_key, source, source_record_id) VALUES (2, 'shop', 'W3')")
    failing = data_tests.records_without_exactly_one_customer_id(marts, customer_tables())
    assert failing.failing == 2
    assert sorted((r["source_record_id"], r["customer_ids"]) for r in failing.sample) == [("W1", 2), ("W3", 0)]


def test_map_rows_without_a_record_empty_ids_and_repeated_records_fail_too(marts):
    marts.execute("INSERT INTO identity.customer_id_map VALUES ('shop', 'W9', 'cus_c')")  # no such record
    marts.execute("UPDATE identity.customer_id_map SET customer_id = NULL WHERE source_record_id = 'W2'")
    marts.execute("INSERT INTO identity.source_lookup (record_key, source, source_record_id) VALUES (2, 'shop', 'W1')")
    failing = data_tests.records_without_exactly_one_customer_id(marts, customer_tables())
    assert failing.failing == 3
    assert failing.total == 3  # lookup rows
    assert sorted((r["source_record_id"], r["customer_ids"], r["unknown_record"]) for r in failing.sample) == [
        ("W1", 2, False),  # two lookup rows, each meeting the one id
        ("W2", 0, False),
        ("W9", 1, True),
    ]


def test_orphan_customer_ids_in_marts(marts):
    assert data_tests.orphan_customer_ids(marts, TRANSACTIONS, "transaction_id", CUSTOMERS).failing == 0
    assert data_tests.orphan_customer_ids(marts, EVENTS, "event_id", CUSTOMERS).failing == 0
    marts.execute("INSERT INTO marts.events VALUES ('E3', 'clicks', 'cus_gone')")
    assert data_tests.orphan_customer_ids(marts, EVENTS, "event_id", CUSTOMERS).sample == [
        {"event_id": "E3", "customer_id": "cus_gone"}
    ]


def test_unattributed_share(marts):
    outcome = data_tests.unattributed_rows(marts, EVENTS, "event_id")
    assert (outcome.failing, outcome.total, outcome.share) == (1, 2, 0.5)


def test_quarantined_share_counts_rows_in(marts):
    create_raw(marts, "shop", ["id"], [("W1",), ("W2",), ("W3",)])
    marts.execute(
        "CREATE TABLE raw.quarantine (source VARCHAR, stage VARCHAR, _file VARCHAR, _row_number BIGINT, reason VARCHAR)"
    )
    assert data_tests.quarantined_rows(marts, "shop", TableName("raw", "shop")).failing == 0
    marts.execute("INSERT INTO raw.quarantine VALUES ('shop', 'raw', 'a.csv', 4, 'missing record id')")
    outcome = data_tests.quarantined_rows(marts, "shop", TableName("raw", "shop"))
    assert (outcome.failing, outcome.total, outcome.share) == (1, 4, 0.25)


def test_oversized_clusters_count_customers_over_the_limit_out_of_all_customers(marts):
    customers = marts.execute("SELECT count(DISTINCT customer_id) FROM identity.customer_id_map").fetchone()[0]
    clean = data_tests.oversized_clusters(marts, 2, customer_tables())
    assert (clean.failing, clean.total, clean.sample) == (0, customers, [])
    for i in range(3):
        marts.execute("INSERT INTO identity.customer_id_map VALUES ('shop', ?, 'cus_big')", [f"X{i}"])
    outcome = data_tests.oversized_clusters(marts, 2, customer_tables())
    assert (outcome.failing, outcome.total) == (1, customers + 1)
    assert outcome.sample == [{"customer_id": "cus_big", "records": 3}]


def test_row_count_drop():
    assert data_tests.row_count_drop(None, 10) == 0.0
    assert data_tests.row_count_drop(100, 120) == 0.0
    assert data_tests.row_count_drop(100, 40) == 0.6
