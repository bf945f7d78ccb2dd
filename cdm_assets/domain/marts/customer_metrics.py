"""`marts.customer_metrics`: per customer, what marketing activation needs."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from cdm_assets.domain.marts.events import EVENTS
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.warehouse import create_table_as, ensure_schemas, row_count, staged_tables, swap_in

CUSTOMER_METRICS = TableName("marts", "customer_metrics")


def metrics_sql(customers: EntityTables) -> str:
    """Per golden record of `customers`, its orders, returns, net revenue and events."""
    return f"""
    WITH per_currency AS (  -- one pass over the transactions
        SELECT customer_id, currency,
               count(*) FILTER (WHERE type = 'order') AS orders,
               count(*) FILTER (WHERE type = 'return') AS returns,
               min(occurred_at) FILTER (WHERE type = 'order') AS first_order_at,
               max(occurred_at) FILTER (WHERE type = 'order') AS last_order_at,
               sum(signed_amount) AS net
        FROM {TRANSACTIONS.sql} WHERE customer_id IS NOT NULL
        GROUP BY ALL
    ),
    orders AS (
        SELECT customer_id,
               CAST(sum(orders) AS BIGINT) AS orders,
               CAST(sum(returns) AS BIGINT) AS returns,
               min(first_order_at) AS first_order_at,
               max(last_order_at) AS last_order_at,
               -- net revenue per currency, orders minus returns; currencies in order, none last
               -- (sorting each small list is much cheaper than an ordered aggregate)
               map_from_entries(list_transform(
                   list_sort(list(struct_pack(no_currency := currency IS NULL, currency := currency, net := net))),
                   lambda e: struct_pack(k := coalesce(e.currency, '?'), v := e.net)
               )) AS net_revenue
        FROM per_currency
        GROUP BY customer_id
    ),
    activity AS (
        SELECT customer_id, count(*) AS events, max(occurred_at) AS last_event_at
        FROM {EVENTS.sql} WHERE customer_id IS NOT NULL
        GROUP BY customer_id
    )
    SELECT c.customer_id,
           coalesce(o.orders, 0) AS orders,
           coalesce(o.returns, 0) AS returns,
           o.net_revenue,
           o.first_order_at,
           o.last_order_at,
           date_diff('day', o.last_order_at, $as_of) AS days_since_last_order,
           coalesce(a.events, 0) AS events,
           a.last_event_at
    FROM {customers.golden.sql} c
    LEFT JOIN orders o USING (customer_id)
    LEFT JOIN activity a USING (customer_id)
    """


def build_customer_metrics(
    con: duckdb.DuckDBPyConnection, customers: EntityTables, as_of: datetime | None = None
) -> int:
    """Rebuild `marts.customer_metrics` as of `as_of` (default: now, UTC)."""
    ensure_schemas(con, "marts")
    moment = (as_of or datetime.now(UTC)).replace(tzinfo=None)
    with staged_tables(con, CUSTOMER_METRICS) as (staging,):
        create_table_as(con, staging, metrics_sql(customers), {"as_of": moment})
        swap_in(con, [(CUSTOMER_METRICS, staging)])
    return row_count(con, CUSTOMER_METRICS)
