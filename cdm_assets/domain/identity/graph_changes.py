"""Following a batch: the identity graph's links updated from what the lookup changed.

A full build compares every candidate pair. When the lookup changed a few
records since the build the graph last followed (`lookup_changes`), and the
rules and the match model are the same, only the pairs that change can be
worked on, and the result equals a full build's:

- A hard rule's pairs lie within a block (records sharing the rule's exact
  keys), and whether a pair links depends on that block alone: its size, its
  names, its birth dates. So the blocks holding a changed record, old version
  or new, are rebuilt whole; so are the blocks of records holding a value that
  just crossed `max_records_per_key`, alone (`shared_alone_keys`) or as a
  placeholder of a `must_not_differ` key.
- The match model's weight of a pair depends on its two records alone (the
  value frequencies are part of the model), and a pair is compared when some
  blocking rule's block holds both records and is not over the cap. So the
  pairs scored again are those of a new or changed record, those of a block
  that has just come under the cap, and the links in a block that has just
  gone over it; each with its first blocking rule found anew.

What stays whole-graph work on the links (the cannot-link check of their
components, the steward's overrides) is done by the graph build as always.

The state a build leaves for the next (`identity_state.<graph>_...`): every
rule's pairs before they are merged (`rule_pairs`), the model's links before
the cannot-link check (`model_links`), the placeholders (`placeholders`), and
which lookup build and settings the graph follows (`build`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.lookup_changes import STATE_SCHEMA, LookupBuild
from cdm_assets.domain.identity.match_keys import key_column
from cdm_assets.domain.identity.match_model.scoring import (
    ScoringModel,
    blocks_of_rule,
    build_model_links,
    model_candidates_sql,
    record_blocks_sql,
)
from cdm_assets.domain.identity.rule_sql import rule_blocks_sql, rule_sql, shared_alone_keys
from cdm_assets.domain.plan import MatchRule
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.vocabulary import match_key
from cdm_assets.domain.warehouse import staged_tables, table_exists

RULE_PAIRS_DDL = "key_a BIGINT, key_b BIGINT, rule_order INTEGER, score DOUBLE, weak BOOLEAN"


@dataclass(frozen=True)
class GraphState:
    """The tables a graph build leaves for the next one to follow on from."""

    rule_pairs: TableName
    model_links: TableName
    placeholders: TableName
    build: TableName

    @classmethod
    def of(cls, graph: TableName) -> GraphState:
        return cls(*(TableName(STATE_SCHEMA, f"{graph.name}_{part}") for part in cls.__dataclass_fields__))

    @property
    def tables(self) -> tuple[TableName, ...]:
        return (self.rule_pairs, self.model_links, self.placeholders, self.build)


def graph_fingerprint(rules: Sequence[MatchRule], max_records: int, model: ScoringModel | None) -> str:
    """What the links depend on besides the lookup: the rules, the cap and the whole match model."""
    return hashlib.sha256(repr((list(rules), max_records, model)).encode()).hexdigest()[:16]


def follows_on(
    con: duckdb.DuckDBPyConnection, state: GraphState, lookup_build: LookupBuild | None, fingerprint: str
) -> bool:
    """Whether the graph can follow `lookup_build` by its changes: the lookup build knows its
    changes, follows the build the graph was made from, and the settings are the same."""
    if lookup_build is None or not lookup_build.complete or not all(table_exists(con, t) for t in state.tables):
        return False
    built_from = con.execute(f"SELECT lookup_build_id, fingerprint FROM {state.build.sql}").fetchall()
    return built_from == [(lookup_build.previous_build_id, fingerprint)]


def write_build(con: duckdb.DuckDBPyConnection, table: TableName, lookup_build: LookupBuild | None, fingerprint: str):
    con.execute(
        f"{create_table(table)} AS SELECT $lookup::VARCHAR AS lookup_build_id, $fingerprint AS fingerprint",
        {"lookup": lookup_build.build_id if lookup_build else None, "fingerprint": fingerprint},
    )


def update_rule_pairs(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    changes: TableName,
    placeholders_before: TableName,
    placeholders: TableName,
    rule_pairs: TableName,
    params: dict,
) -> int:
    """Rebuild, in `rule_pairs` (the previous build's pairs), the blocks of every rule that the
    changes touch; returns the number of blocks rebuilt."""
    with staged_tables(con, TableName(SCRATCH, "graph_changes_touched_rule_blocks")) as (touched,):
        _list_touched_rule_blocks(con, rules, lookup, changes, placeholders_before, placeholders, touched, params)
        _rebuild_rule_blocks(con, rules, lookup, changes, placeholders, rule_pairs, touched, params)
        return con.execute(f"SELECT count(*) FROM (SELECT DISTINCT * FROM {touched.sql})").fetchall()[0][0]


def _list_touched_rule_blocks(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    changes: TableName,
    placeholders_before: TableName,
    placeholders: TableName,
    touched: TableName,
    params: dict,
) -> None:
    """`touched` (rule_order, block): per rule, the blocks a changed record was or is in, and
    those of records holding a value that crossed the cap alone or as a placeholder."""
    con.execute(f"{create_table(touched)} (rule_order INTEGER, block UBIGINT)")
    changed_placeholders = (
        f"(SELECT * FROM {placeholders.sql} EXCEPT SELECT * FROM {placeholders_before.sql}) UNION "
        f"(SELECT * FROM {placeholders_before.sql} EXCEPT SELECT * FROM {placeholders.sql})"
    )
    for order, rule in enumerate(rules):
        # a block may be listed more than once: it is rebuilt once all the same
        blocks = [(f"SELECT block FROM ({rule_blocks_sql(rule, changes)})", {})]
        for key in shared_alone_keys(rule):
            blocks.append((_crossing_holders_sql(rule, key, lookup, changes), params))
        for key in rule.must_not_differ:
            if match_key(key).personal:
                column = quote_ident(key_column(key))
                blocks.append((
                    f"SELECT block FROM ({rule_blocks_sql(rule, lookup, ('record_key', key_column(key)))}) "
                    f"WHERE {column} IN (SELECT value FROM ({changed_placeholders}) "
                    f"WHERE key_column = {sql_string(key_column(key))})",
                    {},
                ))  # fmt: skip
        for select, select_params in blocks:
            con.execute(
                f"INSERT INTO {touched.sql} SELECT $order, block FROM ({select})", {**select_params, "order": order}
            )


def _rebuild_rule_blocks(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    changes: TableName,
    placeholders: TableName,
    rule_pairs: TableName,
    touched: TableName,
    params: dict,
) -> None:
    """Delete from `rule_pairs` the pairs of changed records and of the `touched` blocks, and
    form the touched blocks' pairs anew, each block judged on all its records."""
    con.execute(
        f"""
        DELETE FROM {rule_pairs.sql} AS pairs
        WHERE pairs.key_a IN (SELECT record_key FROM {changes.sql})
           OR pairs.key_b IN (SELECT record_key FROM {changes.sql})
        """
    )
    for order, rule in enumerate(rules):
        in_touched = f"SELECT block FROM {touched.sql} WHERE rule_order = {order}"
        con.execute(
            f"""
            DELETE FROM {rule_pairs.sql}
            WHERE rule_order = $order
              AND key_a IN (SELECT record_key FROM ({rule_blocks_sql(rule, lookup)}) WHERE block IN ({in_touched}))
            """,
            {"order": order},
        )
        con.execute(
            f"INSERT INTO {rule_pairs.sql} SELECT key_a, key_b, $order, score, weak "
            f"FROM ({rule_sql(rule, lookup, placeholders, only_blocks=in_touched)})",
            {**params, "order": order},
        )


def _crossing_holders_sql(rule: MatchRule, key: str, lookup: TableName, changes: TableName) -> str:
    """SELECT block: the rule's blocks of the records holding a value of `key` that the changes
    took over `$max_records` holders or back under it (a value shared alone by too many links nothing)."""
    column = quote_ident(key_column(key))
    columns = ("record_key", key_column(key))
    return f"""
        SELECT block FROM ({rule_blocks_sql(rule, lookup, columns)}) WHERE {column} IN (
            SELECT changed.{column} FROM (
                SELECT {column}, count(*) FILTER (side = 'new') AS arrived, count(*) FILTER (side = 'old') AS departed
                FROM ({rule_blocks_sql(rule, changes, ("side", key_column(key)))}) GROUP BY ALL
            ) AS changed
            JOIN (
                SELECT {column}, count(*) AS holders FROM ({rule_blocks_sql(rule, lookup, columns)}) GROUP BY ALL
            ) AS now USING ({column})
            WHERE (now.holders > $max_records) <> (now.holders - arrived + departed > $max_records)
        )
    """


def update_model_links(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    changes: TableName,
    model: ScoringModel,
    max_records: int,
    model_links: TableName,
    removed: TableName,
    added: TableName,
) -> dict[str, float]:
    """Update `model_links` (the previous build's model links) for the changes: the pairs that
    may link or unlink are scored again, each with its first blocking rule; the pairs taken
    out go to `removed` (key_a, key_b), the links put in to `added`, so the state can be
    updated the same way. Returns the counts of `build_model_links` for them."""
    scratch = ("record_blocks", "blocks", "pairs", "candidates", "blocks_opened", "blocks_closed")
    with staged_tables(con, *(TableName(SCRATCH, f"graph_changes_model_{part}") for part in scratch)) as tables:
        record_blocks, blocks, pairs, candidates, came_under, went_over = tables
        return _rescore_model_pairs(
            con, lookup, changes, model, max_records, model_links, record_blocks, blocks, pairs, candidates,
            added, came_under, went_over, removed,
        )  # fmt: skip


def _rescore_model_pairs(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    changes: TableName,
    model: ScoringModel,
    max_records: int,
    model_links: TableName,
    record_blocks: TableName,
    blocks: TableName,
    pairs: TableName,
    candidates: TableName,
    scored: TableName,
    came_under: TableName,
    went_over: TableName,
    removed: TableName,
) -> dict[str, float]:
    """`update_model_links` in the scratch tables it is given (dropped by the caller)."""
    params = {"max_records": max_records}
    # every record's block under every blocking rule, hashed once for the steps below
    con.execute(f"{create_table(record_blocks)} AS {record_blocks_sql(lookup, model)}")
    _changed_model_blocks(con, changes, model, record_blocks, blocks)
    eligible = "BETWEEN 2 AND $max_records"
    for table, condition in (
        (came_under, f"members {eligible} AND NOT (members_before {eligible})"),
        (went_over, f"members_before {eligible} AND NOT (members {eligible})"),
    ):
        con.execute(f"{create_table(table)} AS SELECT blocking_rule, block FROM {blocks.sql} WHERE {condition}", params)
    went_over_members = " UNION ".join(
        f"SELECT record_key FROM ({blocks_of_rule(record_blocks, index)}) "
        f"WHERE block IN (SELECT block FROM {went_over.sql} WHERE blocking_rule = {index})"
        for index in range(len(model.blocking))
    )
    changed_keys = f"SELECT record_key FROM {changes.sql}"
    arrived_keys = f"SELECT record_key FROM {changes.sql} WHERE side = 'new'"
    con.execute(
        f"""
        {create_table(pairs)} AS
        SELECT key_a, key_b FROM ({model_candidates_sql(lookup, model, blocks, record_blocks)})
        WHERE key_a IN ({arrived_keys}) OR key_b IN ({arrived_keys})
        UNION
        SELECT key_a, key_b FROM ({model_candidates_sql(lookup, model, came_under, record_blocks)})
        UNION
        SELECT key_a, key_b FROM {model_links.sql}
        WHERE key_a NOT IN ({changed_keys}) AND key_b NOT IN ({changed_keys})
          AND (key_a IN ({went_over_members}) OR key_b IN ({went_over_members}))
        """,
        params,
    )
    _first_blocking_rules(con, record_blocks, model, pairs, candidates, params)
    counts = build_model_links(con, lookup, model, max_records, scored, candidates=candidates)
    con.execute(
        f"""
        {create_table(removed)} AS
        SELECT key_a, key_b FROM {model_links.sql} AS links
        WHERE links.key_a IN ({changed_keys}) OR links.key_b IN ({changed_keys})
           OR (links.key_a, links.key_b) IN (SELECT (key_a, key_b) FROM {pairs.sql})
        """
    )
    con.execute(f"DELETE FROM {model_links.sql} WHERE (key_a, key_b) IN (SELECT (key_a, key_b) FROM {removed.sql})")
    con.execute(f"INSERT INTO {model_links.sql} BY NAME SELECT * FROM {scored.sql}")
    return counts


def _changed_model_blocks(
    con: duckdb.DuckDBPyConnection,
    changes: TableName,
    model: ScoringModel,
    record_blocks: TableName,
    blocks: TableName,
) -> None:
    """`blocks` (blocking_rule, block, members, members_before): every block of every blocking
    rule that a changed record was or is in, with its size now and before the changes."""
    con.execute(
        f"""
        {create_table(blocks)} AS
        WITH changed AS ({" UNION ALL ".join(
            f"SELECT {index}::SMALLINT AS blocking_rule, block, count(*) FILTER (side = 'new') AS arrived, "
            f"count(*) FILTER (side = 'old') AS departed FROM ({rule.keyed_sql(changes, ('side',))}) GROUP BY ALL"
            for index, rule in enumerate(model.blocking)
        )}),
        now AS ({" UNION ALL ".join(
            f"SELECT {index}::SMALLINT AS blocking_rule, block, count(*) AS members "
            f"FROM ({blocks_of_rule(record_blocks, index)}) "
            f"WHERE block IN (SELECT block FROM changed WHERE blocking_rule = {index}) GROUP BY ALL"
            for index in range(len(model.blocking))
        )})
        SELECT blocking_rule, block, coalesce(now.members, 0) AS members,
               coalesce(now.members, 0) - arrived + departed AS members_before
        FROM changed LEFT JOIN now USING (blocking_rule, block)
        """
    )  # fmt: skip


def _first_blocking_rules(
    con: duckdb.DuckDBPyConnection,
    record_blocks: TableName,
    model: ScoringModel,
    pairs: TableName,
    candidates: TableName,
    params: dict,
) -> None:
    """`candidates` (key_a, key_b, blocking_rule): each of `pairs` once per blocking rule that
    compares it now (both records in one block of the rule, the block not over the cap)."""
    ends = f"SELECT key_a AS record_key FROM {pairs.sql} UNION SELECT key_b FROM {pairs.sql}"
    selects = []
    for index in range(len(model.blocking)):
        selects.append(
            f"""
            SELECT pair.key_a, pair.key_b, {index}::SMALLINT AS blocking_rule
            FROM {pairs.sql} AS pair
            JOIN ends_{index} a ON a.record_key = pair.key_a
            JOIN ends_{index} b ON b.record_key = pair.key_b AND a.block = b.block
            WHERE a.block IN (
                SELECT block FROM ({blocks_of_rule(record_blocks, index)})
                WHERE block IN (SELECT block FROM ends_{index}) GROUP BY block HAVING count(*) BETWEEN 2 AND $max_records
            )
            """
        )
    ctes = ", ".join(
        f"ends_{index} AS MATERIALIZED (SELECT * FROM ({blocks_of_rule(record_blocks, index)}) "
        f"WHERE record_key IN ({ends}))"
        for index in range(len(model.blocking))
    )
    con.execute(f"{create_table(candidates)} AS WITH {ctes} {' UNION ALL '.join(selects)}", params)
