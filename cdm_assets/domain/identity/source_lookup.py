"""`identity.source_lookup`: every customer record of every customer source,
standardised, with the match keys the identity rules compare.

One SQL statement: a `UNION ALL BY NAME` of one SELECT per customer source
(mapping its columns to the canonical fields), then stages that clean names,
emails, dates, addresses, countries and phones and derive the keys. The
reference tables (countries, nicknames, phone metadata) are small Arrow tables
registered for the duration of the build. The table is built under a staging
name and swapped in, so readers never see a half-built lookup.

`record_key` numbers the records 0..n-1 in (source, source_record_id) order:
the identity graph and the clustering use it as the node id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from cdm_assets.config.model import CdmConfig, SourceConfig, column_of, format_of
from cdm_assets.domain.identity import standardise as std
from cdm_assets.domain.identity.countries import country_aliases
from cdm_assets.domain.identity.phone_numbers import e164_sql, phone_prefixes, phone_regions, phone_stage_sql
from cdm_assets.domain.identity.reference_data import nickname_roots
from cdm_assets.domain.warehouse import TableName, quote_ident, staged_tables, swap_in, table_columns, table_exists

SOURCE_LOOKUP = TableName("identity", "source_lookup")
# Each distinct typed country (staged beside the lookup while it builds) → ISO code.
TYPED_COUNTRIES = TableName("identity", "typed_countries")

# Canonical text fields read from a source; `birth_date` is parsed separately.
TEXT_FIELDS = ("first_name", "last_name", "full_name", "email", "phone", "street", "postcode", "city", "country")

# Columns every lookup has, in order; `id_<name>` columns follow `country`.
LEADING_COLUMNS = (
    "record_key", "source", "source_record_id", "precedence",
    "first_name", "last_name", "email", "phone", "birth_date",
    "street", "house_number", "postcode", "city", "country",
)  # fmt: skip
KEY_COLUMNS = (
    "first_name_key", "first_name_root", "last_name_key", "last_name_core",
    "email_key", "phone_key", "postcode_key", "address_key",
)  # fmt: skip

# Names under which the reference tables are visible while the lookup builds.
_COUNTRY_ALIASES = "_cdm_ref_country_aliases"
_NICKNAMES = "_cdm_ref_nicknames"
_PHONE_REGIONS = "_cdm_ref_phone_regions"
_PHONE_PREFIXES = "_cdm_ref_phone_prefixes"


def build_source_lookup(con: duckdb.DuckDBPyConnection, config: CdmConfig) -> int:
    """Rebuild `identity.source_lookup` from `raw.<source>` of every customer source; returns its row count."""
    sources = dict(sorted(config.sources_of("customer").items()))
    missing = [name for name in sources if not table_exists(con, TableName("raw", name))]
    if missing:
        raise LookupError(
            f"cannot build {SOURCE_LOOKUP}: raw table(s) {', '.join(f'raw.{n}' for n in missing)} "
            "do not exist yet; load those sources first"
        )
    identifiers = config.identifier_names()
    selects, params = [], {}
    for index, (name, source) in enumerate(sources.items()):
        column_types = dict(table_columns(con, TableName("raw", name)))
        select, source_params = source_records_sql(index, name, source, column_types, identifiers)
        selects.append(select)
        params.update(source_params)
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    records = "\nUNION ALL BY NAME\n".join(f"({s})" for s in selects)
    with (
        staged_tables(con, SOURCE_LOOKUP, TYPED_COUNTRIES) as (staging, countries),
        _reference_tables(con),
    ):
        con.execute(f"CREATE TABLE {countries.sql} AS {typed_countries_sql(records)}", params)
        # National numbers belong to the record's country, else the source's phone region.
        home_regions = [row[0] for row in con.execute(f"SELECT DISTINCT country FROM {countries.sql}").fetchall()]
        home_regions += [s.phone_region for s in sources.values() if s.phone_region]
        con.execute(
            f"CREATE TABLE {staging.sql} AS {lookup_sql(records, identifiers, countries, home_regions)}", params
        )
        swap_in(con, [(SOURCE_LOOKUP, staging)])
    # fetch to the end: an unfinished result would block the next query on this connection
    return con.execute(f"SELECT count(*) FROM {SOURCE_LOOKUP.sql}").fetchall()[0][0]


def lookup_columns(identifier_names: list[str]) -> list[str]:
    """The columns of `identity.source_lookup`, in order."""
    return [*LEADING_COLUMNS, *(f"id_{name}" for name in identifier_names), *KEY_COLUMNS]


@contextmanager
def _reference_tables(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    names, roots = zip(*nickname_roots())
    tables = {
        _COUNTRY_ALIASES: country_aliases(),
        _NICKNAMES: pa.table({"name": list(names), "root": list(roots)}),
        _PHONE_REGIONS: phone_regions(),
        _PHONE_PREFIXES: phone_prefixes(),
    }
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield
    finally:
        for name in tables:
            con.unregister(name)


def source_records_sql(
    index: int, name: str, source: SourceConfig, column_types: dict[str, str], identifiers: list[str]
) -> tuple[str, dict]:
    """One source's records with the canonical fields as raw text (plus a parsed birth date)."""
    prefix = f"s{index}_"

    def text(field: str) -> str:
        mapping = source.fields.get(field)
        if mapping is None:
            return "NULL::VARCHAR"
        return _as_text(column_of(mapping), column_types.get(column_of(mapping), "VARCHAR"))

    birth = source.fields.get("birth_date")
    birth_date = (
        "NULL::DATE"
        if birth is None
        else _as_date(column_of(birth), column_types.get(column_of(birth), "VARCHAR"), format_of(birth))
    )
    identifier_columns = [
        f"{_identifier(source.identifiers.get(name), column_types)} AS {quote_ident('id_' + name)}"
        for name in identifiers
    ]
    columns = [
        f"${prefix}source::VARCHAR AS source",
        # as raw_tables keys records, so ids here match transaction references
        f"trim(CAST({quote_ident(source.record_id)} AS VARCHAR)) AS source_record_id",
        f"${prefix}precedence::INTEGER AS precedence",
        f"${prefix}phone_region::VARCHAR AS source_phone_region",
        *(f"{text(field)} AS {field}_raw" for field in TEXT_FIELDS),
        f"{std.plausible_birth_date(birth_date)} AS birth_date",
        *identifier_columns,
    ]
    sql = f"SELECT {', '.join(columns)} FROM {TableName('raw', name).sql}"
    return sql, {f"{prefix}source": name, f"{prefix}precedence": source.precedence, f"{prefix}phone_region": source.phone_region}


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


