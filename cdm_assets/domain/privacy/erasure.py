"""Erasure: forget a person everywhere, and keep them forgotten.

A request names the person by Customer ID, email, phone or one of their
records. Forgetting them:

1. stores the salted hashes of every identifier they were known by (their
   records, emails, phones and stitched anonymous ids, and the value asked
   for) in `privacy.suppressions`, so later loads leave their rows out;
2. deletes every row carrying one of those identifiers: from every raw table
   and the quarantine, then the records from the identity tables of every
   entity, the customers all of whose records went from the id history and the
   golden records, and their transactions, events and metrics. An identifier
   is erased wherever it appears: a record of someone else that carries the
   erased email goes too, and that customer's golden record is rebuilt;
3. records the erasure in `privacy.erasures`: when, the kind of key, how many
   customers, records and rows, never a value.

The deletions run in one transaction. Deleted rows leave their bytes in the
file's free blocks, so `rewrite_warehouse` copies the database into a new file
that replaces the old one.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from cdm_assets.domain.identity.customer_ids import map_changes_table, map_rewritten_table
from cdm_assets.domain.identity.graph_changes import GraphState
from cdm_assets.domain.identity.lookup_changes import changes_table, records_table
from cdm_assets.domain.identity.match_model.comparisons import comparisons_for
from cdm_assets.domain.identity.match_model.parameters import frequencies_table
from cdm_assets.domain.marts.changed_customers import changed_customers_table
from cdm_assets.domain.marts.customer_metrics import CUSTOMER_METRICS, build_customer_metrics
from cdm_assets.domain.marts.customers import build_customers
from cdm_assets.domain.marts.events import EVENTS
from cdm_assets.domain.marts.passed_tests import forget_passes
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.plan import EntityPlan, EntityTables, Plan
from cdm_assets.domain.privacy.suppression import (
    ANONYMOUS_ID,
    EMAIL,
    PHONE,
    RECORD,
    Listed,
    add_suppressions,
    email_value,
    ensure_salt,
    phone_values,
    record_value,
    row_suppressed_sql,
    text_suppressed_sql,
)
from cdm_assets.domain.raw.landed_since import raw_changes_table
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.table_versions import forget_inputs
from cdm_assets.domain.vocabulary import CUSTOMER
from cdm_assets.domain.warehouse import connect_warehouse, ensure_schemas, table_columns, table_exists

ERASURES = TableName("privacy", "erasures")
KINDS = ("customer", "email", "phone", "record")
_ERASED = TableName(SCRATCH, "erased_records")
_IDENTIFIERS = TableName(SCRATCH, "erased_identifiers")
_GONE = TableName(SCRATCH, "erased_customers")


class UnknownPerson(LookupError):
    """A Customer ID or record the warehouse does not hold."""


@dataclass(frozen=True)
class ErasureRequest:
    """Who to forget: `kind` is customer, email, phone or record (`source:id`);
    `region` reads a phone written without its calling code."""

    kind: str
    value: str
    region: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind of key {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind == "record" and ":" not in self.value:
            raise ValueError(f"a record is named as source:id, got {self.value!r}")


@dataclass(frozen=True)
class ErasureReport:
    erasure_id: str
    customers: int  # customers erased with all their records
    records: int  # customer records erased (of every customer-like entity)
    rows_deleted: dict[str, int]  # per table
    suppressions_added: int
    customers_rebuilt: int  # customers that lost a record carrying an erased identifier and kept others

    def summary(self) -> str:
        """What the erasure did, in counts only."""
        tables = sum(1 for n in self.rows_deleted.values() if n)
        rebuilt = f"; {self.customers_rebuilt} other customer(s) rebuilt" if self.customers_rebuilt else ""
        return (
            f"erasure {self.erasure_id}: {self.customers} customer(s) and {self.records} record(s) erased, "
            f"{sum(self.rows_deleted.values())} row(s) deleted from {tables} table(s), "
            f"{self.suppressions_added} identifier hash(es) added to privacy.suppressions{rebuilt}"
        )


def forget(
    con: duckdb.DuckDBPyConnection, plan: Plan, request: ErasureRequest, now: datetime | None = None
) -> ErasureReport:
    """Erase the person `request` names from every table and suppress their identifiers."""
    erased_at = (now or datetime.now(UTC)).replace(tzinfo=None)
    erasure_id = uuid.uuid4().hex[:16]
    salt = ensure_salt(con)
    _ensure_erasures(con)
    customers = plan.entities[CUSTOMER]
    targets = _target_customers(con, customers.tables, request)
    identifiers = sorted(set(_identifiers(con, customers.tables, targets, request)))
    added = add_suppressions(con, salt, identifiers, erasure_id)
    # The purge matches the plain values, held in memory only (a scratch table): hashing
    # every row of every table to compare with the stored hashes would cost far more.
    con.execute(f"DROP TABLE IF EXISTS {_IDENTIFIERS.sql}")
    con.execute(f"{create_table(_IDENTIFIERS)} (kind VARCHAR, value VARCHAR)")
    con.executemany(f"INSERT INTO {_IDENTIFIERS.sql} VALUES (?, ?)", [list(i) for i in identifiers])
    match = Listed(_IDENTIFIERS)
    deleted: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for name, source in plan.sources.items():
            table = TableName("raw", name)
            if table_exists(con, table):
                present = {column for column, _ in table_columns(con, table)}
                deleted[str(table)] = _delete(con, table, row_suppressed_sql(source, match, present))
            changes = raw_changes_table(name)  # the ids the source's last load touched
            if table_exists(con, changes):
                deleted[str(changes)] = _delete(
                    con, changes, match.holds(RECORD, f"{sql_string(name)} || chr(31) || record_id")
                )
        if table_exists(con, TableName("raw", "quarantine")):
            deleted["raw.quarantine"] = _delete(
                con, TableName("raw", "quarantine"), text_suppressed_sql("raw_row", "source", match)
            )
        records, whole, partial = 0, 0, {}
        for entity in plan.entities.values():
            erased, gone, kept = _erase_entity(con, entity.tables, match, deleted)
            records += erased
            partial[entity.name] = kept
            if entity.name == CUSTOMER:
                whole = gone
                _erase_customer_marts(con, match, deleted)
        con.execute(
            f"INSERT INTO {ERASURES.sql} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [erasure_id, erased_at, request.kind, whole, records, sum(deleted.values()), added],
        )
        forget_inputs(con)  # rows left every table in place: the derived tables build in full next time
        forget_passes(con)  # and the data tests read whole tables
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for scratch in (_ERASED, _GONE, _IDENTIFIERS):
            con.execute(f"DROP TABLE IF EXISTS {scratch.sql}")
    _rebuild_golden_records(con, plan, partial)
    return ErasureReport(erasure_id, whole, records, deleted, added, sum(partial.values()))


def _ensure_erasures(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schemas(con, "privacy")
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {ERASURES.sql} (
            erasure_id VARCHAR NOT NULL,
            erased_at TIMESTAMP NOT NULL,
            key_kind VARCHAR NOT NULL,        -- customer | email | phone | record: never the value
            customers BIGINT NOT NULL,        -- customers erased with all their records
            records BIGINT NOT NULL,          -- customer records erased
            rows_deleted BIGINT NOT NULL,     -- rows deleted from every table
            suppressions BIGINT NOT NULL      -- identifier hashes added to privacy.suppressions
        )
        """
    )


