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

from cdm_assets.domain.marts.parsing import reference_columns_sql, timestamp_sql
from cdm_assets.domain.plan import Plan, Source
from cdm_assets.domain.sql import TableName, quote_ident
from cdm_assets.domain.vocabulary import CUSTOMER, EVENT
from cdm_assets.domain.warehouse import create_table_as, ensure_schemas, staged_tables, swap_in

EVENTS = TableName("marts", "events")


@dataclass(frozen=True)
class EventsReport:
    rows: int
    by_attribution: dict[str, int]

    @property
    def unattributed(self) -> int:
        return self.by_attribution.get("unattributed", 0)


def build_events(con: duckdb.DuckDBPyConnection, plan: Plan) -> EventsReport:
    """Rebuild `marts.events` from the raw event tables."""
    ensure_schemas(con, "marts")
    sources = plan.sources_of(EVENT)
    customers = plan.entities[CUSTOMER].tables
    selects = [_parsed_select(name, source) for name, source in sources.items()]
    body = "\nUNION ALL BY NAME\n".join(selects) if selects else _EMPTY_PARSED
    emails = "\nUNION ALL\n".join(_email_select(name, source) for name, source in sources.items()) or _NO_EMAILS
    with staged_tables(con, EVENTS) as (staging,):
        # The events are parsed on the fly, never written twice; only the
        # emails that events carry are looked up among the customer records.
        create_table_as(
            con,
            staging,
            f"""
            WITH parsed AS ({body}),
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
            """,
        )
        by_attribution = dict(
            con.execute(
                f"SELECT coalesce(attribution, 'unattributed'), count(*) FROM {staging.sql} GROUP BY ALL"
            ).fetchall()
        )
        rows = sum(by_attribution.values())
        swap_in(con, [(EVENTS, staging)])
    return EventsReport(rows=rows, by_attribution=by_attribution)


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
