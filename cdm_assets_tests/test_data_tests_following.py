"""Data tests that passed read only what the builds since changed, and still find every
failing row there; anything not recorded makes them read whole tables again."""

from __future__ import annotations

import pytest

from cdm_assets.domain.identity.customer_ids import EVERY_RECORD_REWRITTEN, map_changes_table, map_rewritten_table
from cdm_assets.domain.identity.lookup_changes import changes_table
from cdm_assets.domain.marts import data_tests
from cdm_assets.domain.marts.changed_customers import changed_customers_table
from cdm_assets.domain.marts.passed_tests import forget_passes
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.sql import TableName, create_table
from cdm_assets.domain.table_versions import TableVersion, current_versions, ensure_state, record_statements
from cdm_assets_tests.marts_fixtures import create_identity
from cdm_assets_tests.plans import customer_tables

TABLES = customer_tables()
CUSTOMERS = TABLES.golden
ORPHANS = "marts/transactions:customers_exist"


def new_version(con, table: TableName, follows: bool) -> None:
    """A new version of `table`, following the last one (its changes recorded) or not."""
    previous = current_versions(con, [table]).get(table)
    ensure_state(con)
    version = TableVersion.new(table, previous.version if previous is not None and follows else None)
    for statement, params in record_statements([version], []):
        con.execute(statement, params)


def write_version(con, table: TableName, changed: list[str] | None) -> None:
    """A build of `table`: one that followed its inputs records the customers whose rows it
    `changed` and follows the last version; one written whole (`changed` None) follows none."""
    new_version(con, table, follows=changed is not None)
    con.execute(f"CREATE OR REPLACE TABLE {changed_customers_table(table).sql} (customer_id VARCHAR)")
    for customer_id in changed or []:
        con.execute(f"INSERT INTO {changed_customers_table(table).sql} VALUES (?)", [customer_id])


def three_records(con) -> None:
    """Records W0 (customer cus_a), W1 and W2 (cus_b), and the schema of the identity state."""
    create_identity(
        con,
        [{"source": "shop", "source_record_id": f"W{i}"} for i in range(3)],
        {"shop:W0": "cus_a", "shop:W1": "cus_b", "shop:W2": "cus_b"},
    )
    con.execute("CREATE SCHEMA IF NOT EXISTS identity_state")


def orphans(con) -> data_tests.Outcome:
    return data_tests.orphan_customer_ids_following(con, ORPHANS, TRANSACTIONS, "transaction_id", CUSTOMERS)


@pytest.fixture
def marts(warehouse):
    warehouse.execute("CREATE SCHEMA marts")
    warehouse.execute("CREATE TABLE marts.customers (customer_id VARCHAR)")
    warehouse.execute("INSERT INTO marts.customers VALUES ('cus_a'), ('cus_b'), ('cus_c')")
    warehouse.execute("CREATE TABLE marts.transactions (transaction_id VARCHAR, customer_id VARCHAR)")
    warehouse.execute("INSERT INTO marts.transactions VALUES ('O1', 'cus_a'), ('O2', 'cus_b'), ('O3', 'cus_c')")
    for table in (CUSTOMERS, TRANSACTIONS):
        write_version(warehouse, table, None)
    return warehouse


def test_after_a_pass_only_relinked_rows_are_tested_and_an_orphan_among_them_is_found(marts):
    first = orphans(marts)
    assert (first.failing, first.total, first.followed) == (0, 3, False)

    marts.execute("UPDATE marts.transactions SET customer_id = 'cus_gone' WHERE transaction_id = 'O2'")
    write_version(marts, TRANSACTIONS, ["cus_b", "cus_gone"])
    relinked = orphans(marts)

    assert (relinked.failing, relinked.total, relinked.followed) == (1, 3, True)
    assert relinked.sample == [{"transaction_id": "O2", "customer_id": "cus_gone"}]
    # a failed test keeps no pass: the next run reads whole tables, and still finds it
    again = orphans(marts)
    assert (again.failing, again.followed) == (1, False)


def test_rows_of_a_customer_removed_from_the_golden_records_are_found_though_they_did_not_change(marts):
    orphans(marts)
    marts.execute("DELETE FROM marts.customers WHERE customer_id = 'cus_c'")
    write_version(marts, CUSTOMERS, ["cus_c"])

    outcome = orphans(marts)

    assert (outcome.failing, outcome.followed) == (1, True)
    assert outcome.sample == [{"transaction_id": "O3", "customer_id": "cus_c"}]


def test_rows_no_build_recorded_are_not_read_until_a_table_is_written_whole(marts):
    orphans(marts)
    # changed behind the builds' back: the versions say nothing changed
    marts.execute("DELETE FROM marts.customers WHERE customer_id = 'cus_a'")
    assert (orphans(marts).failing, orphans(marts).followed) == (0, True)
    # a build that writes the golden records whole records no changes: the next test reads whole tables
    write_version(marts, CUSTOMERS, None)
    outcome = orphans(marts)
    assert (outcome.failing, outcome.followed) == (1, False)


def test_erasing_rows_forgets_every_pass(marts):
    orphans(marts)
    marts.execute("DELETE FROM marts.customers WHERE customer_id = 'cus_a'")
    forget_passes(marts)
    assert (orphans(marts).failing, orphans(marts).followed) == (1, False)


