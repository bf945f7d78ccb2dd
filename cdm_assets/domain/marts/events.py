"""`marts.events`: tracked behaviour linked to customers, anonymous ids stitched.

An event belongs to a customer through, in order:
1. its customer reference (a record id of a customer source);
2. its email, when that email belongs to exactly one customer (a shared
   household inbox identifies nobody);
3. its anonymous id: once an anonymous id is seen with a known customer, all
   its events belong to that customer, the earlier anonymous ones too. A
   device seen with several customers goes to the one it was seen with most
   (ties: the most recent).
Events that stay anonymous are kept with an empty `customer_id`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.customer_ids import map_changes_table
from cdm_assets.domain.identity.lookup_changes import changes_table
from cdm_assets.domain.marts.changed_customers import changed_customers_table, stage_changed_customers
from cdm_assets.domain.marts.parsing import reference_columns_sql, timestamp_sql
from cdm_assets.domain.plan import EntityTables, Plan, Source
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, union_all
from cdm_assets.domain.table_versions import Delta, InputDeltas, input_deltas
from cdm_assets.domain.vocabulary import CUSTOMER, EVENT
from cdm_assets.domain.warehouse import (
    create_table_as,
    ensure_schemas,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

EVENTS = TableName("marts", "events")


@dataclass(frozen=True)
class EventsReport:
    rows: int
    by_attribution: dict[str, int]
    followed_changes: bool = False  # only the events of changed customer records were linked again
    relinked: int = 0  # events linked again, when following

    @property
    def unattributed(self) -> int:
        return self.by_attribution.get("unattributed", 0)


# What identifies an event row (a raw row): the same in the mart and in the raw table.
_ROW = ("source", "_file", "_row_number")


def build_events(con: duckdb.DuckDBPyConnection, plan: Plan, full: bool = False) -> EventsReport:
    """Build `marts.events` from the raw event tables.

    When the raw tables are the ones the mart was built from and the changes of
    the lookup and the Customer ID map since then are recorded, only the events
    whose customer could have changed are linked again (unless `full`): those
    referring to a changed record, those carrying an email a changed record
    holds (or held), and every event of an anonymous id one of them carries.
    """
    ensure_schemas(con, "marts")
    sources = plan.sources_of(EVENT)
    customers = plan.entities[CUSTOMER].tables
    raw = [TableName("raw", name) for name in sources]
    inputs = input_deltas(con, EVENTS, [*raw, customers.lookup, customers.id_map])
    identity = (inputs.of(customers.lookup), inputs.of(customers.id_map))
    raw_unchanged = all(inputs.of(table) is Delta.NONE for table in raw)
    if not full and raw_unchanged and Delta.UNKNOWN not in identity and table_exists(con, EVENTS):
        relinked = _follow_identity_changes(con, customers, inputs)
        return EventsReport(
            con.execute(f"SELECT count(*) FROM {EVENTS.sql}").fetchall()[0][0],
            _attribution(con, EVENTS),
            True,
            relinked,
        )
    selects = [_parsed_select(name, source) for name, source in sources.items()]
    body = "\nUNION ALL BY NAME\n".join(selects) if selects else _EMPTY_PARSED
    emails = "\nUNION ALL\n".join(_email_select(name, source) for name, source in sources.items()) or _NO_EMAILS
    with staged_tables(con, EVENTS) as (staging,):
        # The events are parsed on the fly, never written twice; only the
        # emails that events carry are looked up among the customer records.
        create_table_as(con, staging, _linked_events_sql(body, emails, customers))
        by_attribution = _attribution(con, staging)
        changed = changed_customers_table(EVENTS)
        with staged_tables(con, changed) as (staged_changed,):
            version = stage_changed_customers(con, EVENTS, staged_changed, None)
            replacements = [(EVENTS, staging), (changed, staged_changed)]
            swap_in(con, replacements, versions=[version], built_from=[inputs.now])
    return EventsReport(rows=sum(by_attribution.values()), by_attribution=by_attribution)


def _attribution(con: duckdb.DuckDBPyConnection, events: TableName) -> dict[str, int]:
    return dict(
        con.execute(f"SELECT coalesce(attribution, 'unattributed'), count(*) FROM {events.sql} GROUP BY ALL").fetchall()
    )


def _linked_events_sql(parsed: str, emails: str, customers: EntityTables) -> str:
    """The events of `parsed` (parsed event rows) linked to their customers; `emails` holds
    (at least) every email they carry."""
    return f"""
        WITH parsed AS ({parsed}),
        event_emails AS (SELECT DISTINCT email FROM ({emails}) WHERE email IS NOT NULL),
        email_owner AS (  -- emails that identify exactly one customer
            SELECT l.email, min(m.customer_id) AS customer_id
            FROM {customers.lookup.sql} l JOIN {customers.id_map.sql} m USING (source, source_record_id)
            WHERE l.email IN (SELECT email FROM event_emails)
            GROUP BY l.email
            HAVING min(m.customer_id) = max(m.customer_id)
        ),
        linked AS (
            SELECT p.*,
                   coalesce(by_ref.customer_id, by_email.customer_id) AS known_customer_id,
                   CASE WHEN by_ref.customer_id IS NOT NULL THEN 'customer_reference'
                        WHEN by_email.customer_id IS NOT NULL THEN 'email' END AS known_by
            FROM parsed p
            LEFT JOIN {customers.id_map.sql} by_ref
                   ON by_ref.source = p.customer_source AND by_ref.source_record_id = p.customer_ref
            LEFT JOIN email_owner by_email ON by_email.email = p.email
        ),
        device_owner AS (  -- the customer each anonymous id was seen with most
            SELECT anonymous_id, customer_id FROM (
                SELECT anonymous_id, known_customer_id AS customer_id, count(*) AS seen, max(occurred_at) AS last_seen
                FROM linked
                WHERE anonymous_id IS NOT NULL AND known_customer_id IS NOT NULL
                GROUP BY ALL
            )
            QUALIFY row_number() OVER (
                PARTITION BY anonymous_id ORDER BY seen DESC, last_seen DESC NULLS LAST, customer_id
            ) = 1
        )
        SELECT l.event_id, l.source,
               coalesce(l.known_customer_id, d.customer_id) AS customer_id,
               l.anonymous_id, l.event_type, l.occurred_at,
               coalesce(l.known_by, CASE WHEN d.customer_id IS NOT NULL THEN 'stitched' END) AS attribution,
               l.email, l.customer_source, l.customer_ref, l._file, l._row_number
        FROM linked l LEFT JOIN device_owner d USING (anonymous_id)
    """


def _follow_identity_changes(con: duckdb.DuckDBPyConnection, customers: EntityTables, inputs: InputDeltas) -> int:
    """Link again the events whose customer could have changed; returns how many."""
    changed = TableName(SCRATCH, "events_changed_records")
    emails = TableName(SCRATCH, "events_changed_emails")
    affected = TableName(SCRATCH, "events_affected")
    relinked = TableName(SCRATCH, "events_relinked")
    changed_customers = changed_customers_table(EVENTS)
    staged = staged_tables(con, changed, emails, affected, relinked, changed_customers)
    with staged as (changed, emails, affected, relinked, staged_changed):
        records = ["SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id LIMIT 0"]
        held = ["SELECT NULL::VARCHAR AS email LIMIT 0"]
        if inputs.of(customers.id_map) is Delta.RECORDED:
            records.append(f"SELECT source, source_record_id FROM {map_changes_table(customers).sql}")
        if inputs.of(customers.lookup) is Delta.RECORDED:
            lookup_changes = changes_table(customers.lookup)
            records.append(f"SELECT source, source_record_id FROM {lookup_changes.sql}")
            held.append(f"SELECT email FROM {lookup_changes.sql}")
        con.execute(f"{create_table(changed)} AS SELECT DISTINCT * FROM ({union_all(records)})")
        # the emails changed records hold now or held: their owner may have changed
        held.append(
            f"SELECT l.email FROM {customers.lookup.sql} l SEMI JOIN {changed.sql} USING (source, source_record_id)"
        )
        con.execute(f"{create_table(emails)} AS SELECT DISTINCT email FROM ({union_all(held)}) WHERE email IS NOT NULL")
        row = ", ".join(_ROW)
        con.execute(
            f"""
            {create_table(affected)} AS
            WITH touched AS (
                SELECT * FROM {EVENTS.sql} e
                WHERE (customer_source, customer_ref) IN (SELECT (source, source_record_id) FROM {changed.sql})
                   OR email IN (SELECT email FROM {emails.sql})
            )
            SELECT * FROM touched
            UNION
            SELECT * FROM {EVENTS.sql}
            WHERE anonymous_id IN (SELECT anonymous_id FROM touched WHERE anonymous_id IS NOT NULL)
            """
        )
        parsed = f"SELECT * EXCLUDE (customer_id, attribution) FROM {affected.sql}"
        emails_carried = f"SELECT email FROM {affected.sql}"
        con.execute(f"{create_table(relinked)} AS {_linked_events_sql(parsed, emails_carried, customers)}")
        replaced = f"({row}) IN (SELECT ({row}) FROM {affected.sql})"
        statements = [
            (f"DELETE FROM {EVENTS.sql} WHERE {replaced}", None),
            (f"INSERT INTO {EVENTS.sql} BY NAME SELECT * FROM {relinked.sql}", None),
        ]
        # the customers the relinked events leave and join
        customers_changed = f"SELECT customer_id FROM {affected.sql} UNION ALL SELECT customer_id FROM {relinked.sql}"
        version = stage_changed_customers(con, EVENTS, staged_changed, customers_changed)
        replacements = [(changed_customers, staged_changed)]
        swap_in(con, replacements, statements=statements, versions=[version], built_from=[inputs.now])
        return row_count(con, relinked)


def _text(source: Source, field: str) -> str:
    if field not in source.fields:
        return "NULL::VARCHAR"
    return f"nullif(trim(CAST({quote_ident(source.fields[field].column)} AS VARCHAR)), '')"


def _email_sql(source: Source) -> str:
    """The event's email: lower case, and only when it looks like one (the column may hold ids)."""
    return f"CASE WHEN contains({_text(source, 'email')}, '@') THEN lower({_text(source, 'email')}) END"


