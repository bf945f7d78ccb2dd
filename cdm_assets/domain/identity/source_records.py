"""The customer records of every customer source as one relation, in canonical fields.

Each source's SELECT maps its own columns to the canonical fields (raw text,
plus a parsed birth date within the configured plausible window and its
identifiers) and gives each record its `record_key`. The selects are
combined with `UNION ALL BY NAME`; nothing is standardised here yet.

`record_key` numbers the records 0..n-1 in (source, source_record_id) order.
Sorting whole records for that costs more than everything else, so only the
record ids are numbered (`write_record_keys`, into a keys table) and the
records join their key on their id. Given an earlier lookup, records keep the
keys it gave them and new records take the next ones free.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity import standardise as std
from cdm_assets.domain.plan import EntityPlan, Source
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident
from cdm_assets.domain.vocabulary import CUSTOMER_FIELDS, DATE_FIELDS
from cdm_assets.domain.warehouse import number_in_order, table_columns, table_exists

# Canonical text fields read from a source; `birth_date` is parsed separately.
TEXT_FIELDS = tuple(field for field in CUSTOMER_FIELDS if field not in DATE_FIELDS)
# A keyed record's hash of the raw columns the config reads (part of its input hash).
RAW_ROW_HASH = "_raw_row_hash"


@dataclass(frozen=True)
class SourceRecords:
    """The SQL of the customer records of all customer sources, with its parameters."""

    sql: str
    params: dict
    phone_regions: list[str]  # the sources' configured phone regions


def customer_records(
    con: duckdb.DuckDBPyConnection,
    entity: EntityPlan,
    fields: Sequence[str] = TEXT_FIELDS,
    keyed: bool = True,
    keys: TableName | None = None,
    only: Collection[str] | None = None,
    ids: Mapping[str, str] | None = None,
) -> SourceRecords:
    """All customer records: `source`, `source_record_id`, `precedence`, `source_phone_region` and
    `<field>_raw` for each of `fields`; when `keyed` also `birth_date` (NULL outside the plausible
    window), `id_<name>` and `record_key`, and for the nulled-value counts `_birth_date_parsed` (no
    window), `_birth_date_unparseable` (a value that is not a date) and `_id_<name>_typed` (whether
    the record held more than spaces), each record's key looked up in `keys` (source,
    source_record_id, record_key; see `write_record_keys`), which keyed records need; with
    `only`, the records of those sources alone (`phone_regions` still names every source's);
    with `ids` (per source, a SELECT of record ids as text), only those records of the sources
    it names.

    Unkeyed, narrow records feed the distinct-value steps cheaply. Sources (of
    `entity`, a customer-like entity) are taken in name order. Raises LookupError naming raw tables that do not exist yet.
    """
    sources = {name: source for name, source in sorted(entity.sources.items()) if only is None or name in only}
    missing = [name for name in sources if not table_exists(con, TableName("raw", name))]
    if missing:
        raise LookupError(
            f"raw table(s) {', '.join(f'raw.{n}' for n in missing)} do not exist yet; load those sources first"
        )
    if keyed and keys is None:
        raise ValueError("keyed records need the table of their keys (write_record_keys)")
    identifiers = entity.identifier_names if keyed else []
    selects, params = [], {}
    if keyed:
        params["birth_earliest"], params["birth_latest"] = entity.birth_dates.bounds()
    for index, (name, source) in enumerate(sources.items()):
        table = TableName("raw", name)
        column_types = dict(table_columns(con, table))
        prefix = f"s{index}_"
        params |= {f"{prefix}source": name, f"{prefix}precedence": source.precedence}
        params |= {f"{prefix}phone_region": source.phone_region}
        among = (ids or {}).get(name)
        selects.append(
            _source_sql(prefix, table, source, column_types, fields, identifiers, keys if keyed else None, among)
        )
    phone_regions = sorted({s.phone_region for s in entity.sources.values() if s.phone_region})
    return SourceRecords("\nUNION ALL BY NAME\n".join(f"({s})" for s in selects), params, phone_regions)


def _source_sql(
    prefix: str,
    table: TableName,
    source: Source,
    column_types: dict[str, str],
    fields: Sequence[str],
    identifiers: list[str],
    keys: TableName | None = None,
    among: str | None = None,
) -> str:
    def text(field: str) -> str:
        mapping = source.fields.get(field)
        if mapping is None:
            return "NULL::VARCHAR"
        return _as_text(mapping.column, column_types.get(mapping.column, "VARCHAR"))

    record_id = _record_id_sql(source)
    columns = [
        f"${prefix}source::VARCHAR AS source",
        f"{record_id} AS source_record_id",
        f"${prefix}precedence::INTEGER AS precedence",
        f"${prefix}phone_region::VARCHAR AS source_phone_region",
        *(f"{text(field)} AS {field}_raw" for field in fields),
    ]
    chosen = "" if among is None else f" WHERE {record_id} IN ({among})"
    if keys is None:
        return f"SELECT {', '.join(columns)} FROM {table.sql}{chosen}"
    birth = source.fields.get("birth_date")
    birth_type = column_types.get(birth.column, "VARCHAR") if birth else "DATE"
    if birth is None:
        birth_date = "NULL::DATE"
    else:
        birth_date = _as_date(birth.column, birth_type, birth.format)
    # native dates always parse; for the rest, the (cheap) NULL test goes first
    unparseable = (
        "false"
        if birth is None or birth_type == "DATE" or birth_type.startswith("TIMESTAMP")
        else f"_birth_date_parsed IS NULL AND {_typed(birth.column, birth_type)}"
    )
    plausible = std.plausible_birth_date("_birth_date_parsed", "$birth_earliest::DATE", "$birth_latest::DATE")
    # `_birth_date_parsed` in `unparseable` is the alias just defined (the date is parsed once)
    # every column the config reads, so a record's input hash changes with anything the
    # customer model takes from it (its updated_at, attributes and links included)
    read = [quote_ident(c) for c in source.columns_used() if c in column_types]
    columns.append(f"hash({', '.join(read)}) AS {RAW_ROW_HASH}")
    columns += [f"{birth_date} AS _birth_date_parsed", f"{unparseable} AS _birth_date_unparseable"]
    columns.append(f"{_unparsed_date_digits(birth, birth_type)} AS _birth_date_digits")
    for name in identifiers:
        column = source.identifiers.get(name)
        columns.append(f"{_identifier(column, column_types)} AS {quote_ident('id_' + name)}")
        typed = "false" if column is None else _typed(column, column_types.get(column, "VARCHAR"))
        columns.append(f"{typed} AS {quote_ident('_id_' + name + '_typed')}")
    # the window is applied over the parsed date, so the date is parsed once
    return f"""
        SELECT * EXCLUDE (_birth_date_digits), {plausible} AS birth_date,
               {_birth_date_key(plausible)} AS birth_date_key FROM (
        SELECT {", ".join(columns)}, keys.record_key
        FROM {table.sql}
        JOIN {keys.sql} AS keys ON keys.source = ${prefix}source AND keys.source_record_id = {record_id}{chosen}
        )
    """


def _record_id_sql(source: Source, alias: str = "") -> str:
    """A record's id as text: as the raw load keys records, so ids here match transaction
    and event references."""
    return f"trim(CAST({alias}{quote_ident(source.record_id)} AS VARCHAR))"


def write_record_keys(
    con: duckdb.DuckDBPyConnection,
    entity: EntityPlan,
    keys: TableName,
    next_key: int,
    previous: TableName | None = None,
    only: Collection[str] | None = None,
    ids: Mapping[str, str] | None = None,
) -> None:
    """`keys` (source, source_record_id, record_key) for every record of the entity's raw
    tables (of the sources `only` names, when given; of a source `ids` names, its records
    with those ids): the key `previous` (an earlier lookup) gave it, else the next free one
    from `next_key` on, in (source, source_record_id) order (`number_in_order`)."""
    sources = sorted((name, source) for name, source in entity.sources.items() if only is None or name in only)

    def among(name: str, source: Source) -> str:
        chosen = (ids or {}).get(name)
        return "" if chosen is None else f" WHERE {_record_id_sql(source)} IN ({chosen})"

    ids_sql = " UNION ALL ".join(
        f"SELECT $source_{index}::VARCHAR AS source, {_record_id_sql(source)} AS source_record_id "
        f"FROM {TableName('raw', name).sql}{among(name, source)}"
        for index, (name, source) in enumerate(sources)
    )
    params = {f"source_{index}": name for index, (name, _) in enumerate(sources)}
    every, new, numbered = (TableName(SCRATCH, f"{keys.name}_{part}") for part in ("every", "new", "numbered"))
    try:
        if previous is None:
            con.execute(f"{create_table(new)} AS {ids_sql}", params)
            number_in_order(con, new, ("source", "source_record_id"), next_key, keys)
            return
        con.execute(f"{create_table(every)} AS {ids_sql}", params)
        con.execute(
            f"{create_table(new)} AS SELECT * FROM {every.sql} ANTI JOIN {previous.sql} USING (source, source_record_id)"
        )
        number_in_order(con, new, ("source", "source_record_id"), next_key, numbered)
        con.execute(
            f"""
            {create_table(keys)} AS
            SELECT source, source_record_id, previous.record_key
            FROM {every.sql} JOIN {previous.sql} AS previous USING (source, source_record_id)
            UNION ALL
            SELECT source, source_record_id, record_key FROM {numbered.sql}
            """
        )
    finally:
        for scratch in (every, new, numbered):
            con.execute(f"DROP TABLE IF EXISTS {scratch.sql}")


def _unparsed_date_digits(birth: object, birth_type: str) -> str:
    """SQL: the digits of a text birth date that did not parse ("1949-00-13"), else NULL."""
    if birth is None or birth_type == "DATE" or birth_type.startswith("TIMESTAMP"):
        return "NULL::VARCHAR"
    text = _as_text(birth.column, birth_type)
    digits = std.date_digits(std.trimmed(text) if birth_type == "VARCHAR" else text, birth.format)
    return f"CASE WHEN _birth_date_parsed IS NULL THEN {digits} END"


def _birth_date_key(plausible: str) -> str:
    """SQL: the birth date's match key, 'YYYYMMDD': the plausible date's digits, or those of a
    value no calendar has (a typo: month 13, day 64) whose year is in the plausible window.
    The date itself stays NULL (and counted); the key lets a typo count as a typo."""
    year = "left(_birth_date_digits, 4)::INTEGER"
    in_window = (
        f"{year} <= year($birth_latest::DATE) AND ({year} >= year($birth_earliest::DATE) OR $birth_earliest IS NULL)"
    )
    return (
        f"CASE WHEN _birth_date_parsed IS NOT NULL THEN strftime({plausible}, '%Y%m%d') "
        f"WHEN {in_window} THEN _birth_date_digits END"
    )


def _typed(column: str, data_type: str) -> str:
    """Whether a raw column holds a value: more than spaces for text, not NULL otherwise."""
    if data_type == "VARCHAR":
        return f"{std.trimmed(quote_ident(column))} IS NOT NULL"
    return f"{quote_ident(column)} IS NOT NULL"


def _as_text(column: str, data_type: str) -> str:
    """A raw column as text, untrimmed (each field trims where it matters).

    Parquet floats lose their '.0' so a phone stored as 31612345678.0 stays a number.
    """
    quoted = quote_ident(column)
    if data_type in ("FLOAT", "DOUBLE", "REAL") or data_type.startswith("DECIMAL"):
        return (
            f"CASE WHEN {quoted} = trunc({quoted}) THEN CAST(CAST({quoted} AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST({quoted} AS VARCHAR) END"
        )
    return quoted if data_type == "VARCHAR" else f"CAST({quoted} AS VARCHAR)"


# Characters people type into ids to group digits ("NL-12 345.678/9"); they carry no identity.
_ID_SEPARATORS = r"[\s\pZ\-./]+"


def _identifier(column: str | None, column_types: dict[str, str]) -> str:
    """A source identifier as comparable text: upper-cased, without spaces, dashes,
    dots and slashes; NULL when empty and for sources that do not have it."""
    if column is None:
        return "NULL::VARCHAR"
    text = _as_text(column, column_types.get(column, "VARCHAR"))
    separators = std.sql_string(_ID_SEPARATORS)
    return (
        f"nullif(upper(CASE WHEN regexp_matches({text}, {separators}) "
        f"THEN regexp_replace({text}, {separators}, '', 'g') ELSE {text} END), '')"
    )


def _as_date(column: str, data_type: str, strftime_format: str | None) -> str:
    """A raw date column as DATE: native dates as they are, text with the configured format."""
    if data_type == "DATE":
        return quote_ident(column)
    if data_type.startswith("TIMESTAMP"):
        return f"CAST({quote_ident(column)} AS DATE)"
    text = _as_text(column, data_type)
    return std.parsed_date(text if data_type != "VARCHAR" else std.trimmed(text), strftime_format)
