"""The customers whose rows in a mart changed in its last build.

A mart that followed its inputs' changes records which customers' rows it
replaced or relinked (`cdm_state.<schema>_<table>_changed_customers`, one
`customer_id` per row; the ids before and after a change both count), and its
table version then follows the version before. A full build records none and
its version follows nothing, so what reads the mart next builds in full too.
"""

from __future__ import annotations

import duckdb

from cdm_assets.domain.sql import TableName, create_table
from cdm_assets.domain.table_versions import STATE_SCHEMA, TableVersion, current_versions

# No customer changed (a build that followed its inputs and found nothing to do).
NO_CUSTOMERS = "SELECT NULL::VARCHAR AS customer_id LIMIT 0"


def changed_customers_table(mart: TableName) -> TableName:
    return TableName(STATE_SCHEMA, f"{mart.schema}_{mart.name}_changed_customers")


def stage_changed_customers(
    con: duckdb.DuckDBPyConnection, mart: TableName, staging: TableName, select: str | None
) -> TableVersion:
    """Into `staging`, the customers `select` (customer_id) names (none after a full build, when
    `select` is None); returns the mart's next version, following the current one when known."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    rows = NO_CUSTOMERS if select is None else select
    con.execute(
        f"{create_table(staging)} AS SELECT DISTINCT * FROM ({rows}) AS c(customer_id) WHERE customer_id IS NOT NULL"
    )
    previous = current_versions(con, [mart]).get(mart)
    follows = previous.version if previous is not None and select is not None else None
    return TableVersion.new(mart, follows)
