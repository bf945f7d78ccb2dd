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

from cdm_assets.config.model import CdmConfig, SourceConfig, TransactionTypes, column_of, format_of
from cdm_assets.domain.identity.customer_ids import CUSTOMER_ID_MAP
from cdm_assets.domain.marts.parsing import amount_sql, reference_columns_sql, row_json_sql, timestamp_sql
from cdm_assets.domain.marts.reference_data import ISO_CURRENCIES
from cdm_assets.domain.warehouse import (
    QuarantineReplacement,
    TableName,
    ensure_quarantine,
    ensure_schemas,
    quote_ident,
    staged_tables,
    swap_in,
)

TRANSACTIONS = TableName("marts", "transactions")
STAGE = "transactions"


@dataclass(frozen=True)
class TransactionsReport:
    rows_in: int
    rows: int
    quarantined: int
    unattributed: int


def build_transactions(con: duckdb.DuckDBPyConnection, config: CdmConfig) -> TransactionsReport:
    """Rebuild `marts.transactions` from the raw transaction tables."""
    ensure_schemas(con, "marts")
    ensure_quarantine(con)
    sources = config.sources_of("transaction")
    con.execute("CREATE OR REPLACE TEMP TABLE iso_currencies AS SELECT unnest(?::VARCHAR[]) AS code", [list(ISO_CURRENCIES)])
    with staged_tables(con, TableName("marts", "transactions_parsed"), TableName("marts", "transactions_rejects"), TRANSACTIONS) as (
        parsed,
        rejects,
        staging,
    ):
        selects = [_parsed_select(name, source) for name, source in sources.items()]
        if selects:
            con.execute(f"CREATE TABLE {parsed.sql} AS " + "\nUNION ALL BY NAME\n".join(selects))
        else:
            con.execute(f"CREATE TABLE {parsed.sql} AS {_EMPTY_PARSED}")
        con.execute(
            f"""
            CREATE TABLE {rejects.sql} AS
            SELECT source, '{STAGE}' AS stage, _file, _row_number, problem_column AS column_name,
                   problem AS reason, raw_row
            FROM (
                SELECT *,
                    CASE
                        WHEN amount_text IS NULL THEN 'missing amount'
                        WHEN amount IS NULL THEN 'unparseable amount ' || amount_text
                        WHEN amount < 0 AND has_type THEN 'negative amount ' || amount_text
                        WHEN occurred_at_text IS NULL THEN 'missing timestamp'
                        WHEN occurred_at IS NULL THEN 'unparseable timestamp ' || occurred_at_text
                        WHEN currency IS NOT NULL AND currency NOT IN (SELECT code FROM iso_currencies)
                            THEN 'unknown currency ' || currency
                        WHEN has_type AND type IS NULL THEN 'unknown transaction type ' || coalesce(type_text, '(empty)')
                    END AS problem,
                    CASE
                        WHEN amount IS NULL OR (amount < 0 AND has_type) THEN amount_column
                        WHEN occurred_at IS NULL THEN occurred_at_column
                        WHEN currency IS NOT NULL AND currency NOT IN (SELECT code FROM iso_currencies) THEN currency_column
                        ELSE type_column
                    END AS problem_column
                FROM {parsed.sql}
            )
            WHERE problem IS NOT NULL
            """
        )
        con.execute(
            f"""
            CREATE TABLE {staging.sql} AS
            SELECT p.transaction_id, p.source, m.customer_id, p.customer_source, p.customer_ref,
                   abs(p.amount) AS amount, p.currency,
                   CASE WHEN p.has_type THEN p.type WHEN p.amount < 0 THEN 'return' ELSE 'order' END AS type,
                   p.occurred_at,
                   CASE WHEN (CASE WHEN p.has_type THEN p.type WHEN p.amount < 0 THEN 'return' ELSE 'order' END) = 'return'
                        THEN -abs(p.amount) ELSE abs(p.amount) END AS signed_amount,
                   p._file, p._row_number
            FROM {parsed.sql} p
            LEFT JOIN {CUSTOMER_ID_MAP.sql} m
                   ON m.source = p.customer_source AND m.source_record_id = p.customer_ref
            WHERE NOT EXISTS (
                SELECT 1 FROM {rejects.sql} r
                WHERE r.source = p.source AND r._file = p._file AND r._row_number = p._row_number
            )
            ORDER BY p.source, p.occurred_at, p.transaction_id
            """
        )
        rows_in = con.execute(f"SELECT count(*) FROM {parsed.sql}").fetchone()[0]
        quarantined = con.execute(f"SELECT count(*) FROM {rejects.sql}").fetchone()[0]
        rows, unattributed = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE customer_id IS NULL) FROM {staging.sql}"
        ).fetchone()
        swap_in(con, [(TRANSACTIONS, staging)], QuarantineReplacement(tuple(sources), STAGE, rejects))
    return TransactionsReport(rows_in=rows_in, rows=rows, quarantined=quarantined, unattributed=unattributed)