def test_a_table_without_a_version_is_always_read_whole(marts):
    marts.execute("DELETE FROM cdm_state.table_versions WHERE table_name = 'marts.transactions'")
    assert [orphans(marts).followed for _ in range(2)] == [False, False]


def test_a_rebuilt_golden_record_that_is_doubled_is_found(marts):
    test = "marts/customers:customer_id_is_unique"
    assert data_tests.duplicate_customer_ids_following(marts, test, TABLES).failing == 0
    marts.execute("INSERT INTO marts.customers VALUES ('cus_b')")
    write_version(marts, CUSTOMERS, ["cus_b"])

    outcome = data_tests.duplicate_customer_ids_following(marts, test, TABLES)

    assert (outcome.failing, outcome.total, outcome.followed) == (1, 4, True)
    assert outcome.sample == [{"customer_id": "cus_b", "rows": 2}]


def test_a_customer_grown_past_the_limit_by_the_records_that_joined_it_is_found(marts):
    test = "identity/customer_id_map:no_giant_clusters"
    three_records(marts)
    changes = map_changes_table(TABLES)
    marts.execute(f"{create_table(changes)} (source VARCHAR, source_record_id VARCHAR, old_id VARCHAR, new_id VARCHAR)")
    write_version(marts, TABLES.id_map, None)
    assert data_tests.oversized_clusters_following(marts, test, 2, TABLES).failing == 0

    marts.execute("INSERT INTO identity.customer_id_map VALUES ('shop', 'W3', 'cus_b')")
    marts.execute(f"INSERT INTO {changes.sql} VALUES ('shop', 'W3', NULL, 'cus_b')")
    write_version(marts, TABLES.id_map, [])
    outcome = data_tests.oversized_clusters_following(marts, test, 2, TABLES)

    whole = data_tests.oversized_clusters(marts, 2, TABLES)
    assert (outcome.failing, outcome.total, outcome.followed) == (whole.failing, whole.total, True) == (1, 2, True)
    assert outcome.sample == [{"customer_id": "cus_b", "records": 3}]


def test_a_record_whose_map_rows_an_assignment_rewrote_or_the_lookup_changed_is_tested(marts):
    test = "identity/customer_id_map:one_customer_id_per_record"
    three_records(marts)
    lookup_changes = changes_table(TABLES.lookup)
    rewritten = map_rewritten_table(TABLES)
    marts.execute(f"{create_table(lookup_changes)} AS SELECT 'new' AS side, * FROM {TABLES.lookup.sql} LIMIT 0")
    marts.execute(f"{create_table(rewritten)} AS {EVERY_RECORD_REWRITTEN}")
    for table in (TABLES.lookup, TABLES.id_map):
        new_version(marts, table, follows=False)
    first = data_tests.records_without_exactly_one_customer_id_following(marts, test, TABLES)
    assert (first.failing, first.followed) == (0, False)

    # an assignment rewrote W1's rows and left it two ids; the lookup gained W3, which has none
    marts.execute("INSERT INTO identity.customer_id_map VALUES ('shop', 'W1', 'cus_z')")
    marts.execute(f"DELETE FROM {rewritten.sql}")
    marts.execute(f"INSERT INTO {rewritten.sql} VALUES ('shop', 'W1')")
    marts.execute(f"INSERT INTO {TABLES.lookup.sql} (record_key, source, source_record_id) VALUES (3, 'shop', 'W3')")
    marts.execute(
        f"INSERT INTO {lookup_changes.sql} (side, record_key, source, source_record_id) VALUES ('new', 3, 'shop', 'W3')"
    )
    for table in (TABLES.lookup, TABLES.id_map):
        new_version(marts, table, follows=True)
    outcome = data_tests.records_without_exactly_one_customer_id_following(marts, test, TABLES)

    whole = data_tests.records_without_exactly_one_customer_id(marts, TABLES)
    assert (outcome.failing, outcome.total, outcome.followed) == (whole.failing, whole.total, True) == (2, 4, True)
    assert sorted(row["source_record_id"] for row in outcome.sample) == ["W1", "W3"]


def test_after_an_assignment_wrote_the_map_whole_every_record_is_tested(marts):
    test = "identity/customer_id_map:one_customer_id_per_record"
    create_identity(marts, [{"source": "shop", "source_record_id": "W0"}], {"shop:W0": "cus_a"})
    marts.execute("CREATE SCHEMA IF NOT EXISTS identity_state")
    marts.execute(
        f"{create_table(changes_table(TABLES.lookup))} AS SELECT 'new' AS side, * FROM {TABLES.lookup.sql} LIMIT 0"
    )
    marts.execute(f"{create_table(map_rewritten_table(TABLES))} AS {EVERY_RECORD_REWRITTEN}")
    for table in (TABLES.lookup, TABLES.id_map):
        new_version(marts, table, follows=False)
    data_tests.records_without_exactly_one_customer_id_following(marts, test, TABLES)
    marts.execute("INSERT INTO identity.customer_id_map VALUES ('shop', 'W0', 'cus_z')")
    new_version(marts, TABLES.id_map, follows=True)  # the map's version follows, but it was written whole

    outcome = data_tests.records_without_exactly_one_customer_id_following(marts, test, TABLES)

    assert (outcome.failing, outcome.followed) == (1, False)
