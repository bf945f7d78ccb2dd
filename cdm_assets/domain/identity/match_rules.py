"""Match rules: which pairs of customer records are the same person, and why.

A rule blocks on `exact` keys (records sharing every key value are compared),
keeps the pairs whose `similar` names reach a Jaro-Winkler threshold (a
nickname of the same name counts as identical) and whose `max_edits` keys are
that few typos apart, and drops pairs that hold two different values for a
`must_not_differ` key. Key values shared by more than
`max_records_per_key` records link nothing: placeholders such as
`test@test.com` or a shop's own phone number must not chain strangers into
one customer.

Each rule renders to one SQL statement over `identity.source_lookup`; the
identity graph is the union of all rules, one row per linked pair, labelled
with the first rule (in configured order) that linked it.
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
from cdm_assets.domain.plan import EntityTables, MatchRule
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.vocabulary import match_key
from cdm_assets.domain.warehouse import create_table_as, row_count, staged_tables, swap_in

MODEL_RULE = "match_model"  # the rule label of the links the match model makes

# How alike the first names of everybody sharing a key must be for the key to
# count as one person's own (so that a record without a name may use it).
PRIVATE_NAME_SIMILARITY = 0.9


def is_placeholder(value: str, key: str, placeholders: TableName) -> str:
    """Whether `value` (an expression of the key's lookup column) is listed in `placeholders`."""
    return f"{value} IN (SELECT value FROM {placeholders.sql} WHERE key_column = {sql_string(key_column(key))})"


def without_placeholders(key: str, placeholders: TableName) -> str:
    """The key's lookup column, NULL where its value is listed in `placeholders`."""
    column = quote_ident(key_column(key))
    return f"CASE WHEN {is_placeholder(column, key, placeholders)} THEN NULL ELSE {column} END"


_BLOCK = "_block"  # the column of a rule's keyed records holding the hash of their exact keys
# The lookup columns a rule that compares names needs besides its own keys.
_COMPARED = ("record_key", "first_name_key", "first_name_root", "last_name_key", "last_name_core", "birth_date")


def rule_sql(rule: MatchRule, lookup: TableName, placeholders: TableName | None = None) -> str:
    """One rule as a SELECT of (key_a, key_b, score, weak); `$max_records` is max_records_per_key.

    Blocks are found with GROUP BY, not window functions: most key values
    belong to one record and are dropped before any pair is formed.
    `placeholders` (key_column, value) lists the placeholder values of
    placeholder-prone keys; they cannot contradict under `must_not_differ`.
    A link is `weak` when it rests on a fuzzy or a missing name.
    """
    exact = [quote_ident(key_column(k)) for k in rule.exact]
    near = {quote_ident(key_column(k)): edits for k, edits in rule.max_edits.items()}
    compared = [quote_ident(c) for c in _COMPARED] if rule.similar else ["record_key"]
    selected = dict.fromkeys([*compared, *exact, *near])
    selected.update(dict.fromkeys(quote_ident(key_column(key)) for key in rule.must_not_differ))
    not_null = " AND ".join(f"{c} IS NOT NULL" for c in [*exact, *near])
    # Blocks are grouped and joined on one hash of the exact keys, far cheaper
    # than the strings themselves; the pairs still compare the keys, so a hash
    # collision can only merge two blocks' statistics, never link two records.
    keyed = f"SELECT {', '.join(selected)}, hash({', '.join(exact)}) AS {_BLOCK} FROM {lookup.sql} WHERE {not_null}"
    # A value shared by too many records is a placeholder or a shared inbox:
    # each such key counts on its own, not just the combination. Names, dates
    # and postcodes are shared by many people by nature.
    shared_alone = (
        "".join(
            f" AND {quote_ident(key_column(k))} NOT IN (SELECT {quote_ident(key_column(k))} FROM keyed "
            f"GROUP BY {quote_ident(key_column(k))} HAVING count(*) > $max_records)"
            for k in rule.exact
            if match_key(k).personal
        )
        if len(exact) > 1
        else ""
    )
    join = " AND ".join(f"a.{c} = b.{c}" for c in [_BLOCK, *exact])
    pair_conditions = ["a.record_key < b.record_key"]
    for key in rule.must_not_differ:
        column = quote_ident(key_column(key))
        # checked only for the few pairs whose values differ
        placeholder = (
            f" OR {is_placeholder(f'a.{column}', key, placeholders)} OR {is_placeholder(f'b.{column}', key, placeholders)}"
            if placeholders is not None and match_key(key).personal
            else ""
        )
        pair_conditions.append(f"(a.{column} IS NULL OR b.{column} IS NULL OR a.{column} = b.{column}{placeholder})")
    for key, edits in rule.max_edits.items():
        a, b = (f"{side}.{quote_ident(key_column(key))}::VARCHAR" for side in "ab")
        within = f"damerau_levenshtein({a}, {b}) <= {int(edits)}"
        # CASE: the sequence test (regular expressions) only for the few pairs within reach
        pair_conditions.append(
            f"CASE WHEN {within} THEN NOT {_in_sequence(a, b)} ELSE false END" if match_key(key).numbered else within
        )
    if not rule.similar:
        return _key_pairs_sql(keyed, shared_alone, join, pair_conditions)
    return _name_pairs_sql(rule, keyed, shared_alone, join, pair_conditions)


def _key_pairs_sql(keyed: str, shared_alone: str, join: str, pair_conditions: list[str]) -> str:
    """A rule without names to compare: every pair of a block that meets the conditions, never weak."""
    return f"""
        WITH keyed AS NOT MATERIALIZED ({keyed}),
        blocks AS (
            SELECT {_BLOCK} FROM keyed
            WHERE true{shared_alone}
            GROUP BY {_BLOCK}
            HAVING count(*) BETWEEN 2 AND $max_records
        ),
        eligible AS MATERIALIZED (SELECT keyed.* FROM keyed JOIN blocks USING ({_BLOCK}))
        SELECT a.record_key AS key_a, b.record_key AS key_b, NULL::DOUBLE AS score, false AS weak
        FROM eligible a JOIN eligible b ON {join}
        WHERE {" AND ".join(pair_conditions)}
    """


def _name_pairs_sql(rule: MatchRule, keyed: str, shared_alone: str, join: str, pair_conditions: list[str]) -> str:
    """A rule with `similar` names: the pairs of a block whose names are alike enough (or
    missing on a private key), scored by the weaker similarity."""
    similarities = [
        f"{_similarity_sql(key)} AS _sim{i}, {_missing_sql(key)} AS _missing{i}" for i, key in enumerate(rule.similar)
    ]
    # A missing name cannot contradict, but only on a private key: one that
    # every record sharing it agrees on (one first name, last name and birth date).
    conditions = [
        f"(_sim{i} >= {float(t)!r} OR ({'_private_last_name' if key == 'last_name' else '_private'} AND _missing{i}))"
        for i, (key, t) in enumerate(rule.similar.items())
    ]
    sims = [f"_sim{i}" for i in range(len(rule.similar))]
    weak = f"NOT coalesce({' AND '.join(f'{s} = 1.0' for s in sims)}, false)"
    return f"""
        WITH keyed AS NOT MATERIALIZED ({keyed}),
        blocks AS (
            -- min = max: at most one birth date (cheaper than count(DISTINCT))
            SELECT {_BLOCK}, min(birth_date) IS NOT DISTINCT FROM max(birth_date) AS _one_birth_date,
                   min(first_name_key) AS _usual_first_name, min(last_name_core) AS _usual_last_name
            FROM keyed
            WHERE true{shared_alone}
            GROUP BY {_BLOCK}
            HAVING count(*) BETWEEN 2 AND $max_records
        ),
        members AS (
            -- the full name only for the records of a block, not every keyed record
            SELECT keyed.*, blocks._one_birth_date, blocks._usual_first_name, blocks._usual_last_name,
                   first_name_key || last_name_key AS _full_name_key
            FROM keyed JOIN blocks USING ({_BLOCK})
        ),
        private_blocks AS (
            -- private: everybody sharing the key has one birth date and (typos
            -- aside) one first name and one last name; a missing last name
            -- only needs the one last name. CASE: Jaro-Winkler only where a
            -- name is not the block's usual one.
            SELECT {_BLOCK},
                   bool_and(_one_birth_date AND CASE WHEN first_name_key IS NULL OR first_name_key = _usual_first_name
                       THEN true ELSE jaro_winkler_similarity(first_name_key, _usual_first_name)
                       >= {PRIVATE_NAME_SIMILARITY} END)
                   AND bool_and(_same_last_name) AS _private,
                   bool_and(_same_last_name) AS _private_last_name
            FROM (
                SELECT *, CASE WHEN last_name_core IS NULL OR last_name_core = _usual_last_name THEN true
                       ELSE jaro_winkler_similarity(last_name_core, _usual_last_name) >= {PRIVATE_NAME_SIMILARITY}
                       END AS _same_last_name
                FROM members
            )
            GROUP BY {_BLOCK}
        ),
        eligible AS (SELECT * FROM members JOIN private_blocks USING ({_BLOCK})),
        pairs AS MATERIALIZED (
            SELECT a.record_key AS key_a, b.record_key AS key_b, a._private, a._private_last_name,
                   {", ".join(similarities)}
            FROM eligible a JOIN eligible b ON {join}
            WHERE {" AND ".join(pair_conditions)}
        )
        SELECT key_a, key_b, least({", ".join(sims)}) AS score, {weak} AS weak
        FROM pairs
        WHERE {" AND ".join(conditions)}
    """


def _in_sequence(a: str, b: str) -> str:
    """Whether two values look handed out in sequence rather than typed wrong: the
    same but for the last character, or for trailing numbers at most 5 apart (a
    family's loyalty cards L0000019 and L0000020). Two swapped last digits
    (…65 and …56, 9 or more apart) remain a typo."""
    prefix, number = "'^(.*?)[0-9]+$'", "'[0-9]+$'"
    return (
        f"coalesce(left({a}, -1) = left({b}, -1) OR (regexp_extract({a}, {prefix}, 1) = regexp_extract({b}, {prefix}, 1) "
        f"AND abs(try_cast(regexp_extract({a}, {number}) AS BIGINT) - try_cast(regexp_extract({b}, {number}) AS BIGINT)) <= 5), "
        "false)"
    )


def _similarity_sql(key: str) -> str:
    """How alike two records' first (or last) names are, 0..1.

    Equal nickname roots (or last names without particles) count as equal;
    so do names whose first and last parts together read the same ("Hans
    Dieter | Müller" and "Hans | Dieter Müller") and names written the other
    way round. Otherwise the Jaro-Winkler similarity, or for names that look
    swapped (crosswise initials agree) the better of it and the weaker of the
    two crosswise similarities, so a swap with a typo still counts.
    """
    same_root = (
        "a.first_name_root = b.first_name_root" if key == "first_name" else "a.last_name_core = b.last_name_core"
    )
    column = "first_name_key" if key == "first_name" else "last_name_key"
    straight = f"jaro_winkler_similarity(a.{column}, b.{column})"
    return (
        f"CASE WHEN {same_root} OR a._full_name_key = b._full_name_key THEN 1.0 "
        # one record swapped, the other with a first name only
        "WHEN (b.last_name_key IS NULL AND a.last_name_key = b.first_name_key) "
        "OR (a.last_name_key IS NULL AND b.last_name_key = a.first_name_key) THEN 1.0 "
        "WHEN left(a.first_name_key, 1) = left(b.last_name_key, 1) "
        "AND left(a.last_name_key, 1) = left(b.first_name_key, 1) "
        f"THEN greatest({straight}, least(jaro_winkler_similarity(a.first_name_key, b.last_name_key), "
        "jaro_winkler_similarity(a.last_name_key, b.first_name_key))) "
        f"ELSE {straight} END"
    )


def _missing_sql(key: str) -> str:
    column = "first_name_key" if key == "first_name" else "last_name_key"
    return f"(a.{column} IS NULL OR b.{column} IS NULL)"


@dataclass(frozen=True)
class GraphBuild:
    """What a graph build did: its links, and for the match model how many candidate pairs
    it scored, how many reached the threshold, how many of those a cannot-link field held
    apart, and how many weak model links came out for a conflict in their group."""

    links: int
    model_pairs: dict[str, int] | None = None


def build_identity_graph(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    max_records_per_key: int,
    tables: EntityTables,
    model: ScoringModel | None = None,
) -> GraphBuild:
    """Write `identity.identity_graph` (or another entity's graph): one row per linked pair.

    A pair is linked by a hard rule (labelled with the first rule, in
    configured order, that links it) or by the match model (`match_model`)
    when its match probability reaches the model's threshold. Model links
    carry their probability, match weight and per-comparison weights. Weak
    rule links that would put two different values of a rule's
    `must_not_differ` key into one customer are left out (`cannot_link`).
    """
    lookup, graph = tables.lookup, tables.graph
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    work = [
        TableName(SCRATCH, f"{graph.name}_{part}") for part in ("placeholders", "candidates", "links", "model_links")
    ]
    with staged_tables(con, *work, graph) as (placeholders, candidates, links, model_links, staging):
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
        swap_in(con, [(graph, staging)])
    return GraphBuild(row_count(con, graph), model_pairs)


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
