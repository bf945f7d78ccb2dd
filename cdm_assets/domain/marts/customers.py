"""`marts.customers`: one golden record per Customer ID.

Each field takes the value that survives among the customer's records: by
default from the source with the best (lowest) `precedence`, then the most
recent (the source's `updated_at`), then the most frequent. `customers.survivorship` in cdm.yaml can lead with
`most_recent` or `most_frequent` per field. Address parts (street, house
number, postcode, city, country) survive together from one record, so a
golden address is never stitched from two homes. Attributes declared under a
source's `attributes:` become columns with no code change.

Other customer-like entities (e.g. `account`) get their golden records the
same way, in their own table (`marts.accounts`, keyed by `account_id`). A
record's `links:` (a contact's account) become an `<entity>_id` column: the
linked record's stable id, surviving like any other field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.customer_ids import map_changes_table
from cdm_assets.domain.identity.lookup_changes import changes_table
from cdm_assets.domain.marts.attributes import STAGE as ATTRIBUTES_STAGE
from cdm_assets.domain.marts.attributes import attribute_rejects_sql
from cdm_assets.domain.marts.changed_customers import changed_customers_table, stage_changed_customers
from cdm_assets.domain.marts.parsing import attribute_sql, timestamp_sql
from cdm_assets.domain.plan import EntityPlan, Source
from cdm_assets.domain.raw.land_file import near_unique_columns
from cdm_assets.domain.sql import (
    SCRATCH,
    TableName,
    create_table,
    hash_bucket,
    quote_ident,
    sql_array,
    sql_string,
    union_all,
)
from cdm_assets.domain.table_versions import (
    BuiltFrom,
    Delta,
    InputDeltas,
    built_from_now,
    input_deltas,
    recorded_inputs,
)
from cdm_assets.domain.vocabulary import CUSTOMER
from cdm_assets.domain.warehouse import (
    QuarantineReplacement,
    create_table_as,
    ensure_quarantine,
    ensure_schemas,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

PERSON_FIELDS = ("first_name", "last_name", "email", "phone", "birth_date")
ADDRESS_FIELDS = ("street", "house_number", "postcode", "city", "country")
ADDRESS = "address"
# A record has an address when it has a street or a postcode (a city alone is none).
_HAS_ADDRESS = "street IS NOT NULL OR postcode IS NOT NULL"

# Sort keys per survivorship rule, over one candidate value of one customer:
# its best precedence, its latest update (missing dates last), how many
# records carry it. Every rule ends with the same tie-breakers, then the
# value itself, so the choice is deterministic.
_PRECEDENCE = "precedence"
_RECENCY = "coalesce(-epoch(updated_at), 1e18)"
_FREQUENCY = "-frequency"
# Customers' records are aggregated in passes of about this many records, so a
# large run's aggregations fit in memory (a customer's records share one pass).
# Each pass joins the whole lookup and raw tables again, so fewer passes are
# faster: at 5M persons (9.9M records, `memory_limit` 6GB) two passes took
# 38.9 s at 5.7 GB peak against 43.5 s for four; one pass ran out of memory.
RECORDS_PER_PASS = 5_000_000
_ORDER = {
    "precedence": (_PRECEDENCE, _RECENCY, _FREQUENCY),
    "most_recent": (_RECENCY, _PRECEDENCE, _FREQUENCY),
    "most_frequent": (_FREQUENCY, _PRECEDENCE, _RECENCY),
}


def build_customers(con: duckdb.DuckDBPyConnection, entity: EntityPlan, full: bool = False) -> CustomersReport:
    """Build `marts.customers` (or the golden records of another customer-like entity).

    A golden record depends on its customer's records alone: their lookup rows,
    the raw columns the config reads (whose hash is part of each lookup record's
    input hash) and their ids. So when the lookup and the id map record their
    changes since the golden records were built, and the lookup was built from
    the raw tables as they are now and as they were then, only the customers of
    changed records are built again and their rows replaced (unless `full`).
    """
    ensure_schemas(con, "marts")
    tables = entity.tables
    golden = tables.golden
    raw = [TableName("raw", name) for name in sorted(entity.sources)]
    id_maps = [tables.id_map, *(t.id_map for t in entity.linked)]
    inputs = input_deltas(con, golden, [tables.lookup, *id_maps, *raw])
    lookup_current = recorded_inputs(con, tables.lookup) == built_from_now(con, tables.lookup, raw).inputs
    if not lookup_current:  # the lookup lags the raw tables: the next build cannot follow this one
        inputs = dataclasses.replace(inputs, now=BuiltFrom(golden, {**inputs.now.inputs, tables.lookup: None}))
    own = (inputs.of(tables.lookup), inputs.of(tables.id_map))
    linked_unchanged = all(inputs.of(t.id_map) is Delta.NONE for t in entity.linked)
    follow = not full and lookup_current and Delta.UNKNOWN not in own and linked_unchanged
    if follow and table_exists(con, golden):
        return _follow_record_changes(con, entity, inputs)
    # A share of the customers at a time (all records of a customer in one pass)
    # keeps the working table and the aggregations' memory bounded on large runs.
    passes = max(1, -(-row_count(con, tables.id_map) // RECORDS_PER_PASS))
    with staged_tables(con, golden) as (staging,):
        for number in range(passes):
            _build_golden_rows(con, entity, staging, (number, passes), create=number == 0)
        _swap_in_golden(con, entity, [(golden, staging)], [], inputs.now, None, sorted(entity.sources))
    customers = row_count(con, golden)
    return CustomersReport(customers)


@dataclass(frozen=True)
class CustomersReport:
    customers: int
    followed_changes: bool = False  # only the customers of changed records were built again
    rebuilt: int = 0  # golden records built again (and removed), when following


def _follow_record_changes(con: duckdb.DuckDBPyConnection, entity: EntityPlan, inputs: InputDeltas) -> CustomersReport:
    """Build again the golden records of the customers whose records changed (by the lookup's
    and the id map's recorded changes), and replace theirs: removed where the customer is gone."""
    tables = entity.tables
    id_column = quote_ident(tables.id_column)
    affected = TableName(SCRATCH, f"{tables.golden.name}_affected")
    # the rebuilt rows wait in memory: they go into the golden records in the swap
    rebuilt_rows = TableName(SCRATCH, f"{tables.golden.name}_rebuilt")
    with staged_tables(con, affected, rebuilt_rows) as (affected, staging):
        records = ["SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id LIMIT 0"]
        ids = ["SELECT NULL::VARCHAR AS customer_id LIMIT 0"]
        if inputs.of(tables.id_map) is Delta.RECORDED:
            changes = map_changes_table(tables).sql
            ids.append(f"SELECT old_id FROM {changes} UNION ALL SELECT new_id FROM {changes}")
        if inputs.of(tables.lookup) is Delta.RECORDED:
            records.append(f"SELECT source, source_record_id FROM {changes_table(tables.lookup).sql}")
        # the customers the changed records belong to now
        ids.append(
            f"SELECT {id_column} FROM {tables.id_map.sql} "
            f"SEMI JOIN ({union_all(records)}) USING (source, source_record_id)"
        )
        con.execute(
            f"{create_table(affected)} AS SELECT DISTINCT * FROM ({union_all(ids)}) AS c(customer_id) "
            "WHERE customer_id IS NOT NULL"
        )
        _build_golden_rows(con, entity, staging, (0, 1), create=True, only=affected)
        replaced = f"{id_column} IN (SELECT customer_id FROM {affected.sql})"
        statements = [
            (f"DELETE FROM {tables.golden.sql} WHERE {replaced}", None),
            (f"INSERT INTO {tables.golden.sql} BY NAME SELECT * FROM {staging.sql}", None),
        ]
        rebuilt = row_count(con, affected)
        # a source's rejected attribute values change only with its raw table
        reloaded = [name for name in sorted(entity.sources) if inputs.of(TableName("raw", name)) is not Delta.NONE]
        changed = f"SELECT customer_id FROM {affected.sql}"
        _swap_in_golden(con, entity, [], statements, inputs.now, changed, reloaded)
    return CustomersReport(row_count(con, tables.golden), True, rebuilt)


def _swap_in_golden(
    con: duckdb.DuckDBPyConnection,
    entity: EntityPlan,
    replacements: list[tuple[TableName, TableName]],
    statements: list[tuple[str, object]],
    built_from: BuiltFrom,
    changed: str | None,
    sources: list[str],
) -> None:
    """Swap in the golden records (replaced whole, or by `statements`) with the typed attribute
    values of `sources` that did not read as their type, which replace those sources'
    quarantined ones, and the customers `changed` names (None: a full build)."""
    ensure_quarantine(con)
    golden = entity.tables.golden
    changed_customers = changed_customers_table(golden)
    rejects = TableName(SCRATCH, f"{golden.name}_attribute_rejects")
    with staged_tables(con, rejects, changed_customers) as (rejects, staged_changed):
        con.execute(f"{create_table(rejects)} AS {attribute_rejects_sql(entity, sources)}")
        quarantine = QuarantineReplacement(tuple(sources), ATTRIBUTES_STAGE, rejects)
        version = stage_changed_customers(con, golden, staged_changed, changed)
        replacements = [*replacements, (changed_customers, staged_changed)]
        swap_in(con, replacements, quarantine, statements=statements, versions=[version], built_from=[built_from])


def _build_golden_rows(
    con: duckdb.DuckDBPyConnection,
    entity: EntityPlan,
    staging: TableName,
    share: tuple[int, int],
    create: bool,
    only: TableName | None = None,
) -> None:
    """Into `staging` (created when `create`), the golden records of pass `share` = (number,
    passes) of the customers, or of the customers in `only` (customer_id)."""
    tables, links = entity.tables, list(entity.linked)
    attributes = [*(t.id_column for t in links), *entity.attribute_names]
    fields = [*_golden_fields(entity), *attributes]
    records = TableName(SCRATCH, f"{tables.golden.name}_records")
    with staged_tables(con, records) as (records,):
        _build_customer_records(con, entity, attributes, records, share, only)
        select = _with_hashed_contacts(
            _golden_select(
                records, fields, len(attributes), entity.survivorship, tables.id_column, sorted(entity.sources)
            ),
            fields,
        )
        if create:
            plain = [tables.id_column, *(t.id_column for t in links), *_near_unique_attributes(entity)]
            plain += [column for column, _ in _hashed_contacts(fields)]
            create_table_as(con, staging, select, plain_text=plain)
        else:
            con.execute(f"INSERT INTO {staging.sql} {select}")


def _hashed_contacts(fields: list[str]) -> list[tuple[str, str]]:
    """(column, SQL) of the pseudonymous contact keys for activation: the SHA-256 (hex) of
    the email trimmed and lower-cased, and of the phone in E.164 ("+31612345678"), as
    ad platforms' customer-match uploads take them, so an export needs no raw contact data."""
    hashed = {
        "email": ("email_sha256", "sha256(lower(trim(email)))"),
        "phone": ("phone_sha256", "sha256(phone)"),
    }
    return [hashed[field] for field in ("email", "phone") if field in fields]


def _with_hashed_contacts(select: str, fields: list[str]) -> str:
    columns = _hashed_contacts(fields)
    if not columns:
        return select
    return f"SELECT *, {', '.join(f'{sql} AS {name}' for name, sql in columns)} FROM ({select})"


def _near_unique_attributes(entity: EntityPlan) -> set[str]:
    """Attributes some source reads from a column of about one value per record (a
    signup or last-change timestamp): stored plain, like the source's column."""
    attributes = set()
    for source in entity.sources.values():
        near_unique = near_unique_columns(source)
        attributes |= {attribute for attribute, column in source.attributes.items() if column in near_unique}
    return attributes


def _golden_select(
    records: TableName, fields: list[str], extra: int, rule: dict[str, str], id_column: str, sources: list[str]
) -> str:
    """The golden records of the customers in `records`: each of `fields` survives on its own
    (the last `extra` of them are linked ids and attributes), the address as a whole.

    A customer of one record (a third of them) is that record: only customers
    of several records go through survivorship.
    """
    person = [_surviving_field(records, f, rule.get(f, "precedence"), _SEVERAL) for f in fields]
    ctes = ",\n".join(
        [
            *(f"{quote_ident('f_' + name)} AS ({sql})" for name, sql in person),
            f"address AS ({_surviving_address(records, rule.get(ADDRESS, 'precedence'), _SEVERAL)})",
            f"""summary AS (
                SELECT customer_id, {_source_masks(sources)},
                       count(*) AS record_count, min(updated_at) AS first_seen, max(updated_at) AS last_seen
                FROM {records.sql} WHERE {_SEVERAL} GROUP BY customer_id
            )""",
        ]
    )
    own = len(person) - extra
    selected = [f"{quote_ident('f_' + name)}.value AS {quote_ident(name)}" for name, _ in person[:own]]
    selected += [f"address.{quote_ident(f)}" for f in ADDRESS_FIELDS]
    selected += [f"{quote_ident('f_' + name)}.value AS {quote_ident(name)}" for name, _ in person[own:]]
    joins = "\n".join(f"LEFT JOIN {quote_ident('f_' + name)} USING (customer_id)" for name, _ in person)
    # one record: its own values, the address only where it counts as one
    single = [quote_ident(name) for name, _ in person[:own]]
    single += [f"CASE WHEN {_HAS_ADDRESS} THEN {quote_ident(f)} END" for f in ADDRESS_FIELDS]
    single += [quote_ident(name) for name, _ in person[own:]]
    return f"""
        WITH {ctes}
        SELECT summary.customer_id AS {quote_ident(id_column)}, {", ".join(selected)},
               {_source_list(sources)} AS sources, summary.record_count, summary.first_seen, summary.last_seen
        FROM summary
        {joins}
        LEFT JOIN address USING (customer_id)
        UNION ALL
        SELECT customer_id, {", ".join(single)}, [source] AS sources, 1::BIGINT, updated_at, updated_at
        FROM {records.sql} WHERE NOT {_SEVERAL}
    """


# Whether a row of the working table belongs to a customer of several records.
_SEVERAL = "_records > 1"
# Sources per bit mask: the customer's sources are bits, cheaper to aggregate
# than a distinct list (one BIGINT per 62 sources).
_SOURCES_PER_MASK = 62


def _source_masks(sources: list[str]) -> str:
    """Aggregates `_sources<k>`: bit i set when the customer has a record of source 62k + i."""
    index = f"(list_position({_sql_list(sources)}, source) - 1)"
    return ", ".join(
        f"bit_or(CASE WHEN {index} // {_SOURCES_PER_MASK} = {k} "
        f"THEN 1::BIGINT << ({index} % {_SOURCES_PER_MASK}) END) AS _sources{k}"
        for k in range(len(_source_chunks(sources)))
    )


def _source_list(sources: list[str]) -> str:
    """The sorted list of the sources whose bits `_source_masks` set."""
    parts = [
        f"list_filter({_sql_list(chunk)}, lambda s, i: (coalesce(_sources{k}, 0) >> (i - 1)) & 1 = 1)"
        for k, chunk in enumerate(_source_chunks(sources))
    ]
    return parts[0] if len(parts) == 1 else f"flatten([{', '.join(parts)}])"


def _source_chunks(sources: list[str]) -> list[list[str]]:
    """The sources in runs of one mask each (at least one run, empty when there are no sources)."""
    return [sources[start : start + _SOURCES_PER_MASK] for start in range(0, len(sources), _SOURCES_PER_MASK)] or [[]]


def _sql_list(values: list[str]) -> str:
    return f"{sql_array(values)}::VARCHAR[]"


def _golden_fields(entity: EntityPlan) -> tuple[str, ...]:
    """The person fields of the golden record: all of them for customers (the table's
    contract), only those some source maps for other entities (accounts have no birth date)."""
    if entity.name == CUSTOMER:
        return PERSON_FIELDS
    mapped = {f for s in entity.sources.values() for f in s.fields}
    if "full_name" in mapped:
        mapped |= {"first_name", "last_name"}
    return tuple(f for f in PERSON_FIELDS if f in mapped)


def _build_customer_records(
    con: duckdb.DuckDBPyConnection,
    entity: EntityPlan,
    attributes: list[str],
    records: TableName,
    share: tuple[int, int] = (0, 1),
    only: TableName | None = None,
) -> None:
    """Every record of the entity with its id (as `customer_id`), standardised fields,
    linked ids, attributes and recency; of the customers in pass `share` = (number, passes),
    or in `only` (customer_id)."""
    tables, links = entity.tables, entity.linked
    id_column = quote_ident(tables.id_column)

    def among(name: str, source: Source) -> str:
        """Only the raw rows of the customers in `only`: parsed after this filter, not before."""
        if only is None:
            return ""
        record_id = f"trim(CAST({quote_ident(source.record_id)} AS VARCHAR))"
        return (
            f"WHERE {record_id} IN (SELECT source_record_id FROM {tables.id_map.sql} "
            f"WHERE source = {sql_string(name)} AND {id_column} IN (SELECT customer_id FROM {only.sql}))"
        )

    per_source = []
    for name, source in entity.sources.items():
        updated = (
            timestamp_sql(quote_ident(source.updated_at.column), source.updated_at.format)
            if source.updated_at is not None
            else "NULL::TIMESTAMP"
        )
        attribute_columns = [
            f"{attribute_sql(quote_ident(source.attributes[a]), entity.attribute_type(a), source.number_format)} "
            f"AS {quote_ident(a)}"
            if a in source.attributes
            else f"NULL::{entity.attribute_type(a).sql_type} AS {quote_ident(a)}"
            for a in attributes
            if a not in {t.id_column for t in links}
        ]
        for linked in links:
            reference = source.links.get(linked.entity)
            source_name = "NULL::VARCHAR" if reference is None else sql_string(reference.source)
            record_id = (
                "NULL::VARCHAR"
                if reference is None
                else f"nullif(trim(CAST({quote_ident(reference.column)} AS VARCHAR)), '')"
            )
            attribute_columns += [
                f"{source_name} AS {quote_ident('_link_source_' + linked.entity)}",
                f"{record_id} AS {quote_ident('_link_record_' + linked.entity)}",
            ]
        per_source.append(
            f"""
            SELECT {sql_string(name)} AS source, trim(CAST({quote_ident(source.record_id)} AS VARCHAR)) AS source_record_id,
                   {updated} AS updated_at, _file, _row_number
                   {"".join(", " + c for c in attribute_columns)}
            FROM {TableName("raw", name).sql}
            {among(name, source)}
            """
        )
    fields = ", ".join(f"l.{quote_ident(f)}" for f in (*PERSON_FIELDS, *ADDRESS_FIELDS))
    # each linked record's stable id, looked up in its entity's id map
    link_ids = "".join(f", {quote_ident('link_' + t.entity)}.{quote_ident(t.id_column)}" for t in links)
    link_joins = "\n".join(
        f"""LEFT JOIN {t.id_map.sql} {quote_ident("link_" + t.entity)}
            ON {quote_ident("link_" + t.entity)}.source = r.{quote_ident("_link_source_" + t.entity)}
           AND {quote_ident("link_" + t.entity)}.source_record_id = r.{quote_ident("_link_record_" + t.entity)}"""
        for t in links
    )
    # the id map rows of this pass's customers, each with its customer's record count
    in_pass = f"WHERE {hash_bucket(id_column, 'passes')} = $number" if share[1] > 1 else ""
    if only is not None:
        in_pass = f"WHERE {id_column} IN (SELECT customer_id FROM {only.sql})"
    con.execute(
        f"""
        {create_table(records)} AS
        WITH ids AS (SELECT source, source_record_id, {id_column} FROM {tables.id_map.sql} {in_pass})
        SELECT m.{id_column} AS customer_id, _records, l.source, l.source_record_id, l.precedence,
               {fields}, r.* EXCLUDE (source, source_record_id){link_ids}
        FROM {tables.lookup.sql} l
        JOIN ids m USING (source, source_record_id)
        JOIN ({" UNION ALL BY NAME ".join(per_source)}) r USING (source, source_record_id)
        JOIN (SELECT {id_column}, count(*) AS _records FROM ids GROUP BY ALL) USING ({id_column})
        {link_joins}
        """,
        {"number": share[0], "passes": share[1]} if share[1] > 1 else {},
    )


def _surviving_value(records: TableName, value: str, rule: str, where: str = "true", tie: str = "value") -> str:
    """Per customer, the surviving one of the distinct non-empty values of `value`
    (among the records that meet `where`); a tie on every criterion goes to the
    smallest `tie` (an expression over `value`).

    Grouping by (customer, value) first makes each criterion an aggregate, so
    the choice is two GROUP BYs instead of a window over every record.
    """
    first, second, third = _ORDER[rule]
    return f"""
        SELECT customer_id,
               arg_min(value, struct_pack(k1 := {first}, k2 := {second}, k3 := {third}, k4 := {tie})) AS value
        FROM (
            SELECT customer_id, {value} AS value, min(precedence) AS precedence,
                   max(updated_at) AS updated_at, count(*) AS frequency
            FROM {records.sql}
            WHERE {value} IS NOT NULL AND {where}
            GROUP BY ALL
        )
        GROUP BY customer_id
    """


def _surviving_field(records: TableName, field: str, rule: str, where: str = "true") -> tuple[str, str]:
    return field, _surviving_value(records, quote_ident(field), rule, where)


def _surviving_address(records: TableName, rule: str, where: str = "true") -> str:
    """The address parts of one record, chosen as a whole."""
    parts = ", ".join(f"{quote_ident(f)} := {quote_ident(f)}" for f in ADDRESS_FIELDS)
    address = f"CASE WHEN {_HAS_ADDRESS} THEN struct_pack({parts}) END"
    unpacked = ", ".join(f"value.{quote_ident(f)} AS {quote_ident(f)}" for f in ADDRESS_FIELDS)
    # Between two addresses equal on every criterion, the one with more parts wins, part by
    # part: engines order a missing part inside a struct apart (DuckDB last, Spark first),
    # so whether each part is missing is spelled out before the part itself.
    tie = ", ".join(
        f"{quote_ident(f + '_missing')} := value.{quote_ident(f)} IS NULL, {quote_ident(f)} := value.{quote_ident(f)}"
        for f in ADDRESS_FIELDS
    )
    chosen = _surviving_value(records, address, rule, where, tie=f"struct_pack({tie})")
    return f"SELECT customer_id, {unpacked} FROM ({chosen})"
