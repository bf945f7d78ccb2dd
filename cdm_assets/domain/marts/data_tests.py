"""Data tests: plain queries that count failing rows and show a few of them.

The Dagster layer turns each into an asset check (blocking or advisory);
here they are only SQL, so any engine or test can run them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from cdm_assets.domain.identity.customer_ids import CUSTOMER_ID_MAP
from cdm_assets.domain.identity.match_rules import SOURCE_LOOKUP
from cdm_assets.domain.marts.customers import CUSTOMERS
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.warehouse import TableName

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class Outcome:
    """How many rows fail a data test, out of how many, and a sample of them."""

    failing: int
    total: int
    sample: list[dict] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.failing / self.total if self.total else 0.0


def _outcome(con: duckdb.DuckDBPyConnection, failing_sql: str, total_sql: str, params: list | None = None) -> Outcome:
    failing = con.execute(f"SELECT count(*) FROM ({failing_sql})", params or []).fetchone()[0]
    total = con.execute(total_sql).fetchone()[0]
    cursor = con.execute(f"SELECT * FROM ({failing_sql}) LIMIT {SAMPLE_SIZE}", params or [])
    names = [d[0] for d in cursor.description]
    sample = [{n: _plain(v) for n, v in zip(names, row)} for row in cursor.fetchall()]
    return Outcome(failing, total, sample)


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def negative_amounts(con: duckdb.DuckDBPyConnection) -> Outcome:
    return _outcome(
        con,
        f"SELECT transaction_id, source, amount, type FROM {TRANSACTIONS.sql} WHERE amount < 0",
        f"SELECT count(*) FROM {TRANSACTIONS.sql}",
    )


def duplicate_customer_ids(con: duckdb.DuckDBPyConnection) -> Outcome:
    return _outcome(
        con,
        f"SELECT customer_id, count(*) AS rows FROM {CUSTOMERS.sql} GROUP BY customer_id HAVING count(*) > 1",
        f"SELECT count(*) FROM {CUSTOMERS.sql}",
    )


def records_without_exactly_one_customer_id(con: duckdb.DuckDBPyConnection) -> Outcome:
    """Lookup records mapped to no Customer ID or to several, and map rows with no record."""
    return _outcome(
        con,
        f"""
        SELECT coalesce(l.source, m.source) AS source,
               coalesce(l.source_record_id, m.source_record_id) AS source_record_id,
               count(m.customer_id) AS customer_ids, bool_or(l.source IS NULL) AS unknown_record
        FROM {SOURCE_LOOKUP.sql} l
        FULL JOIN {CUSTOMER_ID_MAP.sql} m USING (source, source_record_id)
        GROUP BY ALL
        HAVING count(m.customer_id) <> 1 OR bool_or(l.source IS NULL)
        """,
        f"SELECT count(*) FROM {SOURCE_LOOKUP.sql}",
    )


def orphan_customer_ids(con: duckdb.DuckDBPyConnection, mart: TableName, key: str) -> Outcome:
    """Rows of `mart` whose customer_id is not in marts.customers."""
    return _outcome(
        con,
        f"""
        SELECT t.{key}, t.customer_id FROM {mart.sql} t
        WHERE t.customer_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {CUSTOMERS.sql} c WHERE c.customer_id = t.customer_id)
        """,
        f"SELECT count(*) FROM {mart.sql}",
    )


def unattributed_rows(con: duckdb.DuckDBPyConnection, mart: TableName, key: str) -> Outcome:
    return _outcome(
        con,
        f"SELECT {key}, source FROM {mart.sql} WHERE customer_id IS NULL",
        f"SELECT count(*) FROM {mart.sql}",
    )


def quarantined_rows(con: duckdb.DuckDBPyConnection, source: str, accepted: TableName) -> Outcome:
    """Rows of `source` quarantined at the raw stage, out of all rows that came in."""
    failing = "SELECT _file, _row_number, reason FROM raw.quarantine WHERE source = ? AND stage = 'raw'"
    outcome = _outcome(con, failing, f"SELECT count(*) FROM {accepted.sql}", [source])
    return Outcome(outcome.failing, outcome.total + outcome.failing, outcome.sample)


def oversized_clusters(con: duckdb.DuckDBPyConnection, max_cluster_size: int) -> Outcome:
    return _outcome(
        con,
        f"""
        SELECT customer_id, count(*) AS records FROM {CUSTOMER_ID_MAP.sql}
        GROUP BY customer_id HAVING count(*) > {int(max_cluster_size)}
        ORDER BY records DESC
        """,
        f"SELECT count(DISTINCT customer_id) FROM {CUSTOMER_ID_MAP.sql}",
    )


def row_count_drop(previous: int | None, current: int) -> float:
    """The share of rows lost since the previous materialisation (0 when it grew)."""
    if not previous:
        return 0.0
    return max(0.0, (previous - current) / previous)