def _email_select(name: str, source: Source) -> str:
    return f"SELECT {_email_sql(source)} AS email FROM {TableName('raw', name).sql}"


def _parsed_select(name: str, source: Source) -> str:
    fields = source.fields

    def text(field: str) -> str:
        return _text(source, field)

    occurred = quote_ident(fields["occurred_at"].column) if "occurred_at" in fields else None
    occurred_format = fields["occurred_at"].format if "occurred_at" in fields else None
    return f"""
        SELECT {reference_columns_sql(name, source, "event_id")},
               {_email_sql(source)} AS email,
               {text("anonymous_id")} AS anonymous_id,
               {text("event_type")} AS event_type,
               {timestamp_sql(occurred, occurred_format)} AS occurred_at,
               _file, _row_number
        FROM {TableName("raw", name).sql}
    """


_EMPTY_PARSED = """
    SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS event_id, NULL::VARCHAR AS customer_source,
           NULL::VARCHAR AS customer_ref, NULL::VARCHAR AS email, NULL::VARCHAR AS anonymous_id,
           NULL::VARCHAR AS event_type, NULL::TIMESTAMP AS occurred_at, NULL::VARCHAR AS _file,
           NULL::BIGINT AS _row_number
    LIMIT 0
"""

_NO_EMAILS = "SELECT NULL::VARCHAR AS email LIMIT 0"