def _target_customers(con: duckdb.DuckDBPyConnection, tables: EntityTables, request: ErasureRequest) -> list[str]:
    """The Customer IDs of the person: unknown ids and records are an error; an email or
    phone no customer holds names nobody yet, and is still suppressed."""
    if not table_exists(con, tables.id_map):
        if request.kind in ("customer", "record"):
            raise UnknownPerson(f"no customers yet: {tables.id_map} is missing")
        return []
    id_map, lookup, id_column = tables.id_map.sql, tables.lookup.sql, quote_ident(tables.id_column)
    if request.kind == "customer":
        found = con.execute(f"SELECT DISTINCT {id_column} FROM {id_map} WHERE {id_column} = ?", [request.value])
    elif request.kind == "record":
        source, _, record_id = request.value.partition(":")
        found = con.execute(
            f"SELECT {id_column} FROM {id_map} WHERE source = ? AND source_record_id = ?", [source, record_id.strip()]
        )
    elif request.kind == "email":
        found = con.execute(
            f"SELECT DISTINCT m.{id_column} FROM {lookup} l JOIN {id_map} m USING (source, source_record_id) "
            "WHERE l.email = ?",
            [email_value(request.value)],
        )
    else:
        found = con.execute(
            f"""
            SELECT DISTINCT m.{id_column} FROM {lookup} l JOIN {id_map} m USING (source, source_record_id)
            WHERE list_contains($forms, regexp_replace(l.phone, '[^0-9]', '', 'g'))
               OR (l.phone IS NULL AND list_contains($forms, l.phone_key))
            """,
            {"forms": phone_values(request.value, request.region)},
        )
    ids = sorted(row[0] for row in found.fetchall())
    if not ids and request.kind in ("customer", "record"):
        raise UnknownPerson(f"no {request.kind} {request.value!r} in {tables.id_map}")
    return ids


