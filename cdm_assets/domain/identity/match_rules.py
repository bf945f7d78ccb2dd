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

from cdm_assets.domain.identity.cannot_link import Reach, drop_weak_links_in_conflict
from cdm_assets.domain.identity.graph_changes import (
    GRAPH_CHANGES_DDL,
    RECORD_BLOCKS_DDL,
    RULE_PAIRS_DDL,
    GraphState,
    built_without_overrides,
    follows_on,
    graph_fingerprint,
    graph_row_updates,
    name_records,
    nothing_to_follow,
    stage_graph_rows,
    update_model_links,
    update_rule_pairs,
    write_build,
)
from cdm_assets.domain.identity.lookup_changes import LookupBuild, changes_table
from cdm_assets.domain.identity.match_keys import key_column
from cdm_assets.domain.identity.match_model.scoring import (
    MODEL_RULE_ORDER,
    ScoringModel,
    build_model_links,
    record_blocks_sql,
    weight_column,
)
from cdm_assets.domain.identity.override_file import Override
from cdm_assets.domain.identity.overrides import OverrideReport, apply_overrides
from cdm_assets.domain.identity.rule_sql import rule_sql, without_placeholders
from cdm_assets.domain.plan import EntityTables, MatchRule
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.table_versions import TableVersion, current_versions
from cdm_assets.domain.vocabulary import match_key
from cdm_assets.domain.warehouse import create_table_as, is_duckdb, row_count, staged_tables, swap_in

MODEL_RULE = "match_model"  # the rule label of the links the match model makes


@dataclass(frozen=True)
class GraphBuild:
    """What a graph build did: its links, and for the match model how many candidate pairs
    it scored, how many reached the threshold, how many of those a cannot-link field held
    apart, and how many weak model links came out for a conflict in their group; and what
    the steward's overrides did. A build that followed the lookup's changes says so
    (`followed_changes`) and how many rule blocks it rebuilt."""

    links: int
    model_pairs: dict[str, float] | None = None  # counts of pairs, and first_name_given_surname
    overrides: OverrideReport | None = None
    followed_changes: bool = False
    rule_blocks_rebuilt: int | None = None
    rows_rewritten: int | None = None  # following: the graph's rows deleted or inserted (a changed row counts once)