def _parsed_select(name: str, source: SourceConfig) -> str:
    """One source's rows with every mart column parsed (NULL where parsing failed)."""
    fields = source.fields
    raw = TableName("raw", name)

    def column(field: str) -> str | None:
        return quote_ident(column_of(fields[field])) if field in fields else None

    amount, currency, kind, occurred = column("amount"), column("currency"), column("type"), column("occurred_at")
    types = source.type_values or TransactionTypes()
    type_text = f"lower(trim(CAST({kind} AS VARCHAR)))" if kind else "NULL"
    currency_sql = f"nullif(upper(trim(CAST({currency} AS VARCHAR))), '')" if currency else "NULL::VARCHAR"
    return f"""
        SELECT {reference_columns_sql(name, source, "transaction_id")},
               nullif(trim(CAST({amount} AS VARCHAR)), '') AS amount_text,
               {amount_sql(amount)} AS amount,
               {currency_sql} AS currency,
               {type_text} AS type_text,
               CASE WHEN {type_text} IN ({_sql_list(types.order)}) THEN 'order'
                    WHEN {type_text} IN ({_sql_list(types.return_)}) THEN 'return' END AS type,
               {"true" if kind else "false"} AS has_type,
               nullif(trim(CAST({occurred} AS VARCHAR)), '') AS occurred_at_text,
               {timestamp_sql(occurred, format_of(fields["occurred_at"]))} AS occurred_at,
               '{_text(column_of(fields["amount"]))}' AS amount_column,
               {f"'{_text(column_of(fields['currency']))}'" if currency else "NULL"} AS currency_column,
               {f"'{_text(column_of(fields['type']))}'" if kind else "NULL"} AS type_column,
               '{_text(column_of(fields["occurred_at"]))}' AS occurred_at_column,
               _file, _row_number,
               {row_json_sql(source)} AS raw_row
        FROM {raw.sql}
    """


_EMPTY_PARSED = """
    SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS transaction_id, NULL::VARCHAR AS customer_source,
           NULL::VARCHAR AS customer_ref, NULL::VARCHAR AS amount_text, NULL::DECIMAL(18, 2) AS amount,
           NULL::VARCHAR AS currency, NULL::VARCHAR AS type_text, NULL::VARCHAR AS type, false AS has_type,
           NULL::VARCHAR AS occurred_at_text, NULL::TIMESTAMP AS occurred_at, NULL::VARCHAR AS amount_column,
           NULL::VARCHAR AS currency_column, NULL::VARCHAR AS type_column, NULL::VARCHAR AS occurred_at_column,
           NULL::VARCHAR AS _file, NULL::BIGINT AS _row_number, NULL::VARCHAR AS raw_row
    LIMIT 0
"""


def _sql_list(values: list[str]) -> str:
    return ", ".join(f"'{_text(v.strip().lower())}'" for v in values) or "NULL"


def _text(value: str) -> str:
    return value.replace("'", "''")