def _identifiers(
    con: duckdb.DuckDBPyConnection, tables: EntityTables, targets: list[str], request: ErasureRequest
) -> list[tuple[str, str]]:
    """(kind, normalised value) of every identifier the person is known by."""
    found: list[tuple[str, str]] = []
    if request.kind == "email":
        found.append((EMAIL, email_value(request.value)))
    if request.kind == "phone":
        found += [(PHONE, form) for form in phone_values(request.value, request.region)]
    if not targets:
        return found
    id_column = quote_ident(tables.id_column)
    rows = con.execute(
        f"""
        SELECT m.source, m.source_record_id, l.email, l.phone, l.phone_key
        FROM {tables.id_map.sql} m LEFT JOIN {tables.lookup.sql} l USING (source, source_record_id)
        WHERE list_contains($targets, m.{id_column})
        """,
        {"targets": targets},
    ).fetchall()
    for source, record_id, email, phone, phone_key in rows:
        found.append((RECORD, record_value(source, record_id)))
        if email:
            found.append((EMAIL, email_value(email)))
        if phone:
            found += [(PHONE, form) for form in phone_values(phone)]
        elif phone_key:  # read without a region: its national number, with and without a trunk 0
            found += [(PHONE, phone_key), (PHONE, f"0{phone_key}")]
    if table_exists(con, EVENTS):
        anonymous = con.execute(
            f"SELECT DISTINCT anonymous_id FROM {EVENTS.sql} WHERE list_contains($targets, customer_id) "
            "AND anonymous_id IS NOT NULL",
            {"targets": targets},
        ).fetchall()
        found += [(ANONYMOUS_ID, value.strip()) for (value,) in anonymous]
    return found


def _delete(con: duckdb.DuckDBPyConnection, table: TableName, condition: str) -> int:
    return con.execute(f"DELETE FROM {table.sql} WHERE {condition}").fetchall()[0][0]


