"""Materialisation metadata shared by every warehouse asset."""

from __future__ import annotations

import dagster as dg
import duckdb

from cdm_assets.config import CdmConfig, column_of
from cdm_assets.domain.identity.nulled_values import NulledValues, total_nulled
from cdm_assets.domain.masking import PreviewPolicy, source_columns
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.warehouse import row_count, table_columns
from cdm_assets.wiring.columns import column_description, definition_schemas

PREVIEW_ROWS = 5
# The stage (`CDM_ENV`) an asset belongs to, in every asset's definition metadata.
ENVIRONMENT_METADATA = "cdm/environment"
_CELL_WIDTH = 40


def preview_policy(config: CdmConfig, table: TableName | None = None) -> PreviewPolicy:
    """How personal values of `table` show in metadata (`privacy.previews`): for a raw
    source's table its own columns are known by the fields they map to."""
    columns: dict[str, str] = {}
    if table is not None and table.schema == "raw" and table.name in config.sources:
        source = config.sources[table.name]
        columns = source_columns(source.fields, source.identifiers.values(), column_of)
    return PreviewPolicy(config.privacy.previews, columns)


def table_metadata(
    con: duckdb.DuckDBPyConnection, table: TableName, previews: PreviewPolicy, config: CdmConfig | None = None
) -> dict[str, dg.MetadataValue | int | str]:
    """Row count, column schema, table name and a small markdown preview (personal
    values masked, or no preview, as `previews` says). Columns are described as in
    the definitions (`config` adds its attributes), so the Columns tab keeps its
    descriptions after a run; a raw table's columns are the source's own, not described."""
    columns = table_columns(con, table)
    names = [name for name, _ in columns]
    declared = definition_schemas(config).get(table) if config is not None else None
    described = {c.name: c.description for c in declared.columns} if declared is not None else {}

    def description(name: str) -> str | None:
        return None if table.schema == "raw" else described.get(name) or column_description(name)

    preview = (
        markdown_preview(con, table, names, previews)
        if previews.shows_rows
        else "(no preview: `privacy.previews: off` in cdm.yaml)"
    )
    return {
        "dagster/row_count": row_count(con, table),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=dtype, description=description(name)) for name, dtype in columns]
        ),
        "dagster/table_name": f"{table}",
        "preview": dg.MetadataValue.md(preview),
    }


_NULLED_VALUES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("source", "string"),
        dg.TableColumn("field", "string", description="the lookup column left NULL"),
        dg.TableColumn("reason", "string"),
        dg.TableColumn("values", "int", description="records whose value was dropped for this reason"),
    ]
)


def nulled_values_metadata(counts: list[NulledValues]) -> dict[str, dg.MetadataValue | int]:
    """The values a standardisation left NULL: the total and a table per source, field and reason
    (counts only, never the values)."""
    records = [
        dg.TableRecord({"source": c.source, "field": c.field, "reason": c.reason, "values": c.values}) for c in counts
    ]
    return {
        "values_nulled": total_nulled(counts),
        "nulled_values": dg.MetadataValue.table(records=records, schema=_NULLED_VALUES_SCHEMA),
    }


def markdown_preview(
    con: duckdb.DuckDBPyConnection, table: TableName, columns: list[str], previews: PreviewPolicy
) -> str:
    rows = con.execute(f"SELECT * FROM {table.sql} LIMIT {PREVIEW_ROWS}").fetchall()
    header = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_cell(previews.value(c, v)) for c, v in zip(columns, row)) + " |" for row in rows]
    return "\n".join([header, rule, *body]) if columns else "(no columns)"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"
