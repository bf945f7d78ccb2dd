"""Small warehouses for mart tests: raw tables and identity tables written directly."""

from __future__ import annotations

import duckdb

LOOKUP_COLUMNS = (
    "record_key BIGINT, source VARCHAR, source_record_id VARCHAR, precedence INTEGER, first_name VARCHAR, "
    "last_name VARCHAR, email VARCHAR, phone VARCHAR, birth_date DATE, street VARCHAR, house_number VARCHAR, "
    "postcode VARCHAR, city VARCHAR, country VARCHAR"
)


def create_raw(con: duckdb.DuckDBPyConnection, name: str, columns: list[str], rows: list[tuple]) -> None:
    """raw.<name> with text columns plus _file and _row_number (numbered in order)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    definition = ", ".join(f'"{c}" VARCHAR' for c in columns)
    con.execute(f"CREATE OR REPLACE TABLE raw.{name} ({definition}, _file VARCHAR, _row_number BIGINT)")
    for number, row in enumerate(rows, start=1):
        con.execute(
            f"INSERT INTO raw.{name} VALUES ({', '.join('?' for _ in columns)}, ?, ?)", [*row, f"{name}.csv", number]
        )


def create_identity(con: duckdb.DuckDBPyConnection, records: list[dict], customer_of: dict[str, str]) -> None:
    """identity.source_lookup from record dicts and identity.customer_id_map from `source:id` → customer."""
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    con.execute(f"CREATE OR REPLACE TABLE identity.source_lookup ({LOOKUP_COLUMNS})")
    names = [c.split()[0] for c in LOOKUP_COLUMNS.split(", ")]
    for key, record in enumerate(records):
        values = {"record_key": key, "precedence": 100, **record}
        con.execute(
            f"INSERT INTO identity.source_lookup VALUES ({', '.join('?' for _ in names)})",
            [values.get(n) for n in names],
        )
    con.execute(
        "CREATE OR REPLACE TABLE identity.customer_id_map (source VARCHAR, source_record_id VARCHAR, customer_id VARCHAR)"
    )
    for reference, customer_id in customer_of.items():
        source, record_id = reference.split(":")
        con.execute("INSERT INTO identity.customer_id_map VALUES (?, ?, ?)", [source, record_id, customer_id])