def _erase_entity(
    con: duckdb.DuckDBPyConnection, tables: EntityTables, match: Listed, deleted: dict[str, int]
) -> tuple[int, int, int]:
    """Delete the entity's records carrying a suppressed identifier from its identity tables
    and the golden records of its customers that lost every record; returns (records,
    customers erased, customers that kept some records)."""
    for scratch in (_ERASED, _GONE):
        con.execute(f"DROP TABLE IF EXISTS {scratch.sql}")
    con.execute(f"{create_table(_ERASED)} (source VARCHAR, source_record_id VARCHAR)")
    con.execute(f"{create_table(_GONE)} (customer_id VARCHAR, whole BOOLEAN)")
    if not table_exists(con, tables.lookup) or not table_exists(con, tables.id_map):
        return 0, 0, 0
    lookup_columns = {column for column, _ in table_columns(con, tables.lookup)}
    conditions = [match.holds(RECORD, "source || chr(31) || source_record_id")]
    if "email" in lookup_columns:
        conditions.append(match.holds(EMAIL, "email"))
    if "phone" in lookup_columns:
        conditions.append(match.holds(PHONE, "regexp_replace(phone, '[^0-9]', '', 'g')"))
        conditions.append(f"(phone IS NULL AND {match.holds(PHONE, 'phone_key')})")
    con.execute(
        f"INSERT INTO {_ERASED.sql} SELECT source, source_record_id FROM {tables.lookup.sql} "
        f"WHERE {' OR '.join(conditions)}"
    )
    id_column = quote_ident(tables.id_column)
    con.execute(
        f"""
        INSERT INTO {_GONE.sql}
        SELECT {id_column}, count(*) = count(e.source)
        FROM {tables.id_map.sql} m LEFT JOIN {_ERASED.sql} e USING (source, source_record_id)
        GROUP BY ALL HAVING count(e.source) > 0
        """
    )
    records = con.execute(f"SELECT count(*) FROM {_ERASED.sql}").fetchall()[0][0]
    whole, kept = con.execute(
        f"SELECT count(*) FILTER (whole), count(*) FILTER (NOT whole) FROM {_GONE.sql}"
    ).fetchall()[0]
    record_in = f"(source, source_record_id) IN (SELECT * FROM {_ERASED.sql})"
    either_side = (
        f"(source_a, record_id_a) IN (SELECT * FROM {_ERASED.sql}) "
        f"OR (source_b, record_id_b) IN (SELECT * FROM {_ERASED.sql})"
    )
    customer_gone = f"IN (SELECT customer_id FROM {_GONE.sql} WHERE whole)"
    frequencies = frequencies_table(tables.model)
    if table_exists(con, frequencies):  # before the records that say which values go
        deleted[str(frequencies)] = _delete(con, frequencies, _erased_values(tables, lookup_columns, record_in))
    # the graph's state counted the erased records in its blocks: the next graph build is a full one
    graph_state = GraphState.of(tables.graph)
    con.execute(f"DROP TABLE IF EXISTS {graph_state.build.sql}")
    erased_keys = f"(SELECT record_key FROM {tables.lookup.sql} WHERE {record_in})"
    placeholders = _held_placeholders(con, graph_state.placeholders, tables.lookup, lookup_columns, record_in)
    for table, condition in (
        (changes_table(tables.lookup), record_in),
        # a hash of each erased record's input, and of its blocks: before the lookup rows that name the records go
        (records_table(tables.lookup), f"record_key IN {erased_keys}"),
        (graph_state.record_blocks, f"record_key IN {erased_keys}"),
        (graph_state.changes, f"key_a IN {erased_keys} OR key_b IN {erased_keys}"),
        (graph_state.placeholders, placeholders),
        (map_changes_table(tables), record_in),
        (map_rewritten_table(tables), record_in),
        (tables.lookup, record_in),
        (tables.id_map, record_in),
        (tables.graph, either_side),
        (tables.cut_links, either_side),
        (tables.overrides, either_side),
        (tables.id_history, f"{id_column} {customer_gone} OR {quote_ident(tables.previous_id_column)} {customer_gone}"),
        (tables.golden, f"{id_column} {customer_gone}"),
        (changed_customers_table(tables.golden), f"customer_id {customer_gone}"),
    ):
        if table_exists(con, table):
            deleted[str(table)] = _delete(con, table, condition)
    return records, whole, kept


