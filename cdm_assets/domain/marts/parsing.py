"""SQL expressions that parse raw text columns into typed mart columns.

Each returns NULL where the value cannot be parsed, so the caller can tell
"missing" from "unparseable" and quarantine the row with the reason.
"""

from __future__ import annotations

import re

from cdm_assets.domain.plan import AttributeType, NumberFormat, Source
from cdm_assets.domain.sql import quote_ident, sql_list, sql_string


def amount_sql(column: str | None, number_format: NumberFormat = NumberFormat(), scale: int = 2) -> str:
    """A DECIMAL(18, `scale`) amount: numbers as they are, text only when it fits the source's
    number format exactly ("1.234,56" with decimal "," and thousands ".") and has
    no more than `scale` decimals that matter; NULL otherwise, never a guess."""
    decimal_type = f"DECIMAL(18, {int(scale)})"
    if column is None:
        return f"NULL::{decimal_type}"
    text = f"trim(CAST({column} AS VARCHAR))"
    decimal, thousands = re.escape(number_format.decimal), number_format.thousands
    whole = rf"(\d{{1,3}}({re.escape(thousands)}\d{{3}})+|\d+)" if thousands else r"\d+"
    pattern = sql_string(rf"[+-]?{whole}({decimal}\d+)?")
    plain = f"replace({text}, {sql_string(thousands)}, '')" if thousands else text
    if number_format.decimal != ".":
        plain = f"replace({plain}, {sql_string(number_format.decimal)}, '.')"
    exact = f"TRY_CAST({plain} AS DECIMAL(38, 10))"
    from_text = (
        f"CASE WHEN regexp_full_match({text}, {pattern}) AND {exact} = round({exact}, {int(scale)}) "
        f"THEN TRY_CAST({exact} AS {decimal_type}) END"
    )
    return f"CASE WHEN typeof({column}) = 'VARCHAR' THEN {from_text} ELSE TRY_CAST({column} AS {decimal_type}) END"


def timestamp_sql(column: str | None, strftime_format: str | None) -> str:
    """A UTC TIMESTAMP: with the configured format, else ISO 8601 (offsets honoured)."""
    if column is None:
        return "NULL::TIMESTAMP"
    text = f"nullif(trim(CAST({column} AS VARCHAR)), '')"
    if strftime_format:
        return f"CAST(try_strptime({text}, {sql_string(strftime_format)}) AS TIMESTAMP)"
    return f"CAST(timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) AS TIMESTAMP)"


# Words read as yes and no (case and surrounding blanks aside), in the languages of the sample's sources.
TRUE_WORDS = ("true", "t", "yes", "y", "1", "ja", "j", "oui", "si", "sí", "wahr")
FALSE_WORDS = ("false", "f", "no", "n", "0", "nee", "non", "nein", "falsch")


def attribute_sql(column: str, kind: AttributeType, number_format: NumberFormat) -> str:
    """An attribute read as its type; NULL where the value does not read as one."""
    text = f"nullif(trim(CAST({column} AS VARCHAR)), '')"
    if kind.kind == "timestamp":
        return timestamp_sql(column, kind.format)
    if kind.kind == "date":
        if kind.format:
            return f"CAST(try_strptime({text}, {sql_string(kind.format)}) AS DATE)"
        return f"TRY_CAST({text} AS DATE)"
    if kind.kind == "boolean":
        word = f"lower({text})"
        return f"CASE WHEN {word} IN {sql_list(TRUE_WORDS)} THEN true WHEN {word} IN {sql_list(FALSE_WORDS)} THEN false END"
    if kind.kind == "integer":
        return f"CASE WHEN regexp_full_match({text}, '[+-]?[0-9]+') THEN TRY_CAST({text} AS BIGINT) END"
    if kind.kind == "decimal":
        return amount_sql(column, number_format, scale=6)
    return f"CAST({column} AS VARCHAR)"


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
