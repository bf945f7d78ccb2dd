"""Match rules: which pairs of customer records are the same person, and why.

A rule blocks on `exact` keys (records sharing every key value are compared),
keeps the pairs whose `similar` names reach a Jaro-Winkler threshold (a
nickname of the same name counts as identical), and drops pairs that hold two
different values for a `must_not_differ` key. Key values shared by more than
`max_records_per_key` records link nothing: placeholders such as
`test@test.com` or a shop's own phone number must not chain strangers into
one customer.

Each rule renders to one SQL statement over `identity.source_lookup`; the
identity graph is the union of all rules, one row per linked pair, labelled
with the first rule (in configured order) that linked it.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from cdm_assets.config.model import MatchRule
from cdm_assets.domain.identity.entity_tables import CUSTOMER_TABLES, EntityTables
from cdm_assets.domain.warehouse import TableName, quote_ident, staged_tables, swap_in

SOURCE_LOOKUP = CUSTOMER_TABLES.lookup
IDENTITY_GRAPH = CUSTOMER_TABLES.graph

# Match key → column of identity.source_lookup.
# How alike the first names of everybody sharing a key must be for the key to
# count as one person's own (so that a record without a name may use it).
PRIVATE_NAME_SIMILARITY = 0.9

KEY_COLUMNS = {
    "email": "email_key",
    "phone": "phone_key",
    "first_name": "first_name_key",
    "first_name_root": "first_name_root",
    "last_name": "last_name_key",
    "last_name_core": "last_name_core",
    "birth_date": "birth_date",
    "postcode": "postcode_key",
    "address": "address_key",
}

# The defaults are tuned so that a shared household email, phone or address
# never links on its own: a link also needs the same (or a similar) first
# name and no conflicting birth date. Twins share everything but the first
# name, so first-name thresholds stay high.
DEFAULT_RULES: tuple[MatchRule, ...] = (
    MatchRule(
        name="email_and_first_name",
        exact=["email"],
        similar={"first_name": 0.9},
        must_not_differ=["birth_date", "phone"],
    ),
    MatchRule(
        name="phone_and_first_name",
        exact=["phone"],
        similar={"first_name": 0.9, "last_name": 0.8},
        must_not_differ=["birth_date"],
    ),
    MatchRule(
        name="name_and_birth_date",
        exact=["last_name_core", "birth_date"],
        similar={"first_name": 0.9},
        must_not_differ=["phone", "email"],
    ),
    MatchRule(
        name="first_name_birth_date_similar_last_name",
        exact=["first_name_root", "birth_date"],
        similar={"last_name": 0.9},
        must_not_differ=["phone"],
    ),
    MatchRule(
        name="birth_date_and_address",
        exact=["birth_date", "address"],
        similar={"first_name": 0.97, "last_name": 0.85},
        must_not_differ=["phone"],
    ),
    MatchRule(
        name="birth_date_and_postcode",
        exact=["birth_date", "postcode"],
        similar={"first_name": 0.97, "last_name": 0.9},
        must_not_differ=["phone"],
    ),
    MatchRule(
        name="name_and_address",
        exact=["address", "last_name_core"],
        similar={"first_name": 0.9},
        must_not_differ=["birth_date", "phone"],
    ),
)


def default_rules(identifier_names: Sequence[str]) -> list[MatchRule]:
    """Shared source identifiers first (strongest evidence), then the defaults."""
    by_identifier = [MatchRule(name=f"same_{name}", exact=[f"identifier:{name}"]) for name in identifier_names]
    return [*by_identifier, *DEFAULT_RULES]


def key_column(key: str) -> str:
    if key.startswith("identifier:"):
        return "id_" + key.split(":", 1)[1]
    return KEY_COLUMNS[key]


# The lookup columns a rule needs besides its own keys.
_COMPARED = ("record_key", "first_name_key", "first_name_root", "last_name_key", "last_name_core", "birth_date")


def rule_sql(rule: MatchRule, lookup: TableName = SOURCE_LOOKUP) -> str:
    """One rule as a SELECT of (key_a, key_b, score); `$max_records` is max_records_per_key.

    Blocks are found with GROUP BY, not window functions: most key values
    belong to one record and are dropped before any pair is formed.
    """
    exact = [quote_ident(key_column(k)) for k in rule.exact]
    block = ", ".join(exact)
    columns = list(dict.fromkeys([*(quote_ident(c) for c in _COMPARED), *exact,
                                  *(quote_ident(key_column(k)) for k in rule.must_not_differ)]))
    not_null = " AND ".join(f"{c} IS NOT NULL" for c in exact)
    # A value shared by too many records is a placeholder or a shared inbox:
    # each key counts on its own, not just the combination.
    shared_alone = "".join(
        f" AND {c} NOT IN (SELECT {c} FROM keyed GROUP BY {c} HAVING count(*) > $max_records)"
        for c in exact
    ) if len(exact) > 1 else ""
    join = " AND ".join(f"a.{c} = b.{c}" for c in exact)
    similarities = [_similarity_sql(key) for key in rule.similar]
    conditions = [
        # A missing name cannot contradict, but only on a private key: one that
        # every record sharing it agrees on (one first name, one birth date).
        f"({sim} >= {float(threshold)!r} OR (a._private AND {_missing_sql(key)}))"
        for key, sim, threshold in zip(rule.similar, similarities, rule.similar.values())
    ]
    for key in rule.must_not_differ:
        column = quote_ident(key_column(key))
        conditions.append(f"(a.{column} IS NULL OR b.{column} IS NULL OR a.{column} = b.{column})")
    score = f"least({', '.join(similarities)})" if similarities else "NULL::DOUBLE"
    where = " AND ".join(["a.record_key < b.record_key", *conditions])
    return f"""
        WITH keyed AS (
            SELECT {", ".join(columns)} FROM {lookup.sql} WHERE {not_null}
        ),
        blocks AS (
            SELECT {block}, count(DISTINCT birth_date) AS _birth_dates, mode(first_name_key) AS _usual_first_name
            FROM keyed
            WHERE true{shared_alone}
            GROUP BY {block}
            HAVING count(*) BETWEEN 2 AND $max_records
        ),
        members AS (
            SELECT keyed.*, blocks._birth_dates, blocks._usual_first_name
            FROM keyed JOIN blocks USING ({block})
        ),
        private_blocks AS (
            -- private: everybody sharing the key has one birth date and (typos
            -- aside) one first name
            SELECT {block},
                   bool_and(_birth_dates <= 1 AND (first_name_key IS NULL OR
                       jaro_winkler_similarity(first_name_key, _usual_first_name) >= {PRIVATE_NAME_SIMILARITY})) AS _private
            FROM members GROUP BY {block}
        ),
        eligible AS (SELECT * FROM members JOIN private_blocks USING ({block}))
        SELECT a.record_key AS key_a, b.record_key AS key_b, {score} AS score
        FROM eligible a JOIN eligible b ON {join}
        WHERE {where}
    """


def _similarity_sql(key: str) -> str:
    if key == "first_name":
        # A nickname of the same root name is as good as the same name, and so
        # are first and last name written the other way round.
        return (
            "CASE WHEN a.first_name_root = b.first_name_root THEN 1.0 "
            "WHEN a.first_name_key = b.last_name_key AND a.last_name_key = b.first_name_key THEN 1.0 "
            "ELSE jaro_winkler_similarity(a.first_name_key, b.first_name_key) END"
        )
    return (
        "CASE WHEN a.last_name_core = b.last_name_core THEN 1.0 "
        "WHEN a.first_name_key = b.last_name_key AND a.last_name_key = b.first_name_key THEN 1.0 "
        "ELSE jaro_winkler_similarity(a.last_name_key, b.last_name_key) END"
    )


def _missing_sql(key: str) -> str:
    column = "first_name_key" if key == "first_name" else "last_name_key"
    return f"(a.{column} IS NULL OR b.{column} IS NULL)"


def build_identity_graph(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    max_records_per_key: int,
    tables: EntityTables = CUSTOMER_TABLES,
) -> int:
    """Write `identity.identity_graph` (or another entity's graph): one row per linked pair, with its rule."""
    lookup, graph = tables.lookup, tables.graph
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    with staged_tables(con, TableName(graph.schema, f"{graph.name}_candidates"), graph) as (candidates, staging):
        con.execute(
            f"CREATE TABLE {candidates.sql} (key_a BIGINT, key_b BIGINT, rule VARCHAR, rule_order INTEGER, score DOUBLE)"
        )
        for order, rule in enumerate(rules):
            con.execute(
                f"INSERT INTO {candidates.sql} SELECT key_a, key_b, $rule, $rule_order, score FROM ({rule_sql(rule, lookup)})",
                {"rule": rule.name, "rule_order": order, "max_records": max_records_per_key},
            )
        con.execute(
            f"""
            CREATE TABLE {staging.sql} AS
            SELECT a.source AS source_a, a.source_record_id AS record_id_a,
                   b.source AS source_b, b.source_record_id AS record_id_b,
                   link.rule, round(link.score, 4) AS score,
                   link.key_a, link.key_b
            FROM (
                SELECT key_a, key_b, arg_min(rule, rule_order) AS rule, arg_min(score, rule_order) AS score
                FROM {candidates.sql}
                GROUP BY key_a, key_b
            ) AS link
            JOIN {lookup.sql} a ON a.record_key = link.key_a
            JOIN {lookup.sql} b ON b.record_key = link.key_b
            ORDER BY link.key_a, link.key_b
            """
        )
        swap_in(con, [(graph, staging)])
    return con.execute(f"SELECT count(*) FROM {graph.sql}").fetchone()[0]


def links_per_rule(con: duckdb.DuckDBPyConnection, graph: TableName = IDENTITY_GRAPH) -> dict[str, int]:
    return dict(con.execute(f"SELECT rule, count(*) FROM {graph.sql} GROUP BY rule ORDER BY 2 DESC").fetchall())
