"""Warehouse storage: near-unique text is stored plain, everything else compressed; row groups
are compacted when deleted rows pile up, not at every step."""

from __future__ import annotations

import duckdb

from cdm_assets.config.plan import resolve_source
from cdm_assets.config.sources import SourceConfig
from cdm_assets.domain.marts.customers import _near_unique_attributes
from cdm_assets.domain.raw.land_file import near_unique_columns
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.warehouse import NO_COMPACTION, compact_when_sparse, create_table_as, sparse_tables
from cdm_assets.wiring.resources import CONNECTION_CONFIG, WarehouseResource
from cdm_assets_tests.conftest import write_text
from cdm_assets_tests.plans import entity_of

RECORDS = """
    SELECT 'crm' AS source, 'C' || lpad(i::VARCHAR, 7, '0') AS source_record_id,
           'person' || i || '@example.com' AS email, ['Ann', 'Bob', 'Cee'][i % 3 + 1] AS first_name,
           i AS record_key
    FROM range($rows) AS r(i)
"""


def text_compression(con, table: TableName) -> dict[str, set[str]]:
    """The compressions DuckDB chose for each text column's data segments."""
    con.execute("CHECKPOINT")
    rows = con.execute(
        "SELECT column_name, compression FROM pragma_storage_info(?) WHERE segment_type = 'VARCHAR'", [str(table)]
    ).fetchall()
    found: dict[str, set[str]] = {}
    for column, compression in rows:
        found.setdefault(column, set()).add(compression)
    return found


def test_ids_and_contact_points_are_stored_plain_and_repetitive_text_compressed(warehouse):
    warehouse.execute("CREATE SCHEMA identity")
    table = TableName("identity", "records")
    create_table_as(warehouse, table, RECORDS, {"rows": 200_000})
    compression = text_compression(warehouse, table)
    assert compression["source_record_id"] == {"Uncompressed"}
    assert compression["email"] == {"Uncompressed"}
    assert "Uncompressed" not in compression["source"] | compression["first_name"]
    # same rows and column types as a plain CREATE TABLE AS
    assert (
        warehouse.execute(f"DESCRIBE {table.sql}").fetchall()
        == warehouse.execute(f"DESCRIBE {RECORDS}", {"rows": 1}).fetchall()
    )
    assert warehouse.execute(f"SELECT count(*), max(source_record_id) FROM {table.sql}").fetchone() == (
        200_000,
        "C0199999",
    )


def test_callers_name_more_plain_columns_and_scratch_tables_stay_in_memory(warehouse):
    warehouse.execute("CREATE SCHEMA identity")
    table = TableName("identity", "records")
    create_table_as(warehouse, table, RECORDS, {"rows": 200_000}, plain_text=["first_name"])
    assert text_compression(warehouse, table)["first_name"] == {"Uncompressed"}
    create_table_as(warehouse, TableName("temp", "scratch_records"), RECORDS, {"rows": 10})
    assert warehouse.execute(
        "SELECT temporary FROM duckdb_tables() WHERE table_name = 'scratch_records'"
    ).fetchone() == (True,)


def test_a_raw_sources_ids_contact_points_and_timestamps_are_stored_plain(tmp_path, warehouse):
    configured = SourceConfig(
        entity="customer",
        path=str(tmp_path / "landing/crm/*.csv"),
        record_id="crm_id",
        fields={"first_name": "voornaam", "email": "mail", "phone": "tel", "postcode": "zip"},
        identifiers={"loyalty_card": "card"},
        updated_at="changed",
        attributes={"segment": "segment"},
    )
    source = resolve_source("crm", configured, tmp_path)
    assert near_unique_columns(source) == {"crm_id", "mail", "tel", "zip", "card", "changed"}
    rows = "".join(
        f"C{i},{['Ann', 'Bob'][i % 2]},p{i}@example.com,+3161{i:07d},{1000 + i % 9000}AB,L{i},2024-01-01T{i % 24:02d}:00,"
        f"{['gold', 'silver'][i % 2]}\n"
        for i in range(150_000)
    )
    write_text(tmp_path / "landing/crm/a.csv", "crm_id,voornaam,mail,tel,zip,card,changed,segment\n" + rows)
    load_raw_source(warehouse, "crm", source, landed_files(tmp_path / "landing/crm/*.csv"))
    compression = text_compression(warehouse, TableName("raw", "crm"))
    for column in ("crm_id", "mail", "tel", "zip", "card", "changed"):
        assert compression[column] == {"Uncompressed"}, column
    for column in ("voornaam", "segment", "_file"):
        assert "Uncompressed" not in compression[column], column


def test_golden_attributes_read_from_a_near_unique_column_are_stored_plain_too(write_config):
    config = write_config(
        {
            "crm": {
                "entity": "customer",
                "path": "landing/crm/*.csv",
                "record_id": "crm_id",
                "fields": {"email": "email"},
                "updated_at": "changed",
                "attributes": {"crm_changed_at": "changed", "crm_email": "email", "segment": "segment"},
            }
        }
    )
    assert _near_unique_attributes(entity_of(config)) == {"crm_changed_at", "crm_email"}


def deleted_rows(path, table: str) -> int:
    """Rows DuckDB still stores for `table` though they were deleted."""
    con = duckdb.connect(str(path))
    try:
        stored = con.execute("SELECT estimated_size FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()[0][
            0
        ]
        return stored - con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


def test_steps_do_not_compact_row_groups_until_a_table_they_delete_from_is_sparse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    resource = WarehouseResource(database=str(path), connection_config=CONNECTION_CONFIG)
    with resource.get_connection() as con:
        # compacting at every step's checkpoint costs far more than a batch's write
        assert con.execute("SELECT current_setting('max_vacuum_tasks')").fetchall() == [(0,)]
        con.execute("CREATE TABLE customers AS SELECT range AS k, md5(range::VARCHAR) AS v FROM range(500000)")
    with resource.get_connection() as con:
        con.execute("DELETE FROM customers WHERE k % 10 = 0")
        con.execute("INSERT INTO customers SELECT range + 1000000, 'new' FROM range(1000)")
        assert sparse_tables(con) == []
    assert deleted_rows(path, "customers") == 50_000
    # deleted rows pile up past the share: the step that deletes them compacts the table
    with resource.get_connection() as con:
        con.execute("DELETE FROM customers WHERE k % 10 IN (1, 2, 3, 4, 5, 6)")
        assert sparse_tables(con) == ["main.customers"]
    assert deleted_rows(path, "customers") < 350_000 // 2
    with resource.get_connection() as con:
        assert con.execute("SELECT count(*) FROM customers").fetchall() == [(150_400,)]


def test_a_step_that_writes_nothing_does_not_look_for_sparse_tables(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path), config=NO_COMPACTION)
    con.execute("CREATE TABLE customers AS SELECT range AS k FROM range(200000)")
    con.execute("CHECKPOINT")
    con.execute("DELETE FROM customers WHERE k % 2 = 0")
    con.execute("CHECKPOINT")  # deleted rows kept: half the table
    assert sparse_tables(con) == ["main.customers"]
    assert compact_when_sparse(con) == []
    assert con.execute("SELECT current_setting('max_vacuum_tasks')").fetchall() == [(0,)]
    con.execute("DELETE FROM customers WHERE k = 1")
    assert compact_when_sparse(con) == ["main.customers"]
    assert con.execute("SELECT current_setting('max_vacuum_tasks')").fetchall() != [(0,)]
    con.close()