def _identifier(column: str | None, column_types: dict[str, str]) -> str:
    """A source identifier as trimmed text; NULL for sources that do not have it."""
    if column is None:
        return "NULL::VARCHAR"
    return f"nullif(trim({_as_text(column, column_types.get(column, 'VARCHAR'))}), '')"


def _as_date(column: str, data_type: str, strftime_format: str | None) -> str:
    """A raw date column as DATE: native dates as they are, text with the configured format."""
    if data_type == "DATE":
        return quote_ident(column)
    if data_type.startswith("TIMESTAMP"):
        return f"CAST({quote_ident(column)} AS DATE)"
    return std.parsed_date(f"trim({_as_text(column, data_type)})", strftime_format)


def lookup_sql(records: str, identifiers: list[str], countries: TableName, home_regions: list[str]) -> str:
    """The SELECT that standardises the union of per-source `records` into the lookup's columns.

    Per-record work is kept to cheap string functions; names and countries,
    which repeat a lot, are standardised once per distinct value and joined back.
    """
    ids = "".join(f"{quote_ident('id_' + i)}, " for i in identifiers)
    after_comma = std.without_titles("trim(_full_name[strpos(_full_name, ',') + 1:])")
    return f"""
    WITH records AS (
        SELECT *, CAST(row_number() OVER (ORDER BY source, source_record_id) - 1 AS BIGINT) AS record_key
        FROM ({records})
    ),
    texts AS (
        SELECT records.* EXCLUDE (email_raw, street_raw, postcode_raw, city_raw, country_raw),
               countries.country,
               coalesce(countries.country, source_phone_region) AS phone_region,
               phone_raw AS phone_text,
               {std.without_titles(std.collapsed('full_name_raw'))} AS _full_name,
               {std.email_text('email_raw')} AS _email_text,
               nullif(trim(street_raw), '') AS street,
               nullif(upper(trim(postcode_raw)), '') AS _postcode_text,
               nullif(trim(city_raw), '') AS city
        FROM records
        LEFT JOIN {countries.sql} AS countries ON countries.country_raw = records.country_raw
    ),
    comma_names AS (
        -- "Berg, Jan van der": last name first; particles after the given name move back
        SELECT *,
               strpos(_full_name, ',') AS _comma,
               CASE WHEN strpos(_full_name, ',') > 0 THEN {std.given_name_and_particles(after_comma)} END
                   AS _after_comma
        FROM texts
    ),
    names AS MATERIALIZED (
        -- typed first and last names win; a full name fills what is missing
        SELECT * EXCLUDE (_comma, _after_comma, _full_name, first_name_raw, last_name_raw),
               coalesce(first_name_raw,
                        CASE WHEN _comma > 0 THEN nullif(trim(_after_comma.given), '')
                             ELSE split_part(_full_name, ' ', 1) END) AS _first_name,
               coalesce(last_name_raw,
                        CASE WHEN _comma > 0
                             THEN nullif(concat_ws(' ', nullif(trim(_after_comma.particles), ''),
                                                   nullif(trim(_full_name[:_comma - 1]), '')), '')
                             ELSE nullif(trim(_full_name[length(split_part(_full_name, ' ', 1)) + 1:]), '') END)
                   AS _last_name
        FROM comma_names
    ),
    {_names_sql()},
    standardised AS (
        SELECT *,
               {std.email('_email_text')} AS email,
               {std.house_number_parts('street')} AS _house,
               {std.postcode_key('_postcode_text')} AS postcode_key
        FROM names
    ),
    {phone_stage_sql('standardised', _PHONE_REGIONS, _PHONE_PREFIXES, home_regions)}
    SELECT record_key, source, source_record_id, precedence,
           first_names.first_name, last_names.last_name, email, {e164_sql()} AS phone, birth_date,
           street, {std.house_number('_house')} AS house_number,
           {std.postcode('_postcode_text', 'postcode_key', 'country')} AS postcode, city, country,
           {ids}
           first_name_key, first_name_root, last_name_key, last_name_core,
           {std.email_key('email')} AS email_key, phone_key, postcode_key,
           CASE WHEN postcode_key IS NOT NULL AND house_number IS NOT NULL
                THEN postcode_key || '|' || house_number END AS address_key
    FROM phones
    LEFT JOIN first_names ON first_names._first_name = phones._first_name
    LEFT JOIN last_names ON last_names._last_name = phones._last_name
    """


