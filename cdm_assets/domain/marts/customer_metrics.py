"""`marts.customer_metrics`: per customer, what marketing activation needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from cdm_assets.domain.marts.changed_customers import NO_CUSTOMERS, changed_customers_table
from cdm_assets.domain.marts.events import EVENTS
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, union_all
from cdm_assets.domain.table_versions import Delta, InputDeltas, input_deltas
from cdm_assets.domain.warehouse import (
    create_table_as,
    ensure_schemas,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

CUSTOMER_METRICS = TableName("marts", "customer_metrics")


def metrics_sql(customers: EntityTables, only: TableName | None = None) -> str:
    """Per golden record of `customers` (of those in `only` (customer_id), when given), its
    orders, returns, net revenue and events."""

    def among(alias: str = "") -> str:
        return f"{alias}customer_id IN (SELECT customer_id FROM {only.sql})" if only is not None else "true"

    return f"""
    WITH per_currency AS (  -- one pass over the transactions
        SELECT customer_id, currency,
               count(*) FILTER (WHERE type = 'order') AS orders,
               count(*) FILTER (WHERE type = 'return') AS returns,
               min(occurred_at) FILTER (WHERE type = 'order') AS first_order_at,
               max(occurred_at) FILTER (WHERE type = 'order') AS last_order_at,
               sum(signed_amount) AS net
        FROM {TRANSACTIONS.sql} WHERE customer_id IS NOT NULL AND {among()}
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
        FROM {EVENTS.sql} WHERE customer_id IS NOT NULL AND {among()}
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
    WHERE {among("c.")}
    """


def build_customer_metrics(
    con: duckdb.DuckDBPyConnection, customers: EntityTables, as_of: datetime | None = None, full: bool = False
) -> MetricsReport:
    """Build `marts.customer_metrics` as of `as_of` (default: now, UTC).

    When the golden records, transactions and events record which customers'
    rows changed since the metrics were built, only those customers' metrics
    are computed again; the days since the last order move with `as_of` and
    are set anew wherever they differ (unless `full`).
    """
    ensure_schemas(con, "marts")
    moment = (as_of or datetime.now(UTC)).replace(tzinfo=None)
    marts = [customers.golden, TRANSACTIONS, EVENTS]
    inputs = input_deltas(con, CUSTOMER_METRICS, marts)
    if not full and inputs.all(Delta.NONE, Delta.RECORDED) and table_exists(con, CUSTOMER_METRICS):
        recomputed = _follow_changed_customers(con, customers, inputs, moment)
        return MetricsReport(row_count(con, CUSTOMER_METRICS), True, recomputed)
    with staged_tables(con, CUSTOMER_METRICS) as (staging,):
        create_table_as(con, staging, metrics_sql(customers), {"as_of": moment})
        swap_in(con, [(CUSTOMER_METRICS, staging)], built_from=[inputs.now])
    return MetricsReport(row_count(con, CUSTOMER_METRICS))


@dataclass(frozen=True)
class MetricsReport:
    customers: int
    followed_changes: bool = False  # only the customers whose rows changed were computed again
    recomputed: int = 0  # customers computed again, when following


def _follow_changed_customers(
    con: duckdb.DuckDBPyConnection, customers: EntityTables, inputs: InputDeltas, as_of: datetime
) -> int:
    changed = [
        f"SELECT customer_id FROM {changed_customers_table(mart).sql}"
        for mart, delta in inputs.deltas.items()
        if delta is Delta.RECORDED
    ]
    affected = TableName(SCRATCH, "customer_metrics_affected")
    recomputed = TableName(SCRATCH, "customer_metrics_recomputed")  # in memory until the swap
    with staged_tables(con, affected, recomputed) as (affected, staging):
        union = union_all([NO_CUSTOMERS, *changed])
        con.execute(f"{create_table(affected)} AS SELECT DISTINCT * FROM ({union}) AS c(customer_id)")
        create_table_as(con, staging, metrics_sql(customers, affected), {"as_of": as_of})
        days = "date_diff('day', last_order_at, $as_of)"
        statements = [
            (f"DELETE FROM {CUSTOMER_METRICS.sql} WHERE customer_id IN (SELECT customer_id FROM {affected.sql})", None),
            (f"INSERT INTO {CUSTOMER_METRICS.sql} BY NAME SELECT * FROM {staging.sql}", None),
            (
                f"UPDATE {CUSTOMER_METRICS.sql} SET days_since_last_order = {days} "
                f"WHERE days_since_last_order IS DISTINCT FROM {days}",
                {"as_of": as_of},
            ),
        ]
        swap_in(con, [], statements=statements, built_from=[inputs.now])
        return row_count(con, affected)
