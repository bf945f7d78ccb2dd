"""`marts.transactions`: every order and return of every transaction source.

Amounts are non-negative, the type says order or return, currencies are ISO
4217 codes and timestamps are parsed. Rows that break these rules go to
`raw.quarantine` (stage `transactions`) with the reason; a row whose customer
reference matches no customer record is kept with an empty `customer_id`.
Rows in = rows in the mart + rows quarantined, per source.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.customer_ids import map_changes_table
from cdm_assets.domain.marts.changed_customers import NO_CUSTOMERS, changed_customers_table, stage_changed_customers
from cdm_assets.domain.marts.parsing import amount_sql, raw_columns_sql, reference_columns_sql, timestamp_sql
from cdm_assets.domain.marts.reference_data import ISO_CURRENCIES
from cdm_assets.domain.plan import EntityTables, Plan, Source
from cdm_assets.domain.sql import TableName, quote_ident, sql_array, sql_list, sql_string
from cdm_assets.domain.table_versions import Delta, InputDeltas, input_deltas
from cdm_assets.domain.vocabulary import CUSTOMER, TRANSACTION
from cdm_assets.domain.warehouse import (
    QUARANTINE,
    QuarantineReplacement,
    create_table_as,
    ensure_quarantine,
    ensure_schemas,
    row_count,
    staged_tables,
    swap_in,
    table_exists,
)

TRANSACTIONS = TableName("marts", "transactions")
STAGE = "transactions"


@dataclass(frozen=True)
class TransactionsReport:
    rows_in: int
    rows: int
    quarantined: int
    unattributed: int
    followed_changes: bool = False  # only the customers of changed records were looked up again
    relinked: int = 0  # rows whose customer changed, when following


def build_transactions(con: duckdb.DuckDBPyConnection, plan: Plan, full: bool = False) -> TransactionsReport:
    """Build `marts.transactions` from the raw transaction tables.

    When the raw tables are the ones the mart was built from and the Customer ID
    map's changes since then are recorded, only the rows referring to a record
    whose id changed get their new `customer_id` (unless `full`): every other
    column depends on the raw row alone, so the mart is the one a full build makes.
    """
    ensure_schemas(con, "marts")
    ensure_quarantine(con)
    sources = plan.sources_of(TRANSACTION)
    customers = plan.entities[CUSTOMER].tables
    id_map = customers.id_map
    inputs = input_deltas(con, TRANSACTIONS, [*(TableName("raw", name) for name in sources), id_map])
    raw_unchanged = all(inputs.of(TableName("raw", name)) is Delta.NONE for name in sources)
    if not full and raw_unchanged and inputs.of(id_map) is not Delta.UNKNOWN and table_exists(con, TRANSACTIONS):
        return _follow_id_changes(con, sources, customers, inputs)
    selects = [_checked_select(name, source) for name, source in sources.items()]
    checked = "\nUNION ALL BY NAME\n".join(selects) or _EMPTY_CHECKED
    with staged_tables(con, TRANSACTIONS, TableName("marts", "transactions_rejects")) as (staging, rejects):
        # Every row is parsed and written once, problem rows included (their
        # problem columns are empty for all others, which costs next to
        # nothing); the problem rows then move to the quarantine. Filtering on
        # the problem while parsing would make DuckDB parse each row again.
        create_table_as(
            con,
            staging,
            f"""
            SELECT p.transaction_id, p.source, m.customer_id, p.customer_source, p.customer_ref,
                   abs(p.amount) AS amount, p.currency, p.type, p.occurred_at,
                   CASE WHEN p.type = 'return' THEN -abs(p.amount) ELSE abs(p.amount) END AS signed_amount,
                   p._file, p._row_number, p.problem, p.problem_column, p.problem_category, p.problem_value,
                   p.raw_row
            FROM (
                SELECT * REPLACE (
                    CASE WHEN has_type THEN type WHEN amount < 0 THEN 'return' ELSE 'order' END AS type
                )
                FROM ({checked})
            ) p
            LEFT JOIN {id_map.sql} m
                   ON m.source = p.customer_source AND m.source_record_id = p.customer_ref
            """,
        )
        con.execute(
            f"""
            CREATE TABLE {rejects.sql} AS
            SELECT source, {sql_string(STAGE)} AS stage, _file, _row_number, problem_column AS column_name,
                   problem AS reason, problem_category AS category, problem_value AS value, raw_row
            FROM {staging.sql}
            WHERE problem IS NOT NULL
            """
        )
        con.execute(f"DELETE FROM {staging.sql} WHERE problem IS NOT NULL")
        for helper in ("problem", "problem_column", "problem_category", "problem_value", "raw_row"):
            con.execute(f"ALTER TABLE {staging.sql} DROP COLUMN {helper}")
        quarantined = row_count(con, rejects)
        rows, unattributed = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE customer_id IS NULL) FROM {staging.sql}"
        ).fetchone()
        rows_in = rows + quarantined  # every parsed row either has a problem or not
        quarantine = QuarantineReplacement(tuple(sources), STAGE, rejects)
        changed = changed_customers_table(TRANSACTIONS)
        with staged_tables(con, changed) as (staged_changed,):
            version = stage_changed_customers(con, TRANSACTIONS, staged_changed, None)
            replacements = [(TRANSACTIONS, staging), (changed, staged_changed)]
            swap_in(con, replacements, quarantine, versions=[version], built_from=[inputs.now])
    return TransactionsReport(rows_in=rows_in, rows=rows, quarantined=quarantined, unattributed=unattributed)


def _follow_id_changes(
    con: duckdb.DuckDBPyConnection, sources: dict[str, Source], customers: EntityTables, inputs: InputDeltas
) -> TransactionsReport:
    """Give the rows referring to a record whose Customer ID changed their new one."""
    relink, changed_customers = [], NO_CUSTOMERS
    if inputs.of(customers.id_map) is Delta.RECORDED:
        referring = f"""
            {TRANSACTIONS.sql} AS t JOIN {map_changes_table(customers).sql} AS c
            ON t.customer_source = c.source AND t.customer_ref = c.source_record_id
        """
        # the customers the relinked rows leave and join
        changed_customers = f"SELECT t.customer_id FROM {referring} UNION ALL SELECT c.new_id FROM {referring}"
        relink.append(
            (
                f"""
                UPDATE {TRANSACTIONS.sql} AS t SET customer_id = c.new_id
                FROM {map_changes_table(customers).sql} AS c
                WHERE t.customer_source = c.source AND t.customer_ref = c.source_record_id
                """,
                None,
            )
        )
        relinked = con.execute(
            f"""
            SELECT count(*) FROM {TRANSACTIONS.sql} AS t
            SEMI JOIN {map_changes_table(customers).sql} AS c
                   ON t.customer_source = c.source AND t.customer_ref = c.source_record_id
            """
        ).fetchall()[0][0]
    else:
        relinked = 0
    changed = changed_customers_table(TRANSACTIONS)
    with staged_tables(con, changed) as (staged_changed,):
        version = stage_changed_customers(con, TRANSACTIONS, staged_changed, changed_customers)
        swap_in(con, [(changed, staged_changed)], statements=relink, versions=[version], built_from=[inputs.now])
    rows, unattributed = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE customer_id IS NULL) FROM {TRANSACTIONS.sql}"
    ).fetchall()[0]
    quarantined = con.execute(
        f"SELECT count(*) FROM {QUARANTINE.sql} WHERE stage = ? AND list_contains(?, source)", [STAGE, list(sources)]
    ).fetchall()[0][0]
    return TransactionsReport(rows + quarantined, rows, quarantined, unattributed, True, relinked)


def _checked_select(name: str, source: Source) -> str:
    """One source's rows parsed, with the first problem that keeps a row out of the mart
    (NULL when there is none), the column to blame and, for those rows only, the raw row."""
    return f"""
        SELECT * EXCLUDE (_raw_columns),
               CASE WHEN problem IS NOT NULL THEN CAST(to_json(_raw_columns) AS VARCHAR) END AS raw_row
        FROM (
            SELECT *, {_problem_case("reason")} AS problem, {_problem_case("column")} AS problem_column,
                   {_problem_case("category")} AS problem_category, {_problem_case("value")} AS problem_value
            FROM ({_parsed_select(name, source)})
        )
    """


_KNOWN_CURRENCY = f"list_contains({sql_array(ISO_CURRENCIES)}, currency)"
# The problems that keep a row out of the mart, first match wins: (condition, category,
# the offending value, the column to blame). The reason shown is the category, the value
# and, for an amount, the number format it was read with.
_PROBLEMS = (
    ("amount_text IS NULL", "missing amount", "NULL", "amount_column"),
    ("amount IS NULL", "unparseable amount", "amount_text", "amount_column"),
    ("amount < 0 AND has_type", "negative amount", "amount_text", "amount_column"),
    ("occurred_at_text IS NULL", "missing timestamp", "NULL", "occurred_at_column"),
    ("occurred_at IS NULL", "unparseable timestamp", "occurred_at_text", "occurred_at_column"),
    (f"currency IS NOT NULL AND NOT {_KNOWN_CURRENCY}", "unknown currency", "currency", "currency_column"),
    ("has_type AND type IS NULL", "unknown transaction type", "coalesce(type_text, '(empty)')", "type_column"),
)


def _problem_case(part: str) -> str:
    """A CASE giving, for the first problem of a row, its `category`, `value`, `column` or `reason`."""
    whens = []
    for condition, category, value, column in _PROBLEMS:
        reason = sql_string(category) if value == "NULL" else f"{sql_string(category + ' ')} || {value}"
        if category == "unparseable amount":
            reason += " || ' (number format: ' || number_format || ')'"
        chosen = {"category": sql_string(category), "value": value, "column": column, "reason": reason}[part]
        whens.append(f"WHEN {condition} THEN {chosen}")
    return "CASE " + " ".join(whens) + " END"


def _parsed_select(name: str, source: Source) -> str:
    """One source's rows with every mart column parsed (NULL where parsing failed)."""
    fields = source.fields
    raw = TableName("raw", name)

    def column(field: str) -> str | None:
        return quote_ident(fields[field].column) if field in fields else None

    amount, currency, kind, occurred = column("amount"), column("currency"), column("type"), column("occurred_at")
    types = source.type_values  # a transaction source always has them (the defaults when unset)
    assert types is not None
    type_text = f"lower(trim(CAST({kind} AS VARCHAR)))" if kind else "NULL"
    currency_sql = f"nullif(upper(trim(CAST({currency} AS VARCHAR))), '')" if currency else "NULL::VARCHAR"
    return f"""
        SELECT {reference_columns_sql(name, source, "transaction_id")},
               nullif(trim(CAST({amount} AS VARCHAR)), '') AS amount_text,
               {amount_sql(amount, source.number_format)} AS amount,
               {sql_string(source.number_format.describe())} AS number_format,
               {currency_sql} AS currency,
               {type_text} AS type_text,
               CASE WHEN {type_text} IN {sql_list(v.strip().lower() for v in types.order)} THEN 'order'
                    WHEN {type_text} IN {sql_list(v.strip().lower() for v in types.return_)} THEN 'return' END AS type,
               {"true" if kind else "false"} AS has_type,
               nullif(trim(CAST({occurred} AS VARCHAR)), '') AS occurred_at_text,
               {timestamp_sql(occurred, fields["occurred_at"].format)} AS occurred_at,
               {sql_string(fields["amount"].column)} AS amount_column,
               {sql_string(fields["currency"].column) if currency else "NULL"} AS currency_column,
               {sql_string(fields["type"].column) if kind else "NULL"} AS type_column,
               {sql_string(fields["occurred_at"].column)} AS occurred_at_column,
               _file, _row_number,
               {raw_columns_sql(source)} AS _raw_columns
        FROM {raw.sql}
    """


_EMPTY_CHECKED = """
    SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS transaction_id, NULL::VARCHAR AS customer_source,
           NULL::VARCHAR AS customer_ref, NULL::VARCHAR AS amount_text, NULL::DECIMAL(18, 2) AS amount,
           NULL::VARCHAR AS currency, NULL::VARCHAR AS type_text, NULL::VARCHAR AS type, false AS has_type,
           NULL::VARCHAR AS number_format, NULL::VARCHAR AS occurred_at_text, NULL::TIMESTAMP AS occurred_at, NULL::VARCHAR AS amount_column,
           NULL::VARCHAR AS currency_column, NULL::VARCHAR AS type_column, NULL::VARCHAR AS occurred_at_column,
           NULL::VARCHAR AS _file, NULL::BIGINT AS _row_number, NULL::VARCHAR AS raw_row,
           NULL::VARCHAR AS problem, NULL::VARCHAR AS problem_column, NULL::VARCHAR AS problem_category,
           NULL::VARCHAR AS problem_value
    LIMIT 0
"""
