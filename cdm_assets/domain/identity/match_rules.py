"""Match rules: which pairs of customer records are the same person, and why.

A rule blocks on `exact` keys (records sharing every key value are compared),
keeps the pairs whose `similar` names reach a Jaro-Winkler threshold (a
nickname of the same name counts as identical) and whose `max_edits` keys are
that few typos apart, and drops pairs that hold two different values for a
`must_not_differ` key. Key values shared by more than
`max_records_per_key` records link nothing: placeholders such as
`test@test.com` or a shop's own phone number must not chain strangers into
one customer.

Each rule renders to one SQL statement over `identity.source_lookup`
(`rule_sql`); the identity graph is the union of all rules and the match
model's links, one row per linked pair, labelled with the first rule (in
configured order) that linked it, else `match_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.cannot_link import drop_weak_links_in_conflict
from cdm_assets.domain.identity.match_keys import key_column
from cdm_assets.domain.identity.match_model.scoring import (
    MODEL_RULE_ORDER,
    ScoringModel,
    build_model_links,
    weight_column,
)
from cdm_assets.domain.identity.override_file import Override
from cdm_assets.domain.identity.overrides import OverrideReport, apply_overrides
from cdm_assets.domain.identity.rule_sql import rule_sql, without_placeholders
from cdm_assets.domain.plan import EntityTables, MatchRule
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.vocabulary import match_key
from cdm_assets.domain.warehouse import create_table_as, row_count, staged_tables, swap_in

MODEL_RULE = "match_model"  # the rule label of the links the match model makes


@dataclass(frozen=True)
class GraphBuild:
    """What a graph build did: its links, and for the match model how many candidate pairs
    it scored, how many reached the threshold, how many of those a cannot-link field held
    apart, and how many weak model links came out for a conflict in their group; and what
    the steward's overrides did."""

    links: int
    model_pairs: dict[str, float] | None = None  # counts of pairs, and first_name_given_surname
    overrides: OverrideReport | None = None


def build_identity_graph(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    max_records_per_key: int,
    tables: EntityTables,
    model: ScoringModel | None = None,
    overrides: Sequence[Override] = (),
) -> GraphBuild:
    """Write `identity.identity_graph` (or another entity's graph): one row per linked pair.

    A pair is linked by a hard rule (labelled with the first rule, in
    configured order, that links it) or by the match model (`match_model`)
    when its match probability reaches the model's threshold. Model links
    carry their probability, match weight and per-comparison weights. Weak
    rule links that would put two different values of a rule's
    `must_not_differ` key into one customer are left out (`cannot_link`).
    The steward's `overrides` come last and win (`overrides`); the status of each
    is written to the entity's overrides table, the links they cut to its cut links.
    """
    lookup, graph = tables.lookup, tables.graph
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    work = [
        TableName(SCRATCH, f"{graph.name}_{part}") for part in ("placeholders", "candidates", "links", "model_links")
    ]
    targets = (graph, tables.overrides, tables.cut_links)
    with staged_tables(con, *work, *targets) as (placeholders, candidates, links, model_links, staging, report, cuts):
        params = {"max_records": max_records_per_key}
        _list_placeholders(con, rules, lookup, placeholders, params)
        _link_by_rules(con, rules, lookup, placeholders, candidates, links, params)
        key_values, rule_orders = _cannot_link_keys(rules, placeholders)
        drop_weak_links_in_conflict(con, lookup, links, key_values, rule_orders)
        model_pairs = None
        if model is not None:
            model_pairs = build_model_links(con, lookup, model, max_records_per_key, model_links)
            model_pairs["dropped_in_conflict"] = drop_weak_links_in_conflict(
                con, lookup, model_links, {c: quote_ident(c) for c in model.conflict_columns},
                {c: [MODEL_RULE_ORDER] for c in model.conflict_columns},
            )  # fmt: skip
        create_table_as(
            con,
            staging,
            f"""
            SELECT a.source AS source_a, a.source_record_id AS record_id_a,
                   b.source AS source_b, b.source_record_id AS record_id_b,
                   link.* EXCLUDE (key_a, key_b), link.key_a, link.key_b
            FROM ({_labelled_links_sql(rules, links, model_links, model)}) AS link
            JOIN {lookup.sql} a ON a.record_key = link.key_a
            JOIN {lookup.sql} b ON b.record_key = link.key_b
            """,
        )
        rule_order = {rule.name: order for order, rule in enumerate(rules)}
        applied = apply_overrides(con, lookup, staging, overrides, rule_order, report, cuts)
        swap_in(con, list(zip(targets, (staging, report, cuts))))
    return GraphBuild(row_count(con, graph), model_pairs, applied)


