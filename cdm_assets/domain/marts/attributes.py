"""Typed attributes: a value that does not read as its attribute's type (`timestamp`, `date`,
`boolean`, `integer`, `decimal`) stays out of the golden record and is quarantined.

The record itself stays: only the value is kept out. Its quarantine row has the
stage `attributes`, the category `unparseable <type>`, the column, the value and
the raw row, and is replaced whenever the golden records are rebuilt.
"""

from __future__ import annotations

from collections.abc import Collection

import duckdb

from cdm_assets.domain.marts.parsing import attribute_sql, raw_columns_sql
from cdm_assets.domain.plan import EntityPlan
from cdm_assets.domain.sql import TableName, quote_ident, sql_list, sql_string
from cdm_assets.domain.warehouse import QUARANTINE, table_exists

STAGE = "attributes"


def attribute_rejects_sql(entity: EntityPlan, sources: Collection[str] | None = None) -> str:
    """Every raw value of a typed attribute that does not read as its type, as quarantine rows
    (of the entity's `sources` named, default all)."""
    selects = []
    for name, source in entity.sources.items():
        if sources is not None and name not in sources:
            continue
        raw = TableName("raw", name)
        for attribute, kind in source.attribute_types.items():
            column = source.attributes[attribute]
            text = f"nullif(trim(CAST({quote_ident(column)} AS VARCHAR)), '')"
            typed = attribute_sql(quote_ident(column), kind, source.number_format)
            described = f"{kind.kind}, format {kind.format}" if kind.format else kind.kind
            selects.append(
                f"""
                SELECT {sql_string(name)} AS source, {sql_string(STAGE)} AS stage, _file, _row_number,
                       {sql_string(column)} AS column_name,
                       {sql_string(f"attribute {attribute} is not a {described}: ")} || {text} AS reason,
                       CAST(to_json({raw_columns_sql(source)}) AS VARCHAR) AS raw_row,
                       {sql_string(f"unparseable {kind.kind}")} AS category, {text} AS value
                FROM {raw.sql}
                WHERE {text} IS NOT NULL AND ({typed}) IS NULL
                """
            )
    return " UNION ALL ".join(selects) if selects else _NONE


_NONE = """
    SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS stage, NULL::VARCHAR AS _file, NULL::BIGINT AS _row_number,
           NULL::VARCHAR AS column_name, NULL::VARCHAR AS reason, NULL::VARCHAR AS raw_row,
           NULL::VARCHAR AS category, NULL::VARCHAR AS value
    LIMIT 0
"""


def quarantined_attribute_values(con: duckdb.DuckDBPyConnection, entity: EntityPlan) -> int:
    """How many attribute values of the entity's sources the last build quarantined."""
    if not table_exists(con, QUARANTINE):
        return 0
    return con.execute(
        f"SELECT count(*) FROM {QUARANTINE.sql} WHERE stage = ? AND source IN {sql_list(entity.sources)}", [STAGE]
    ).fetchall()[0][0]
