"""Data tests: plain queries that count failing rows and show a few of them.

The Dagster layer turns each into an asset check (blocking or advisory);
here they are only SQL, so any engine or test can run them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import duckdb

from cdm_assets.domain.identity.customer_ids import map_changes_table, map_rewritten_table
from cdm_assets.domain.identity.lookup_changes import changes_table as lookup_changes_table
from cdm_assets.domain.marts.changed_customers import changed_customers_table
from cdm_assets.domain.marts.passed_tests import follow_changes
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.sql import TableName, quote_ident, sql_string
from cdm_assets.domain.table_versions import Delta
from cdm_assets.domain.warehouse import table_columns, table_exists

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class Outcome:
    """How many rows fail a data test, out of how many, and a sample of them."""

    failing: int
    total: int
    sample: list[dict] = field(default_factory=list)
    followed: bool = False  # only the rows changed since the test last passed were tested

    @property
    def share(self) -> float:
        return self.failing / self.total if self.total else 0.0


def _outcome(
    con: duckdb.DuckDBPyConnection,
    failing_sql: str,
    total_sql: str,
    params: list | None = None,
    order_by: str | None = None,
) -> Outcome:
    """The failing rows of `failing_sql` (counted, and a few sampled) out of the `total_sql` count."""
    failing, sample = _failing_rows(con, failing_sql, params, order_by)
    total = con.execute(total_sql).fetchone()[0]
    return Outcome(failing, total, sample)


def _failing_rows(
    con: duckdb.DuckDBPyConnection, failing_sql: str, params: list | None = None, order_by: str | None = None
) -> tuple[int, list[dict]]:
    """Count the failing rows, then sample a few of them (the first by `order_by`) only when
    some fail: a passing test, the usual case, runs its query once and never holds its rows."""
    failing = con.execute(f"SELECT count(*) FROM ({failing_sql})", params or []).fetchall()[0][0]
    if not failing:
        return 0, []
    order = f"ORDER BY {order_by}" if order_by else ""
    cursor = con.execute(f"SELECT * FROM ({failing_sql}) {order} LIMIT {SAMPLE_SIZE}", params or [])
    names = [d[0] for d in cursor.description]
    return failing, [{n: _plain(v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def negative_amounts(con: duckdb.DuckDBPyConnection) -> Outcome:
    return _outcome(
        con,
        f"SELECT transaction_id, source, amount, type FROM {TRANSACTIONS.sql} WHERE amount < 0",
        f"SELECT count(*) FROM {TRANSACTIONS.sql}",
    )


def duplicate_customer_ids(con: duckdb.DuckDBPyConnection, tables: EntityTables, among: str | None = None) -> Outcome:
    """Golden records sharing an id (in `marts.customers`, or another entity's golden table);
    with `among` (a SELECT of customer_id), only those ids are tested."""
    id_column = quote_ident(tables.id_column)
    only = "" if among is None else f"WHERE {id_column} IN ({among})"
    return _outcome(
        con,
        f"SELECT {id_column}, count(*) AS rows FROM {tables.golden.sql} {only} "
        f"GROUP BY {id_column} HAVING count(*) > 1",
        f"SELECT count(*) FROM {tables.golden.sql}",
    )


def duplicate_customer_ids_following(
    con: duckdb.DuckDBPyConnection, test: str, tables: EntityTables, follow: bool = True
) -> Outcome:
    """`duplicate_customer_ids` on the golden records rebuilt since the test last passed."""
    return _following(
        con,
        test,
        [tables.golden],
        lambda: duplicate_customer_ids(con, tables),
        lambda deltas: duplicate_customer_ids(con, tables, _changed_customers(deltas, tables.golden)),
        follow,
    )


def records_without_exactly_one_customer_id(
    con: duckdb.DuckDBPyConnection, tables: EntityTables, among: str | None = None
) -> Outcome:
    """Lookup records mapped to no Customer ID or to several, and map rows with no record;
    with `among` (a SELECT of source, source_record_id), only those records are tested.

    One aggregation over both tables' keys (cheaper than joining them): per
    record, `records` lookup rows and `ids` ids, so a lookup row meets
    max(records, 1) * ids ids, as a full join of the two would count them.
    """
    id_column = quote_ident(tables.id_column)
    ids_met = "greatest(records, 1) * ids"
    only = "" if among is None else f"SEMI JOIN ({among}) AS among USING (source, source_record_id)"
    return _outcome(
        con,
        f"""
        SELECT source, source_record_id, {ids_met} AS {quote_ident(tables.id_column + "s")}, records = 0 AS unknown_record
        FROM (
            SELECT source, source_record_id, count(*) FILTER (WHERE in_lookup) AS records, count(id) AS ids
            FROM (
                SELECT source, source_record_id, true AS in_lookup, NULL::VARCHAR AS id FROM {tables.lookup.sql} {only}
                UNION ALL
                SELECT source, source_record_id, false, {id_column} FROM {tables.id_map.sql} {only}
            )
            GROUP BY ALL
        )
        WHERE {ids_met} <> 1 OR records = 0
        """,
        f"SELECT count(*) FROM {tables.lookup.sql}",
    )


def records_without_exactly_one_customer_id_following(
    con: duckdb.DuckDBPyConnection, test: str, tables: EntityTables, follow: bool = True
) -> Outcome:
    """`records_without_exactly_one_customer_id` on the records the lookup changed and those whose
    map rows the id assignment deleted or wrote since the test last passed; whole tables when an
    assignment wrote the map whole."""

    def changed(deltas: Mapping[TableName, Delta]) -> Outcome | None:
        records = ["SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id WHERE false"]
        if deltas[tables.lookup] is Delta.RECORDED:
            records.append(f"SELECT source, source_record_id FROM {lookup_changes_table(tables.lookup).sql}")
        if deltas[tables.id_map] is Delta.RECORDED:
            rewritten = map_rewritten_table(tables)
            if not table_exists(con, rewritten) or con.execute(
                f"SELECT count(*) FROM {rewritten.sql} WHERE source IS NULL"
            ).fetchall() != [(0,)]:
                return None  # the map was written whole
            records.append(f"SELECT source, source_record_id FROM {rewritten.sql}")
        return records_without_exactly_one_customer_id(con, tables, " UNION ALL ".join(records))

    return _following(
        con,
        test,
        [tables.lookup, tables.id_map],
        lambda: records_without_exactly_one_customer_id(con, tables),
        changed,
        follow,
    )


def orphan_customer_ids(
    con: duckdb.DuckDBPyConnection, mart: TableName, key: str, customers: TableName, among: str | None = None
) -> Outcome:
    """Rows of `mart` whose customer_id is not in `customers` (marts.customers); with `among`
    (a SELECT of customer_id), only the rows of those ids are tested."""
    only = "" if among is None else f"AND t.customer_id IN ({among})"
    return _outcome(
        con,
        f"""
        SELECT t.{quote_ident(key)}, t.customer_id FROM {mart.sql} t
        WHERE t.customer_id IS NOT NULL {only}
          AND NOT EXISTS (SELECT 1 FROM {customers.sql} c WHERE c.customer_id = t.customer_id)
        """,
        f"SELECT count(*) FROM {mart.sql}",
    )


def orphan_customer_ids_following(
    con: duckdb.DuckDBPyConnection, test: str, mart: TableName, key: str, customers: TableName, follow: bool = True
) -> Outcome:
    """`orphan_customer_ids` on the rows relinked since the test last passed, and the rows of
    the customers rebuilt or removed since (both marts record those customers)."""
    return _following(
        con,
        test,
        [mart, customers],
        lambda: orphan_customer_ids(con, mart, key, customers),
        lambda deltas: orphan_customer_ids(con, mart, key, customers, _changed_customers(deltas, mart, customers)),
        follow,
    )


def unattributed_rows(con: duckdb.DuckDBPyConnection, mart: TableName, key: str) -> Outcome:
    return _outcome(
        con,
        f"SELECT {quote_ident(key)}, source FROM {mart.sql} WHERE customer_id IS NULL",
        f"SELECT count(*) FROM {mart.sql}",
    )


def quarantined_rows(con: duckdb.DuckDBPyConnection, source: str, accepted: TableName) -> Outcome:
    """Rows of `source` quarantined at the raw stage, out of all rows that came in."""
    failing = "SELECT _file, _row_number, reason FROM raw.quarantine WHERE source = ? AND stage = 'raw'"
    outcome = _outcome(con, failing, f"SELECT count(*) FROM {accepted.sql}", [source])
    return Outcome(outcome.failing, outcome.total + outcome.failing, outcome.sample)


def oversized_clusters(
    con: duckdb.DuckDBPyConnection, max_cluster_size: int, tables: EntityTables, among: str | None = None
) -> Outcome:
    """Customers holding more than `max_cluster_size` records, out of every customer; with
    `among` (a SELECT of customer_id), only those customers are tested."""
    id_column = quote_ident(tables.id_column)
    only = "" if among is None else f"WHERE {id_column} IN ({among})"
    sizes = f"SELECT {id_column}, count(*) AS records FROM {tables.id_map.sql} {only} GROUP BY {id_column}"
    limit = int(max_cluster_size)
    if among is None:  # one aggregation for both counts; the sample only when something fails
        customers, failing = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE records > {limit}) FROM ({sizes})"
        ).fetchall()[0]
        if not failing:
            return Outcome(0, customers)
    else:
        customers = _customer_count(con, tables)
    failing, sample = _failing_rows(
        con, f"SELECT * FROM ({sizes}) WHERE records > {limit}", order_by=f"records DESC, {id_column}"
    )
    return Outcome(failing, customers, sample)


def _customer_count(con: duckdb.DuckDBPyConnection, tables: EntityTables) -> int:
    """The customers of the map: its clusters, each counted at its smallest record (the map
    the id assignment writes names a cluster by it), or its distinct ids."""
    if {"record_key", "cluster"} <= {name for name, _ in table_columns(con, tables.id_map)}:
        return con.execute(f"SELECT count(*) FROM {tables.id_map.sql} WHERE record_key = cluster").fetchall()[0][0]
    id_column = quote_ident(tables.id_column)
    return con.execute(f"SELECT count(DISTINCT {id_column}) FROM {tables.id_map.sql}").fetchall()[0][0]


def oversized_clusters_following(
    con: duckdb.DuckDBPyConnection, test: str, max_cluster_size: int, tables: EntityTables, follow: bool = True
) -> Outcome:
    """`oversized_clusters` on the customers that gained records since the test last passed (a
    customer grows only by records whose id became its id, which the map's changes list)."""

    def grown(deltas: Mapping[TableName, Delta]) -> str:
        if deltas[tables.id_map] is Delta.NONE:
            return _NO_CUSTOMER
        return f"SELECT new_id FROM {map_changes_table(tables).sql} WHERE new_id IS NOT NULL"

    return _following(
        con,
        test,
        [tables.id_map],
        lambda: oversized_clusters(con, max_cluster_size, tables),
        lambda deltas: oversized_clusters(con, max_cluster_size, tables, grown(deltas)),
        follow,
    )


_NO_CUSTOMER = "SELECT NULL::VARCHAR AS customer_id WHERE false"


def _changed_customers(deltas: Mapping[TableName, Delta], *marts: TableName) -> str:
    """A SELECT of the customers whose rows changed in those of `marts` that changed since."""
    changed = [
        f"SELECT customer_id FROM {changed_customers_table(mart).sql}"
        for mart in marts
        if deltas[mart] is Delta.RECORDED
    ]
    return " UNION ALL ".join(changed) if changed else _NO_CUSTOMER


def _following(
    con: duckdb.DuckDBPyConnection,
    test: str,
    tables: list[TableName],
    whole: Callable[[], Outcome],
    changed: Callable[[Mapping[TableName, Delta]], Outcome | None],
    follow: bool,
) -> Outcome:
    """The test on what changed since it last passed, or (unless `follow`) on whole tables."""
    outcome, followed = follow_changes(con, test, tables, whole, changed, lambda o: o.failing == 0, follow)
    return dataclasses.replace(outcome, followed=followed)


@dataclass(frozen=True)
class Link:
    """A source whose records name a record of another source (a contact's account)."""

    source: str
    record_id: str  # the source's record id column
    column: str  # the column naming the linked record
    target_source: str


def dangling_links(con: duckdb.DuckDBPyConnection, links: list[Link], target: EntityTables) -> Outcome:
    """Records whose link names a record that is not in `target`'s id map."""
    if not links:
        return Outcome(0, 0)
    per_source = " UNION ALL ".join(
        f"""SELECT {sql_string(link.source)} AS source,
                   CAST({quote_ident(link.record_id)} AS VARCHAR) AS source_record_id,
                   {sql_string(link.target_source)} AS linked_source,
                   nullif(trim(CAST({quote_ident(link.column)} AS VARCHAR)), '') AS linked_record_id
            FROM {TableName("raw", link.source).sql}"""
        for link in links
    )
    linked = f"SELECT * FROM ({per_source}) WHERE linked_record_id IS NOT NULL"
    return _outcome(
        con,
        f"""
        SELECT r.* FROM ({linked}) r
        WHERE NOT EXISTS (
            SELECT 1 FROM {target.id_map.sql} m
            WHERE m.source = r.linked_source AND m.source_record_id = r.linked_record_id
        )
        """,
        f"SELECT count(*) FROM ({linked})",
    )


def row_count_drop(previous: int | None, current: int) -> float:
    """The share of rows lost since the previous materialisation (0 when it grew)."""
    if not previous:
        return 0.0
    return max(0.0, (previous - current) / previous)


def custom_rows(con: duckdb.DuckDBPyConnection, failing_sql: str, table: TableName) -> Outcome:
    """A user's own data test: the rows `failing_sql` returns fail, out of the rows of `table`."""
    return _outcome(con, failing_sql, f"SELECT count(*) FROM {table.sql}")
