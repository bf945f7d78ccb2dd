"""Why is this a customer? The records behind a Customer ID and the links that joined them."""

from __future__ import annotations

import duckdb

from cdm_assets.domain.identity.source_lookup import KEY_COLUMNS
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.sql import quote_ident
from cdm_assets.domain.warehouse import table_columns, table_exists

RECORD_FIELDS = ("first_name", "last_name", "email", "phone", "birth_date", "postcode", "city", "country")


class UnknownCustomer(LookupError):
    pass


def explain_customer(con: duckdb.DuckDBPyConnection, customer_id: str, tables: EntityTables) -> str:
    """A plain-text account of one customer (or one id of another customer-like
    entity): records, links with their rules, id history."""
    id_column, previous_column = quote_ident(tables.id_column), quote_ident(tables.previous_id_column)
    lookup_columns = [name for name, _ in table_columns(con, tables.lookup)]
    identifiers = [name for name in lookup_columns if name.startswith("id_")]
    fields = [*RECORD_FIELDS, *identifiers]
    # The match keys rules and the model compare: shown per record, since a key can hold a
    # value where the field is empty (a phone without a country code has a key, no E.164).
    keys = [name for name in KEY_COLUMNS if name in lookup_columns]
    fields_and_keys = [*fields, *keys]
    records = con.execute(
        f"""
        SELECT l.source, l.source_record_id, {", ".join(f"l.{quote_ident(f)}" for f in fields_and_keys)}
        FROM {tables.id_map.sql} m JOIN {tables.lookup.sql} l USING (source, source_record_id)
        WHERE m.{id_column} = ?
        ORDER BY l.precedence, l.source, l.source_record_id
        """,
        [customer_id],
    ).fetchall()
    if not records:
        raise UnknownCustomer(f"no {tables.entity} with id {customer_id!r}")
    graph_columns = [name for name, _ in table_columns(con, tables.graph)]
    weights = [name for name in graph_columns if name.startswith("weight_")]
    scored = ", ".join(["g.match_weight", *(f"g.{quote_ident(w)}" for w in weights)]) if weights else "NULL"
    links = con.execute(
        f"""
        SELECT g.source_a || ':' || g.record_id_a, g.source_b || ':' || g.record_id_b, g.rule, g.score, {scored}
        FROM {tables.graph.sql} g
        JOIN {tables.id_map.sql} m ON m.source = g.source_a AND m.source_record_id = g.record_id_a
        WHERE m.{id_column} = ?
        ORDER BY 1, 2
        """,
        [customer_id],
    ).fetchall()
    history = con.execute(
        f"""
        SELECT changed_at, change, {previous_column}, records FROM {tables.id_history.sql}
        WHERE {id_column} = ? OR {previous_column} = ?
        ORDER BY changed_at, change
        """,
        [customer_id, customer_id],
    ).fetchall()
    sources = sorted({r[0] for r in records})
    lines = [
        f"{tables.entity.replace('_', ' ').capitalize()} {customer_id}: {len(records)} record(s) from {', '.join(sources)}",
        "",
        "Records:",
    ]
    for source, record_id, *values in records:
        shown = ", ".join(f"{name}={value}" for name, value in zip(fields, values) if value is not None)
        compared = ", ".join(f"{name}={value}" for name, value in zip(keys, values[len(fields) :]) if value is not None)
        lines.append(f"  {source}:{record_id}  {shown}")
        lines.append(f"      compared keys: {compared or 'none'}")
    lines += ["", f"Links ({len(links)}):"]
    for record_a, record_b, rule, score, *evidence in links:
        scored = f" score={score:.3f}" if score is not None else ""
        lines.append(f"  {record_a} <-> {record_b}  rule={rule}{scored}")
        if weights and evidence[0] is not None:
            # the model's evidence: bits for (+) or against (-) one person, per compared field
            per_field = ", ".join(
                f"{name.removeprefix('weight_')} {value:+.1f}"
                for name, value in zip(weights, evidence[1:])
                if value is not None and value != 0
            )
            lines.append(f"      match weight {evidence[0]:+.1f} bits: {per_field or 'no field compared'}")
    if not links:
        lines.append("  (a single record: nothing to link)")
    lines += _steward_lines(con, tables, customer_id)
    lines += ["", "History:"]
    for changed_at, change, previous, count in history:
        other = f" {previous}" if previous else ""
        lines.append(f"  {changed_at:%Y-%m-%d %H:%M:%S}  {change}{other} ({count} records)")
    return "\n".join(lines)


def _steward_lines(con: duckdb.DuckDBPyConnection, tables: EntityTables, customer_id: str) -> list[str]:
    """The steward's overrides naming a record of the customer, and the links they cut there."""
    if not table_exists(con, tables.overrides) or not table_exists(con, tables.cut_links):
        return []
    id_column = quote_ident(tables.id_column)
    mine = f"SELECT source, source_record_id FROM {tables.id_map.sql} WHERE {id_column} = $id"
    overrides = con.execute(
        f"""
        SELECT action, source_a || ':' || record_id_a, source_b || ':' || record_id_b, line, status, links_cut, reason
        FROM {tables.overrides.sql}
        WHERE (source_a, record_id_a) IN ({mine}) OR (source_b, record_id_b) IN ({mine})
        ORDER BY line
        """,
        {"id": customer_id},
    ).fetchall()
    cut = con.execute(
        f"""
        SELECT source_a || ':' || record_id_a, source_b || ':' || record_id_b, rule, override_line
        FROM {tables.cut_links.sql}
        WHERE (source_a, record_id_a) IN ({mine}) OR (source_b, record_id_b) IN ({mine})
        ORDER BY 1, 2
        """,
        {"id": customer_id},
    ).fetchall()
    if not overrides and not cut:
        return []
    lines = ["", "Steward overrides:"]
    for action, record_a, record_b, line, status, links_cut, reason in overrides:
        count = f", {links_cut} link(s) cut" if action == "unlink" and links_cut else ""
        lines.append(
            f"  {action} {record_a} / {record_b} (line {line}): {status}{count}{'; ' + reason if reason else ''}"
        )
    for record_a, record_b, rule, line in cut:
        lines.append(f"  {record_a} <-> {record_b}  rule={rule}  cut by the unlink at line {line}")
    return lines