def build_identity_graph(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    max_records_per_key: int,
    tables: EntityTables,
    model: ScoringModel | None = None,
    overrides: Sequence[Override] = (),
    lookup_build: LookupBuild | None = None,
    full: bool = False,
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

    When the graph was built from the lookup build that `lookup_build` changed, with
    the same rules and model, only the pairs the changes touch are worked on
    (`graph_changes`), unless `full`; the links are the same either way.
    """
    lookup, graph = tables.lookup, tables.graph
    state = GraphState.of(graph)
    for schema in {"identity", state.build.schema}:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    fingerprint = graph_fingerprint(rules, max_records_per_key, model)
    follow = not full and follows_on(con, state, lookup_build, fingerprint)
    if follow and not overrides and nothing_to_follow(con, state, lookup_build):
        # a lookup build that changed no record (a file landed again as it was): the graph and its
        # state stay as they are, following the new build
        swap_in(
            con, [], statements=[(f"UPDATE {state.build.sql} SET lookup_build_id = $id", {"id": lookup_build.build_id})]
        )
        return GraphBuild(row_count(con, graph), None, OverrideReport({}, 0), True, 0, 0)
    # following with no overrides in this build or the last (they may name any link), only the
    # rows of the components the changes reach are compared with the graph (DuckDB; another
    # engine compares every row)
    compare_reached = follow and not overrides and is_duckdb(con) and built_without_overrides(con, state)
    parts = ("links", "model_links", "removed", "added", "blocks_added", "rows", "came", "went", "reached")
    work = [TableName(SCRATCH, f"{graph.name}_{part}") for part in parts]
    targets = (graph, tables.overrides, tables.cut_links, *state.tables)
    with staged_tables(con, *work, *targets) as (
        links,
        model_links,
        model_removed,
        model_added,
        blocks_added,
        rows,
        came,
        went,
        reached,
        staging,
        report,
        cuts,
        rule_pairs,
        model_state,
        placeholders,
        build,
        record_blocks,
        graph_changes,
    ):
        params = {"max_records": max_records_per_key}
        _list_placeholders(con, rules, lookup, placeholders, params)
        previous = state if follow else None
        reached = reached if compare_reached else None
        if reached is not None:
            con.execute(f"{create_table(reached)} (record_key BIGINT)")
        rebuilt = _rule_links(con, rules, lookup, placeholders, rule_pairs, links, params, previous, reached)
        model_pairs, state_updates = None, []
        if model is not None:
            model_work = (model_state, record_blocks, model_links, model_removed, model_added, blocks_added)
            model_pairs, state_updates = _model_links(
                con, lookup, model, max_records_per_key, model_work, previous, reached
            )
        else:
            con.execute(f"{create_table(model_state)} (key_a BIGINT, key_b BIGINT)")
            con.execute(f"{create_table(record_blocks)} ({RECORD_BLOCKS_DDL})")
        labelled = _labelled_links_sql(rules, links, model_links, model)
        rule_order = {rule.name: order for order, rule in enumerate(rules)}
        # Following, the graph's rows are worked out in memory (those of the components the
        # changes reach, when known) and only those that differ are written; a full build
        # writes the whole graph anew.
        staged_links = _labelled_links_sql(rules, links, model_links, model, only=reached)
        in_place = follow and stage_graph_rows(con, staged_links, graph, rows)
        if in_place:
            applied = apply_overrides(con, lookup, rows, overrides, rule_order, report, cuts)
            name_records(con, lookup, cuts)
            row_updates = graph_row_updates(con, lookup, graph, rows, came, went, only=reached)
            rewritten = row_count(con, went)
            con.execute(f"{create_table(graph_changes)} AS SELECT key_a, key_b, comes, goes FROM {went.sql}")
        else:
            create_table_as(
                con,
                staging,
                f"""
                SELECT a.source AS source_a, a.source_record_id AS record_id_a,
                       b.source AS source_b, b.source_record_id AS record_id_b,
                       link.* EXCLUDE (key_a, key_b), link.key_a, link.key_b
                FROM ({labelled}) AS link
                JOIN {lookup.sql} a ON a.record_key = link.key_a
                JOIN {lookup.sql} b ON b.record_key = link.key_b
                """,
            )
            applied = apply_overrides(con, lookup, staging, overrides, rule_order, report, cuts)
            row_updates, rewritten = [], None
            con.execute(f"{create_table(graph_changes)} ({GRAPH_CHANGES_DDL})")
        write_build(con, build, lookup_build, fingerprint, with_overrides=bool(overrides))
        stagings = (staging, report, cuts, rule_pairs, model_state, placeholders, build, record_blocks, graph_changes)
        # the model links' state and the records' blocks are replaced whole, or updated in place
        # by `state_updates`; the graph too, or by `row_updates`
        kept = {state.model_links, state.record_blocks} if state_updates else set()
        kept |= {graph} if in_place else set()
        replacements = [(t, s) for t, s in zip(targets, stagings) if t not in kept]
        # written in place, the graph's version follows the last one by the changes recorded
        previous_version = current_versions(con, [graph]).get(graph)
        follows = previous_version.version if in_place and previous_version else None
        version = TableVersion.new(graph, follows=follows)
        swap_in(con, replacements, statements=[*state_updates, *row_updates], versions=[version])
    return GraphBuild(row_count(con, graph), model_pairs, applied, follow, rebuilt, rewritten)


def _rule_links(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    placeholders: TableName,
    rule_pairs: TableName,
    links: TableName,
    params: dict,
    previous: GraphState | None,
    reached: TableName | None = None,
) -> int | None:
    """`rule_pairs` (every rule's pairs: all formed anew, or the `previous` build's with the
    blocks the lookup's changes touch rebuilt) and `links` (one per pair, the first rule's,
    without weak links in conflict); returns the blocks rebuilt when following changes.
    Following, `reached` gets the records of the links' components that the changes reach."""
    rebuilt = None
    with staged_tables(con, TableName(SCRATCH, "graph_changes_rule_block_members")) as (members,):
        if previous is None:
            _rule_pairs(con, rules, lookup, placeholders, rule_pairs, params)
        else:
            con.execute(f"{create_table(rule_pairs)} AS SELECT * FROM {previous.rule_pairs.sql}")
            changes = changes_table(lookup)
            rebuilt = update_rule_pairs(
                con, rules, lookup, changes, previous.placeholders, placeholders, rule_pairs, params, members
            )
        _link_by_rules(con, rule_pairs, links)
        key_values, rule_orders = _cannot_link_keys(rules, placeholders)
        reach = None
        if reached is not None and previous is not None:
            reach = Reach(_rule_changes_reach_sql(rules, lookup, previous, placeholders, members), reached)
        drop_weak_links_in_conflict(con, lookup, links, key_values, rule_orders, reach)
    return rebuilt


def _rule_changes_reach_sql(
    rules: Sequence[MatchRule], lookup: TableName, previous: GraphState, placeholders: TableName, members: TableName
) -> str:
    """SELECT record_key: the records whose rule pairs or whose values in the cannot-link check
    may differ from the `previous` build's: those the lookup changed, those in a block the
    rules' pairs were rebuilt in (`members`, as `update_rule_pairs` lists them), and the
    holders of a value that became a placeholder or stopped being one."""
    selects = [f"SELECT record_key FROM {changes_table(lookup).sql}", f"SELECT record_key FROM {members.sql}"]
    changed_placeholders = (
        f"(FROM {placeholders.sql} EXCEPT FROM {previous.placeholders.sql}) UNION ALL "
        f"(FROM {previous.placeholders.sql} EXCEPT FROM {placeholders.sql})"
    )
    for key in _placeholder_checked_keys(rules):
        column = key_column(key)
        selects.append(
            f"SELECT record_key FROM {lookup.sql} WHERE {quote_ident(column)} IN "
            f"(SELECT value FROM ({changed_placeholders}) WHERE key_column = {sql_string(column)})"
        )
    return " UNION ALL ".join(selects)


def _model_links(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    model: ScoringModel,
    max_records: int,
    work: tuple[TableName, ...],
    previous: GraphState | None,
    reached: TableName | None = None,
) -> tuple[dict[str, float], list[tuple[str, None]]]:
    """`model_links` (the model's links without the weak links in conflict) and their state
    before the cannot-link check, with every record's blocks: all scored and hashed anew into
    `model_state` and `record_blocks`, or the `previous` build's updated for the lookup's
    changes, by the statements returned (the pairs `removed` go, the links `added` come; the
    changed records' blocks go, those `blocks_added` come). Also returns the counts of the
    pairs scored. Following, `reached` gets the records of the model links' components
    that the changes reach."""
    model_state, record_blocks, model_links, removed, added, blocks_added = work
    updates: list[tuple[str, None]] = []
    reach = None
    if previous is None:
        model_pairs = build_model_links(con, lookup, model, max_records, model_state)
        con.execute(f"{create_table(model_links)} AS SELECT * FROM {model_state.sql}")
        con.execute(f"{create_table(record_blocks)} AS {record_blocks_sql(lookup, model)}")
    else:
        state, blocks = previous.model_links, previous.record_blocks
        con.execute(f"{create_table(model_links)} AS SELECT * FROM {state.sql}")
        changes = changes_table(lookup)
        model_pairs = update_model_links(
            con, lookup, changes, model, max_records, model_links, removed, added, blocks, blocks_added
        )
        updates = [
            (f"DELETE FROM {state.sql} WHERE (key_a, key_b) IN (SELECT (key_a, key_b) FROM {removed.sql})", None),
            (f"INSERT INTO {state.sql} BY NAME SELECT * FROM {added.sql}", None),
            (f"DELETE FROM {blocks.sql} WHERE record_key IN (SELECT record_key FROM {changes.sql})", None),
            (f"INSERT INTO {blocks.sql} BY NAME SELECT * FROM {blocks_added.sql}", None),
        ]
        if reached is not None:  # the changed records and the two records of every pair scored again
            ends = " UNION ALL ".join(f"SELECT unnest([key_a, key_b]) FROM {t.sql}" for t in (removed, added))
            reach = Reach(f"SELECT record_key FROM {changes.sql} UNION ALL {ends}", reached)
    model_pairs["dropped_in_conflict"] = drop_weak_links_in_conflict(
        con, lookup, model_links, {c: quote_ident(c) for c in model.conflict_columns},
        {c: [MODEL_RULE_ORDER] for c in model.conflict_columns}, reach,
    )  # fmt: skip
    return model_pairs, updates


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


def _rule_pairs(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    placeholders: TableName,
    rule_pairs: TableName,
    params: dict,
) -> None:
    """`rule_pairs`: every pair each rule links, with the rule (by order), its score and weakness."""
    con.execute(f"{create_table(rule_pairs)} ({RULE_PAIRS_DDL})")
    for order, rule in enumerate(rules):
        con.execute(
            f"INSERT INTO {rule_pairs.sql} SELECT key_a, key_b, $rule_order, score, weak "
            f"FROM ({rule_sql(rule, lookup, placeholders)})",
            {**params, "rule_order": order},
        )


def _link_by_rules(con: duckdb.DuckDBPyConnection, rule_pairs: TableName, links: TableName) -> None:
    """`links`: every pair some rule links, with the first such rule (by order), its score and weakness."""
    con.execute(
        f"""
        {create_table(links)} AS
        SELECT key_a, key_b, min(rule_order) AS rule_order, arg_min(score, rule_order) AS score,
               arg_min(weak, rule_order) AS weak
        FROM {rule_pairs.sql}
        GROUP BY key_a, key_b
        """
    )


def _labelled_links_sql(
    rules: Sequence[MatchRule],
    links: TableName,
    model_links: TableName,
    model: ScoringModel | None,
    only: TableName | None = None,
) -> str:
    """Rule links and model links as one relation: each pair with its rule's name (or
    `match_model`), its score and, from the model, probability, weight and field weights;
    with `only` (record_key), the links of those records alone."""
    rule_links, scored_links = links.sql, model_links.sql
    if only is not None:
        rule_links, scored_links = (
            f"(SELECT * FROM {t} WHERE key_a IN (SELECT record_key FROM {only.sql}))"
            for t in (rule_links, scored_links)
        )
    names = (
        "CASE link.rule_order "
        + " ".join(f"WHEN {order} THEN {sql_string(rule.name)}" for order, rule in enumerate(rules))
        + " END"
        if rules
        else "NULL::VARCHAR"
    )
    if model is None:
        return f"SELECT link.key_a, link.key_b, {names} AS rule, round(link.score, 4) AS score FROM {rule_links} link"
    weights = [weight_column(c) for c in model.comparisons]
    scored = ", ".join(
        ["round(model.match_probability, 6) AS match_probability", "round(model.match_weight, 3) AS match_weight",
         *(f"round(model.{w}, 3) AS {w}" for w in weights)]
    )  # fmt: skip
    return f"""
        SELECT coalesce(link.key_a, model.key_a) AS key_a, coalesce(link.key_b, model.key_b) AS key_b,
               coalesce({names}, {sql_string(MODEL_RULE)}) AS rule,
               round(coalesce(link.score, model.match_probability), 4) AS score, {scored}
        FROM {rule_links} AS link FULL OUTER JOIN {scored_links} AS model USING (key_a, key_b)
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