def _held_placeholders(
    con: duckdb.DuckDBPyConnection, placeholders: TableName, lookup: TableName, lookup_columns: set[str], record_in: str
) -> str:
    """SQL over the graph's placeholders (values many records share): those an erased record held."""
    if not table_exists(con, placeholders):
        return "false"
    columns = [c for (c,) in con.execute(f"SELECT DISTINCT key_column FROM {placeholders.sql}").fetchall()]
    held = [
        f"(key_column = {sql_string(c)} AND value IN (SELECT {quote_ident(c)}::VARCHAR FROM {lookup.sql} "
        f"WHERE {record_in}))"
        for c in sorted(columns)
        if c in lookup_columns
    ]
    return " OR ".join(held) or "false"


def _erased_values(tables: EntityTables, lookup_columns: set[str], record_in: str) -> str:
    """SQL over the match model's frequencies: the rows of a value an erased record held
    that no other record holds (a name, email or phone the person alone had)."""
    identifiers = [column.removeprefix("id_") for column in lookup_columns if column.startswith("id_")]
    held = {c.name: c.frequency_column for c in comparisons_for(identifiers) if c.frequency_column in lookup_columns}
    return (
        " OR ".join(
            f"(comparison = {sql_string(name)} AND value IN (SELECT {quote_ident(column)}::VARCHAR "
            f"FROM {tables.lookup.sql} WHERE {record_in} "
            f"EXCEPT SELECT {quote_ident(column)}::VARCHAR FROM {tables.lookup.sql} WHERE NOT {record_in}))"
            for name, column in held.items()
        )
        or "false"
    )


def _erase_customer_marts(con: duckdb.DuckDBPyConnection, match: Listed, deleted: dict[str, int]) -> None:
    """Transactions, events and metrics of the erased customers and records (`_GONE`, `_ERASED`
    as the customer entity left them), and events carrying a suppressed email or anonymous id."""
    customer_gone = f"customer_id IN (SELECT customer_id FROM {_GONE.sql} WHERE whole)"
    referenced = f"(customer_source, customer_ref) IN (SELECT * FROM {_ERASED.sql})"
    events = [customer_gone, referenced, match.holds(EMAIL, "lower(trim(email))")]
    events.append(match.holds(ANONYMOUS_ID, "trim(anonymous_id)"))
    # which customers each mart's last build changed, for the metrics to follow
    changed = [(changed_customers_table(t), customer_gone) for t in (TRANSACTIONS, EVENTS)]
    for table, condition in (
        (TRANSACTIONS, f"{customer_gone} OR {referenced}"),
        (EVENTS, " OR ".join(events)),
        (CUSTOMER_METRICS, customer_gone),
        *changed,
    ):
        if table_exists(con, table):
            deleted[str(table)] = _delete(con, table, condition)


def _rebuild_golden_records(con: duckdb.DuckDBPyConnection, plan: Plan, partial: dict[str, int]) -> None:
    """Golden records of customers that kept some records may hold an erased value: rebuilt."""
    for name, kept in partial.items():
        entity: EntityPlan = plan.entities[name]
        if kept and table_exists(con, entity.tables.golden):
            build_customers(con, entity)
            if name == CUSTOMER and table_exists(con, CUSTOMER_METRICS):
                build_customer_metrics(con, entity.tables)


def rewrite_warehouse(path: str | Path) -> None:
    """Copy the warehouse into a new file and put it in the old one's place, so the bytes of
    deleted rows (left in free blocks) are gone. Nothing else may hold the file open."""
    path = Path(path)
    fresh = path.with_name(f"{path.name}.rewrite")
    fresh.unlink(missing_ok=True)
    with connect_warehouse(":memory:") as con:
        con.execute(f"ATTACH {sql_string(str(path))} AS old_warehouse")
        con.execute("CHECKPOINT old_warehouse")
        con.execute(f"ATTACH {sql_string(str(fresh))} AS new_warehouse")
        con.execute("COPY FROM DATABASE old_warehouse TO new_warehouse")
        con.execute("DETACH new_warehouse")
        con.execute("DETACH old_warehouse")
    os.replace(fresh, path)
    Path(f"{path}.wal").unlink(missing_ok=True)
