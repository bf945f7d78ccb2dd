"""`identity.source_lookup`: every customer record of every customer source,
standardised, with the match keys the identity rules compare.

Three statements, all vectorised SQL. Countries and names repeat a lot, so
each distinct typed country and each distinct first and last name is
standardised once (`typed_countries_sql`, `person_names_sql`); then one pass
over the `UNION ALL BY NAME` of the sources' records (`source_records`)
cleans emails, phones, dates and addresses, derives the keys and joins the
distinct values back (`lookup_sql`). Reference data (country aliases,
nicknames, phone metadata) are small Arrow tables registered for the build.
Everything is built under staging names and swapped in, so readers never see
a half-built lookup.

`record_key` is the node id of the identity graph and the clustering. The
first build numbers the records 0..n-1 in (source, source_record_id) order;
later builds keep each record's key and record what they added, changed and
removed (`lookup_changes`), so the graph can follow a batch without a rebuild.

Nothing is dropped silently: a value the standardisation leaves NULL (an
implausible birth date, an invalid email, a placeholder phone, ...) is
counted per source, field and reason (`nulled_values`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from cdm_assets.domain.identity import standardise as std
from cdm_assets.domain.identity.countries import country_aliases
from cdm_assets.domain.identity.lookup_changes import (
    INPUT_HASH_COLUMN,
    LookupBuild,
    PreviousBuild,
    build_table,
    changes_table,
    input_hash_sql,
    lookup_fingerprint,
    lookup_version,
    previous_build,
    record_lookup_changes,
    records_table,
    touched_records,
)
from cdm_assets.domain.identity.nulled_values import (
    NULLED_REASONS_COLUMN,
    NulledValues,
    NullingReason,
    count_nulled_values,
    nulled_reasons_sql,
)
from cdm_assets.domain.identity.person_names import NICKNAMES, person_names_sql, split_names_sql
from cdm_assets.domain.identity.phone_numbers import (
    MAX_KEY_DIGITS,
    MIN_KEY_DIGITS,
    e164_sql,
    phone_prefixes,
    phone_regions,
    phone_stage_sql,
)
from cdm_assets.domain.identity.reference_data import nickname_roots
from cdm_assets.domain.identity.source_records import customer_records, write_record_keys
from cdm_assets.domain.plan import EntityPlan
from cdm_assets.domain.raw.landed_since import raw_changes_table
from cdm_assets.domain.sql import SCRATCH, TableName, quote_ident
from cdm_assets.domain.table_versions import BuiltFrom, Delta, built_from_now, input_deltas, recorded_inputs
from cdm_assets.domain.vocabulary import MATCH_KEYS, NAME_FIELDS
from cdm_assets.domain.warehouse import (
    RowReplacement,
    arrow_views,
    create_table_as,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

# Columns every lookup has, in order; `id_<name>` columns follow `country`.
LEADING_COLUMNS = (
    "record_key", "source", "source_record_id", "precedence",
    "first_name", "last_name", "email", "phone", "birth_date",
    "street", "house_number", "postcode", "city", "country",
)  # fmt: skip
# The match key columns follow, names first.
_KEY_ORDER = ("first_name", "first_name_root", "last_name", "last_name_core", "name_initials", "birth_date")
KEY_COLUMNS = tuple(MATCH_KEYS[key].column for key in (*_KEY_ORDER, "email", "phone", "postcode", "address"))

# Names under which the reference tables are visible while the lookup builds.
_COUNTRY_ALIASES = "_cdm_ref_country_aliases"
_PHONE_REGIONS = "_cdm_ref_phone_regions"
_PHONE_PREFIXES = "_cdm_ref_phone_prefixes"


@dataclass(frozen=True)
class SourceLookupBuild:
    """What a lookup build did: its row count and the values it left NULL, by source, field and reason."""

    records: int
    nulled: list[NulledValues]
    build: LookupBuild | None = None  # which records it added, changed and removed
    standardised: int | None = None  # records it standardised: all, or those whose input changed
    read_by_changes: tuple[str, ...] = ()  # sources whose records it read by their loads' recorded changes


def build_source_lookup(con: duckdb.DuckDBPyConnection, entity: EntityPlan, full: bool = False) -> int:
    """Rebuild `identity.source_lookup` (or the lookup of another customer-like entity)
    from `raw.<source>` of every source of the entity; returns its row count."""
    return build_source_lookup_counting_nulls(con, entity, full=full).records


def build_source_lookup_counting_nulls(
    con: duckdb.DuckDBPyConnection, entity: EntityPlan, full: bool = False
) -> SourceLookupBuild:
    """Rebuild the lookup of `entity` (see `build_source_lookup`) and count the values it nulled.

    Three statements: distinct countries and distinct names are standardised
    first (they repeat a lot), then one pass over the records does the rest
    and marks each record with the reasons its values were nulled; the marks
    are counted and kept per record (`identity_state.<lookup>_records`, with a
    hash of the record's input) before the lookup is swapped in.

    When the lookup in the warehouse was built with the same settings, only the
    records whose input changed (or that are new) are standardised, and the
    lookup's rows of those and of removed records are replaced in one
    transaction (unless `full`). A record's standardised row depends on its
    own input alone, so the lookup is the one a full build makes.
    """
    target = entity.tables.lookup
    raw_tables = [TableName("raw", name) for name in sorted(entity.sources)]
    raw_inputs = built_from_now(con, target, raw_tables)
    previous = previous_build(con, target)
    fingerprint = lookup_fingerprint(entity)
    state = records_table(target)
    follow = not full and previous is not None and previous.fingerprint == fingerprint and table_exists(con, state)
    # Following, only the sources loaded since the last build can hold changed records; of
    # a source whose load recorded the records it changed, only those.
    keyed = _reloaded_sources(con, entity, raw_inputs) if follow else None
    changed_ids = _recorded_raw_changes(con, target, raw_tables, keyed) if keyed else {}
    keys = TableName(SCRATCH, f"{target.name}_record_keys")
    touched = TableName(SCRATCH, f"{target.name}_touched_records")
    touched_inputs = TableName(SCRATCH, f"{target.name}_touched_inputs")
    for scratch in (keys, touched, touched_inputs):
        con.execute(f"DROP TABLE IF EXISTS {scratch.sql}")
    try:
        records = customer_records(con, entity, keys=keys, only=keyed, ids=changed_ids)
        # narrow unkeyed records for the distinct-value steps
        countries_only = customer_records(con, entity, fields=("country",), keyed=False)
        names_only = customer_records(con, entity, fields=NAME_FIELDS, keyed=False)
    except LookupError as error:
        raise LookupError(f"cannot build {target}: {error}") from None
    if previous is not None:  # records keep the keys the lookup in the warehouse gave them
        write_record_keys(con, entity, keys, previous.next_record_key, target, only=keyed, ids=changed_ids)
    else:
        write_record_keys(con, entity, keys, 0)
    names_input = names_only
    if follow:  # the records whose input changed, and the keys of those that went
        touched_records(con, records, state, keys, touched_inputs, touched, keyed, target, changed_ids)
        records = names_input = dataclasses.replace(records, sql=f"SELECT * FROM {touched_inputs.sql}", params={})
    for schema in ("identity", state.schema):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    # Built beside the lookup while it builds, then dropped: each distinct typed
    # country → ISO code, and each distinct first and last name → display form and keys.
    typed_countries = TableName(target.schema, f"{target.name}_typed_countries")
    person_names = TableName(target.schema, f"{target.name}_person_names")
    changes, build = changes_table(target), build_table(target)
    with (
        staged_tables(con, target, typed_countries, person_names, changes, build, state) as (
            staging,
            countries,
            names,
            staged_changes,
            staged_build,
            staged_state,
        ),
        _reference_tables(con),
    ):
        con.execute(f"CREATE TABLE {countries.sql} AS {typed_countries_sql(countries_only.sql)}", countries_only.params)
        con.execute(f"CREATE TABLE {names.sql} AS {person_names_sql(names_input.sql)}", names_input.params)
        # National numbers belong to the record's country, else the source's phone region.
        typed = con.execute(f"SELECT DISTINCT country FROM {countries.sql}").fetchall()
        home_regions = sorted({row[0] for row in typed} | set(records.phone_regions))
        identifiers = entity.identifier_names
        lookup = lookup_sql(records.sql, identifiers, countries, names, home_regions)
        identifier_columns = [f"id_{name}" for name in identifiers]
        create_table_as(con, staging, lookup, records.params, plain_text=identifier_columns)
        for scratch in (keys, touched_inputs):
            con.execute(f"DROP TABLE IF EXISTS {scratch.sql}")
        standardised = row_count(con, staging)
        staged = (staging, staged_changes, staged_build, staged_state)
        lookup_build = _swap_in_lookup(
            con, target, staged, previous, fingerprint, touched if follow else None, raw_inputs
        )
        nulled = count_nulled_values(con, state, [reason for reason, _ in nulling_conditions(identifiers)])
    read_by_changes = tuple(sorted(name for name, ids in changed_ids.items() if ids != _NO_RECORD_IDS))
    return SourceLookupBuild(row_count(con, target), nulled, lookup_build, standardised, read_by_changes)


def _reloaded_sources(con: duckdb.DuckDBPyConnection, entity: EntityPlan, raw_inputs: BuiltFrom) -> list[str]:
    """The entity's sources whose raw table is not the one the lookup in the warehouse was
    built from (at least one source, so the records' SQL stays valid)."""
    recorded = recorded_inputs(con, raw_inputs.table) or {}
    reloaded = [
        name
        for name in sorted(entity.sources)
        if (version := raw_inputs.inputs.get(TableName("raw", name))) is None
        or recorded.get(TableName("raw", name)) != version
    ]
    return reloaded or [min(entity.sources)]


_NO_RECORD_IDS = "SELECT NULL::VARCHAR AS record_id WHERE false"


def _recorded_raw_changes(
    con: duckdb.DuckDBPyConnection, target: TableName, raw_tables: list[TableName], sources: list[str]
) -> dict[str, str]:
    """Per source of `sources` whose raw table's changes since the version the lookup was
    built from (of `raw_tables`, all the entity's) are recorded: a SELECT of the record ids
    they touch; none for a source whose raw table is the one the lookup was built from."""
    deltas = input_deltas(con, target, raw_tables)
    changed = {}
    for name in sources:
        delta = deltas.of(TableName("raw", name))
        if delta is Delta.NONE:  # read only to keep the records' SQL whole: it holds no changed record
            changed[name] = _NO_RECORD_IDS
        elif delta is Delta.RECORDED and table_exists(con, raw_changes_table(name)):
            changed[name] = f"SELECT record_id FROM {raw_changes_table(name).sql}"
    return changed


def _swap_in_lookup(
    con: duckdb.DuckDBPyConnection,
    target: TableName,
    staged: tuple[TableName, TableName, TableName, TableName],
    previous: PreviousBuild | None,
    fingerprint: str,
    touched: TableName | None,
    raw_inputs: BuiltFrom,
) -> LookupBuild:
    """Keep each staged record's input hash and nulling reasons in the records state, record
    the changes and the build (as the lookup's version, built from `raw_inputs`), and swap all
    in: the whole lookup, or with `touched` (the keys of the records standardised again and
    of those gone) only those records' rows."""
    staging, staged_changes, staged_build, staged_state = staged
    state, changes, build = records_table(target), changes_table(target), build_table(target)
    state_columns = f"record_key, source, {quote_ident(INPUT_HASH_COLUMN)}, {quote_ident(NULLED_REASONS_COLUMN)}"
    con.execute(f"CREATE TABLE {staged_state.sql} AS SELECT {state_columns} FROM {staging.sql}")
    for column in (NULLED_REASONS_COLUMN, INPUT_HASH_COLUMN):
        con.execute(f"ALTER TABLE {staging.sql} DROP COLUMN {quote_ident(column)}")
    if touched is None:
        lookup_build = record_lookup_changes(
            con, target, staging, staged_changes, staged_build, previous, fingerprint, staged_state=staged_state
        )
        swap_in(
            con,
            [(target, staging), (changes, staged_changes), (build, staged_build), (state, staged_state)],
            versions=[lookup_version(target, lookup_build)],
            built_from=[raw_inputs],
        )
        return lookup_build
    affected = f"(SELECT record_key FROM {touched.sql})"
    lookup_build = record_lookup_changes(
        con, target, staging, staged_changes, staged_build, previous, fingerprint, affected, staged_state
    )
    swap_in(
        con,
        [(changes, staged_changes), (build, staged_build)],
        row_replacements=[RowReplacement(target, staging, affected), RowReplacement(state, staged_state, affected)],
        versions=[lookup_version(target, lookup_build)],
        built_from=[raw_inputs],
    )
    con.execute(f"DROP TABLE {touched.sql}")
    return lookup_build


def lookup_columns(identifier_names: list[str]) -> list[str]:
    """The columns of `identity.source_lookup`, in order."""
    return [*LEADING_COLUMNS, *(f"id_{name}" for name in identifier_names), *KEY_COLUMNS]


_PHONE_KEY_LENGTH = f"length(_phone_nsn) BETWEEN {MIN_KEY_DIGITS} AND {MAX_KEY_DIGITS}"


def nulling_conditions(identifiers: list[str]) -> list[tuple[NullingReason, str]]:
    """Every way the lookup leaves a field NULL although the record held a value there, with
    its condition over the columns of `standardised_records` in `lookup_sql`.

    Blank values (empty, spaces) were never values. A placeholder email stays
    in `email` (shown, never matched): only its key is dropped. A phone without
    a key lost its E.164 form too.
    """
    # the cheap NULL tests first: the rest is evaluated only for the few records they leave
    phone_typed = f"phone_key IS NULL AND phone_text IS NOT NULL AND {std.trimmed('phone_text')} IS NOT NULL"
    return [
        (NullingReason("first_name_key", "no letters"), "first_name_key IS NULL AND first_name IS NOT NULL"),
        (
            NullingReason("first_name_root", "no letters in the first given name"),
            "first_name_root IS NULL AND first_name_key IS NOT NULL",
        ),
        (NullingReason("last_name_key", "no letters"), "last_name_key IS NULL AND last_name IS NOT NULL"),
        (NullingReason("email", "invalid"), "email IS NULL AND _email_lower IS NOT NULL"),
        (NullingReason("email_key", "placeholder"), "email_key IS NULL AND email IS NOT NULL"),
        (NullingReason("phone", "placeholder"), f"{phone_typed} AND {_PHONE_KEY_LENGTH}"),
        (NullingReason("phone", "unparseable"), f"{phone_typed} AND NOT coalesce({_PHONE_KEY_LENGTH}, false)"),
        (
            NullingReason("phone", "no region to read it in (key kept)"),
            "phone IS NULL AND phone_key IS NOT NULL AND _phone_number_region IS NULL",
        ),
        (
            NullingReason("phone", "impossible length for its region (key kept)"),
            "phone IS NULL AND phone_key IS NOT NULL AND _phone_number_region IS NOT NULL",
        ),
        (NullingReason("birth_date", "unparseable"), "_birth_date_unparseable"),
        (
            NullingReason("birth_date", "outside plausible window"),
            "birth_date IS NULL AND _birth_date_parsed IS NOT NULL",
        ),
        (NullingReason("postcode_key", "no letters or digits"), "postcode_key IS NULL AND postcode IS NOT NULL"),
        (
            NullingReason("country", "unknown"),
            f"country IS NULL AND country_raw IS NOT NULL AND {std.trimmed('country_raw')} IS NOT NULL",
        ),
        *(
            (
                NullingReason(f"id_{name}", "only separators"),
                f"{quote_ident(f'id_{name}')} IS NULL AND {quote_ident(f'_id_{name}_typed')}",
            )
            for name in identifiers
        ),
    ]


@contextmanager
def _reference_tables(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Make the reference tables visible to the build's statements, and only to them."""
    names, roots = zip(*nickname_roots())
    tables = {
        _COUNTRY_ALIASES: country_aliases(),
        NICKNAMES: pa.table({"name": list(names), "root": list(roots)}),
        _PHONE_REGIONS: phone_regions(),
        _PHONE_PREFIXES: phone_prefixes(),
    }
    with arrow_views(con, tables):
        yield


def lookup_sql(
    records: str, identifiers: list[str], countries: TableName, names: TableName, home_regions: list[str]
) -> str:
    """The SELECT that standardises the union of per-source `records` into the lookup's columns,
    plus `NULLED_REASONS_COLUMN`: the bits of the `nulling_conditions` each record meets, and
    `INPUT_HASH_COLUMN`: a hash of the record's input.

    Per-record work is kept to cheap string functions; names and countries,
    which repeat a lot, were standardised once per distinct value beforehand
    (`countries`, `names`) and are joined in.
    """
    ids = "".join(f"{quote_ident('id_' + i)}, " for i in identifiers)
    typed_ids = "".join(f"{quote_ident('_id_' + i + '_typed')}, " for i in identifiers)
    columns = ", ".join(quote_ident(c) for c in lookup_columns(identifiers))
    return f"""
    WITH records AS (SELECT r.*, {input_hash_sql("r")} AS {quote_ident(INPUT_HASH_COLUMN)} FROM ({records}) AS r),
    {split_names_sql("records")},
    texts AS (
        SELECT split_names.* EXCLUDE (email_raw, street_raw, postcode_raw, city_raw),
               countries.country,
               coalesce(countries.country, source_phone_region) AS phone_region,
               phone_raw AS phone_text,
               lower({std.trimmed("email_raw")}) AS _email_lower,
               {std.trimmed("street_raw")} AS street,
               upper({std.trimmed("postcode_raw")}) AS _postcode_text,
               {std.trimmed("city_raw")} AS city
        FROM split_names
        LEFT JOIN {countries.sql} AS countries ON countries.country_raw = split_names.country_raw
    ),
    emails AS (
        SELECT *, {std.email_text("_email_lower")} AS _email_text FROM texts
    ),
    standardised AS (
        SELECT *,
               {std.email("_email_text")} AS email,
               strpos(_email_text, '@') AS _email_at,
               {std.house_number_parts("street")} AS _house,
               {std.postcode_key("_postcode_text")} AS postcode_key
        FROM emails
    ),
    {phone_stage_sql("standardised", _PHONE_REGIONS, _PHONE_PREFIXES, home_regions)},
    standardised_records AS (
    SELECT record_key, source, source_record_id, precedence,
           first_names.name AS first_name, last_names.name AS last_name,
           email, {e164_sql()} AS phone, birth_date,
           street, {std.house_number("_house")} AS house_number,
           {std.postcode("_postcode_text", "postcode_key", "country")} AS postcode, city, country,
           {ids}
           first_names.key AS first_name_key, first_names.root AS first_name_root,
           last_names.key AS last_name_key, last_names.root AS last_name_core,
           {std.name_initials("first_names.key", "last_names.root")} AS name_initials, birth_date_key,
           {std.email_key("email", "_email_at")} AS email_key, phone_key, postcode_key,
           CASE WHEN postcode_key IS NOT NULL AND house_number IS NOT NULL
                THEN postcode_key || '|' || house_number END AS address_key,
           -- what the nulling reasons look at besides the lookup's columns
           phone_text, _phone_nsn, _phone_number_region, _email_lower, phones.country_raw,
           {typed_ids}_birth_date_unparseable, _birth_date_parsed, {quote_ident(INPUT_HASH_COLUMN)}
    FROM phones
    LEFT JOIN {names.sql} AS first_names
           ON first_names.part = 'first' AND first_names.typed = phones._first_name
    LEFT JOIN {names.sql} AS last_names
           ON last_names.part = 'last' AND last_names.typed = phones._last_name
    )
    SELECT {columns}, {nulled_reasons_sql(nulling_conditions(identifiers))} AS {quote_ident(NULLED_REASONS_COLUMN)},
           {quote_ident(INPUT_HASH_COLUMN)}
    FROM standardised_records
    """


def typed_countries_sql(records: str) -> str:
    """Each distinct country value of `records` with its ISO alpha-2 code (unknown values left out)."""
    return f"""
    WITH country_alias_keys AS (
        SELECT {std.country_key("alias")} AS key, country, priority
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
    JOIN country_names ON country_names.key = {std.country_key("typed.country_raw")}
    """