def _list_placeholders(
    con: duckdb.DuckDBPyConnection, rules: Sequence[MatchRule], lookup: TableName, placeholders: TableName, params: dict
) -> None:
    """(key_column, value) of the values of must-not-differ keys held by more than `$max_records` records."""
    con.execute(f"{create_table(placeholders)} (key_column VARCHAR, value VARCHAR)")
    for key in _placeholder_checked_keys(rules):
        column = quote_ident(key_column(key))
        con.execute(
            f"INSERT INTO {placeholders.sql} SELECT {sql_string(key_column(key))}, {column} FROM {lookup.sql} "
            f"WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(*) > $max_records",
            params,
        )


def _link_by_rules(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    placeholders: TableName,
    candidates: TableName,
    links: TableName,
    params: dict,
) -> None:
    """`links`: every pair some rule links, with the first such rule (by order), its score and weakness."""
    con.execute(
        f"{create_table(candidates)} (key_a BIGINT, key_b BIGINT, rule_order INTEGER, score DOUBLE, weak BOOLEAN)"
    )
    for order, rule in enumerate(rules):
        con.execute(
            f"INSERT INTO {candidates.sql} SELECT key_a, key_b, $rule_order, score, weak "
            f"FROM ({rule_sql(rule, lookup, placeholders)})",
            {**params, "rule_order": order},
        )
    con.execute(
        f"""
        {create_table(links)} AS
        SELECT key_a, key_b, min(rule_order) AS rule_order, arg_min(score, rule_order) AS score,
               arg_min(weak, rule_order) AS weak
        FROM {candidates.sql}
        GROUP BY key_a, key_b
        """
    )
    con.execute(f"DROP TABLE {candidates.sql}")


def _labelled_links_sql(
    rules: Sequence[MatchRule], links: TableName, model_links: TableName, model: ScoringModel | None
) -> str:
    """Rule links and model links as one relation: each pair with its rule's name (or
    `match_model`), its score and, from the model, probability, weight and field weights."""
    names = (
        "CASE link.rule_order "
        + " ".join(f"WHEN {order} THEN {sql_string(rule.name)}" for order, rule in enumerate(rules))
        + " END"
        if rules
        else "NULL::VARCHAR"
    )
    if model is None:
        return f"SELECT link.key_a, link.key_b, {names} AS rule, round(link.score, 4) AS score FROM {links.sql} link"
    weights = [weight_column(c) for c in model.comparisons]
    scored = ", ".join(
        ["round(model.match_probability, 6) AS match_probability", "round(model.match_weight, 3) AS match_weight",
         *(f"round(model.{w}, 3) AS {w}" for w in weights)]
    )  # fmt: skip
    return f"""
        SELECT coalesce(link.key_a, model.key_a) AS key_a, coalesce(link.key_b, model.key_b) AS key_b,
               coalesce({names}, {sql_string(MODEL_RULE)}) AS rule,
               round(coalesce(link.score, model.match_probability), 4) AS score, {scored}
        FROM {links.sql} AS link FULL OUTER JOIN {model_links.sql} AS model USING (key_a, key_b)
    """


def _placeholder_checked_keys(rules: Sequence[MatchRule]) -> list[str]:
    """Placeholder-prone keys some rule says must not differ: their placeholders are listed."""
    return sorted({key for rule in rules for key in rule.must_not_differ if match_key(key).personal})


def _cannot_link_keys(
    rules: Sequence[MatchRule], placeholders: TableName
) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Per lookup column that a rule with names to compare says must not differ: its value
    expression (placeholders as NULL) and the rules (by order) that name it."""
    key_values: dict[str, str] = {}
    rule_orders: dict[str, list[int]] = {}
    for order, rule in enumerate(rules):
        if not rule.similar:
            continue  # no weak links
        for key in rule.must_not_differ:
            column = key_column(key)
            key_values[column] = (
                without_placeholders(key, placeholders) if match_key(key).personal else quote_ident(column)
            )
            rule_orders.setdefault(column, []).append(order)
    return key_values, rule_orders


def links_per_rule(con: duckdb.DuckDBPyConnection, graph: TableName) -> dict[str, int]:
    return dict(con.execute(f"SELECT rule, count(*) FROM {graph.sql} GROUP BY rule ORDER BY 2 DESC").fetchall())