def typed_countries_sql(records: str) -> str:
    """Each distinct country value of `records` with its ISO alpha-2 code (unknown values left out)."""
    return f"""
    WITH country_alias_keys AS (
        SELECT {std.country_key('alias')} AS key, country, priority
        FROM {_COUNTRY_ALIASES}
    ),
    country_names AS (
        -- the best priority wins; an alias two countries share at that priority names neither
        SELECT key, min(country) AS country
        FROM (SELECT *, min(priority) OVER (PARTITION BY key) AS best FROM country_alias_keys)
        WHERE key IS NOT NULL AND priority = best
        GROUP BY key
        HAVING count(DISTINCT country) = 1
    )
    SELECT typed.country_raw, country_names.country
    FROM (SELECT DISTINCT country_raw FROM ({records}) WHERE country_raw IS NOT NULL) AS typed
    JOIN country_names ON country_names.key = {std.country_key('typed.country_raw')}
    """


def _names_sql() -> str:
    """CTEs `first_names` and `last_names`: each distinct name, cleaned, cased and keyed."""
    return f"""
    first_name_values AS (
        SELECT _first_name, {std.without_titles(std.collapsed('_first_name'))} AS cleaned
        FROM (SELECT DISTINCT _first_name FROM names WHERE _first_name IS NOT NULL)
    ),
    first_names AS (
        SELECT _first_name,
               {std.name_cased('cleaned', surname=False)} AS first_name,
               {std.letters_only(std.folded('cleaned'))} AS first_name_key,
               coalesce(nicknames.root, given) AS first_name_root
        FROM (SELECT *, {std.first_given_name(std.folded('cleaned'))} AS given FROM first_name_values) AS named
        LEFT JOIN (
            SELECT {std.letters_only(std.folded('name'))} AS name, {std.letters_only(std.folded('root'))} AS root
            FROM {_NICKNAMES}
        ) AS nicknames ON nicknames.name = named.given
    ),
    last_name_values AS (
        SELECT _last_name, {std.collapsed('_last_name')} AS cleaned
        FROM (SELECT DISTINCT _last_name FROM names WHERE _last_name IS NOT NULL)
    ),
    last_names AS (
        SELECT _last_name,
               {std.name_cased('cleaned', surname=True)} AS last_name,
               {std.letters_only(std.folded('cleaned'))} AS last_name_key,
               {std.without_leading_particles(std.folded('cleaned'))} AS last_name_core
        FROM last_name_values
    )"""
