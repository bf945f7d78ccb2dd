"""Materialisation metadata shared by every warehouse asset."""

from __future__ import annotations

import dagster as dg
import duckdb

from cdm_assets.domain.warehouse import TableName, row_count, table_columns

PREVIEW_ROWS = 5
_CELL_WIDTH = 40


def table_metadata(con: duckdb.DuckDBPyConnection, table: TableName) -> dict[str, dg.MetadataValue | int | str]:
    """Row count, column schema, table name and a small markdown preview."""
    columns = table_columns(con, table)
    return {
        "dagster/row_count": row_count(con, table),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=dtype) for name, dtype in columns]
        ),
        "dagster/table_name": f"{table}",
        "preview": dg.MetadataValue.md(markdown_preview(con, table, [name for name, _ in columns])),
    }


def markdown_preview(con: duckdb.DuckDBPyConnection, table: TableName, columns: list[str]) -> str:
    rows = con.execute(f"SELECT * FROM {table.sql} LIMIT {PREVIEW_ROWS}").fetchall()
    header = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join([header, rule, *body]) if columns else "(no columns)"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"
