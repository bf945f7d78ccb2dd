"""SQL expressions that parse raw text columns into typed mart columns.

Each returns NULL where the value cannot be parsed, so the caller can tell
"missing" from "unparseable" and quarantine the row with the reason.
"""

from __future__ import annotations

import re

from cdm_assets.domain.plan import NumberFormat, Source
from cdm_assets.domain.sql import quote_ident, sql_string


def amount_sql(column: str | None, number_format: NumberFormat = NumberFormat()) -> str:
    """A DECIMAL(18, 2) amount: numbers as they are, text only when it fits the source's
    number format exactly ("1.234,56" with decimal "," and thousands ".") and has
    no more than two decimals that matter; NULL otherwise, never a guess."""
    if column is None:
        return "NULL::DECIMAL(18, 2)"
    text = f"trim(CAST({column} AS VARCHAR))"
    decimal, thousands = re.escape(number_format.decimal), number_format.thousands
    whole = rf"(\d{{1,3}}({re.escape(thousands)}\d{{3}})+|\d+)" if thousands else r"\d+"
    pattern = sql_string(rf"[+-]?{whole}({decimal}\d+)?")
    plain = f"replace({text}, {sql_string(thousands)}, '')" if thousands else text
    if number_format.decimal != ".":
        plain = f"replace({plain}, {sql_string(number_format.decimal)}, '.')"
    exact = f"TRY_CAST({plain} AS DECIMAL(38, 10))"
    from_text = (
        f"CASE WHEN regexp_full_match({text}, {pattern}) AND {exact} = round({exact}, 2) "
        f"THEN TRY_CAST({exact} AS DECIMAL(18, 2)) END"
    )
    return f"CASE WHEN typeof({column}) = 'VARCHAR' THEN {from_text} ELSE TRY_CAST({column} AS DECIMAL(18, 2)) END"


def timestamp_sql(column: str | None, strftime_format: str | None) -> str:
    """A UTC TIMESTAMP: with the configured format, else ISO 8601 (offsets honoured)."""
    if column is None:
        return "NULL::TIMESTAMP"
    text = f"nullif(trim(CAST({column} AS VARCHAR)), '')"
    if strftime_format:
        return f"CAST(try_strptime({text}, {sql_string(strftime_format)}) AS TIMESTAMP)"
    return f"CAST(timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) AS TIMESTAMP)"


def customer_reference_sql(source: Source) -> tuple[str, str]:
    """(customer source, customer record id) expressions for a transaction or event row."""
    reference = source.customer
    if reference is None:
        return "NULL::VARCHAR", "NULL::VARCHAR"
    value = f"nullif(trim(CAST({quote_ident(reference.column)} AS VARCHAR)), '')"
    if reference.source is not None:
        return sql_string(reference.source), value
    return f"nullif(lower(trim(CAST({quote_ident(reference.source_column)} AS VARCHAR))), '')", value


def raw_columns_sql(source: Source) -> str:
    """The configured columns of a raw row as one struct; `to_json` of it is the raw
    row the quarantine keeps (packing is cheap, so rows that pass pay little)."""
    columns = source.columns_used()
    pairs = ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in columns)
    return f"struct_pack({pairs})"


def reference_columns_sql(name: str, source: Source, id_alias: str) -> str:
    """The columns every transaction and event row starts with: its source, its
    id (as `id_alias`) and the customer record it points at."""
    ref_source, ref_value = customer_reference_sql(source)
    return (
        f"{sql_string(name)} AS source, "
        f"trim(CAST({quote_ident(source.record_id)} AS VARCHAR)) AS {quote_ident(id_alias)}, "
        f"{ref_source} AS customer_source, "
        f"{ref_value} AS customer_ref"
    )
