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
components, the steward's overrides) is done by the graph build as always,
on the graph's rows held in memory without their records' sources; only the
rows that differ from the graph in the warehouse are written
(`graph_row_updates`). Without overrides, a row can differ only in a
component the changes reach, so only those components' rows are staged and
compared (`cannot_link.Reach`).

The state a build leaves for the next (`identity_state.<graph>_...`): every
rule's pairs before they are merged (`rule_pairs`), the model's links before
the cannot-link check (`model_links`), the placeholders (`placeholders`),
which lookup build and settings the graph follows (`build`), every
record's block under each of the model's blocking rules (`record_blocks`),
so that following hashes the blocks of the changed records only, and the
graph's own changes (`changes`: the key pairs whose row came, went or changed),
which the graph's table version follows on from, for the Customer IDs to follow.
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
    build_model_links,
    record_blocks_sql,
)
from cdm_assets.domain.identity.rule_sql import rule_blocks_sql, rule_sql, shared_alone_keys
from cdm_assets.domain.plan import MatchRule
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.vocabulary import match_key
from cdm_assets.domain.warehouse import staged_tables, table_columns, table_exists

RULE_PAIRS_DDL = "key_a BIGINT, key_b BIGINT, rule_order INTEGER, score DOUBLE, weak BOOLEAN"
RECORD_BLOCKS_DDL = "blocking_rule SMALLINT, record_key BIGINT, block UBIGINT"
# a pair's row `comes` (is in the graph now) and/or `goes` (was in it): both when it changed
GRAPH_CHANGES_DDL = "key_a BIGINT, key_b BIGINT, comes BOOLEAN, goes BOOLEAN"


@dataclass(frozen=True)
class GraphState:
    """The tables a graph build leaves for the next one to follow on from."""

    rule_pairs: TableName
    model_links: TableName
    placeholders: TableName
    build: TableName
    record_blocks: TableName
    changes: TableName

    @classmethod
    def of(cls, graph: TableName) -> GraphState:
        return cls(*(TableName(STATE_SCHEMA, f"{graph.name}_{part}") for part in cls.__dataclass_fields__))

    @property
    def tables(self) -> tuple[TableName, ...]:
        return (self.rule_pairs, self.model_links, self.placeholders, self.build, self.record_blocks, self.changes)


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


def write_build(
    con: duckdb.DuckDBPyConnection,
    table: TableName,
    lookup_build: LookupBuild | None,
    fingerprint: str,
    with_overrides: bool,
):
    """Record the lookup build and the settings the graph was built from, and whether the
    steward's overrides took part."""
    con.execute(
        f"{create_table(table)} AS SELECT $lookup::VARCHAR AS lookup_build_id, $fingerprint AS fingerprint, "
        "$overrides AS with_overrides",
        {"lookup": lookup_build.build_id if lookup_build else None, "fingerprint": fingerprint,
         "overrides": with_overrides},
    )  # fmt: skip


def nothing_to_follow(con: duckdb.DuckDBPyConnection, state: GraphState, lookup_build: LookupBuild) -> bool:
    """Whether following `lookup_build` leaves the graph as it is: the build changed no record,
    and no overrides took part in the graph's last build (none take part in this one).
    Call it where the graph follows on (`follows_on`)."""
    if (lookup_build.added, lookup_build.changed, lookup_build.removed) != (0, 0, 0):
        return False
    return built_without_overrides(con, state)


def built_without_overrides(con: duckdb.DuckDBPyConnection, state: GraphState) -> bool:
    """Whether the graph's last build is known to have had no steward's overrides."""
    if "with_overrides" not in {name for name, _ in table_columns(con, state.build)}:
        return False
    return con.execute(f"SELECT with_overrides FROM {state.build.sql}").fetchall() == [(False,)]


def update_rule_pairs(
    con: duckdb.DuckDBPyConnection,
    rules: Sequence[MatchRule],
    lookup: TableName,
    changes: TableName,
    placeholders_before: TableName,
    placeholders: TableName,
    rule_pairs: TableName,
    params: dict,
    members: TableName,
) -> int:
    """Rebuild, in `rule_pairs` (the previous build's pairs), the blocks of every rule that the
    changes touch; returns the number of blocks rebuilt. `members` (rule_order, record_key)
    gets the records in those blocks now: with the changed records, they hold every pair
    that came or went."""
    with staged_tables(con, TableName(SCRATCH, "graph_changes_touched_rule_blocks")) as (touched,):
        _list_touched_rule_blocks(con, rules, lookup, changes, placeholders_before, placeholders, touched, params)
        _rebuild_rule_blocks(con, rules, lookup, changes, placeholders, rule_pairs, touched, members, params)
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
    members: TableName,
    params: dict,
) -> None:
    """Delete from `rule_pairs` the pairs of changed records and of the `touched` blocks, and
    form the touched blocks' pairs anew, each block judged on all its records; `members`
    (rule_order, record_key) gets the records of the touched blocks."""
    con.execute(f"{create_table(members)} (rule_order INTEGER, record_key BIGINT)")
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
            f"INSERT INTO {members.sql} SELECT $order, record_key "
            f"FROM ({rule_blocks_sql(rule, lookup)}) WHERE block IN ({in_touched})",
            {"order": order},
        )
        con.execute(
            f"DELETE FROM {rule_pairs.sql} WHERE rule_order = $order "
            f"AND key_a IN (SELECT record_key FROM {members.sql} WHERE rule_order = $order)",
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
    blocks_kept: TableName,
    blocks_added: TableName,
) -> dict[str, float]:
    """Update `model_links` (the previous build's model links) for the changes: the pairs that
    may link or unlink are scored again, each with its first blocking rule; the pairs taken
    out go to `removed` (key_a, key_b), the links put in to `added`, so the state can be
    updated the same way. `blocks_kept` holds every record's blocks at the previous build;
    the blocks of the new and changed records go to `blocks_added`. Returns the counts of
    `build_model_links` for the pairs scored.

    Every record's blocks now are those kept, less the changed records', plus those added;
    they are never written out whole (at 1M persons, about 12M rows): each statement reads
    the kept blocks once, for the blocks or the records it needs."""
    scratch = ("blocks", "members", "came_under", "went_over", "pairs", "ends", "candidates")
    with staged_tables(con, *(TableName(SCRATCH, f"graph_changes_model_{part}") for part in scratch)) as tables:
        blocks, members, came_under, went_over, pairs, ends, candidates = tables
        con.execute(
            f"{create_table(blocks_added)} AS SELECT blocking_rule, record_key, block "
            f"FROM ({record_blocks_sql(changes, model, ('side',))}) WHERE side = 'new'"
        )
        params = {"max_records": max_records}
        blocks_now = _BlocksNow(blocks_kept, blocks_added, changes)
        _changed_model_blocks(con, changes, model, blocks_now, blocks, members, params)
        eligible = "BETWEEN 2 AND $max_records"
        for table, condition in (
            (came_under, f"members {eligible} AND NOT (members_before {eligible})"),
            (went_over, f"members_before {eligible} AND NOT (members {eligible})"),
        ):
            con.execute(
                f"{create_table(table)} AS SELECT blocking_rule, block FROM {blocks.sql} WHERE {condition}", params
            )
        changed_keys = f"SELECT record_key FROM {changes.sql}"
        arrived_keys = f"SELECT record_key FROM {changes.sql} WHERE side = 'new'"
        went_over_members = f"SELECT record_key FROM {members.sql} JOIN {went_over.sql} USING (blocking_rule, block)"
        con.execute(
            f"""
            {create_table(pairs)} AS
            {_pairs_in_blocks_sql(members, f"SELECT * FROM {blocks.sql} WHERE members {eligible}", arrived_keys)}
            UNION
            {_pairs_in_blocks_sql(members, f"SELECT * FROM {came_under.sql}")}
            UNION
            SELECT * FROM (
                WITH went_over_members AS MATERIALIZED ({went_over_members})
                SELECT key_a, key_b FROM {model_links.sql}
                WHERE key_a NOT IN ({changed_keys}) AND key_b NOT IN ({changed_keys})
                  AND (key_a IN (FROM went_over_members) OR key_b IN (FROM went_over_members))
            )
            """,
            params,
        )
        _first_blocking_rules(con, blocks_now, blocks, pairs, ends, candidates, params)
        counts = build_model_links(con, lookup, model, max_records, added, candidates=candidates)
        con.execute(
            f"""
            {create_table(removed)} AS
            SELECT key_a, key_b FROM {model_links.sql} AS links
            WHERE links.key_a IN ({changed_keys}) OR links.key_b IN ({changed_keys})
               OR (links.key_a, links.key_b) IN (SELECT (key_a, key_b) FROM {pairs.sql})
            """
        )
        con.execute(f"DELETE FROM {model_links.sql} WHERE (key_a, key_b) IN (SELECT (key_a, key_b) FROM {removed.sql})")
        con.execute(f"INSERT INTO {model_links.sql} BY NAME SELECT * FROM {added.sql}")
        return counts


@dataclass(frozen=True)
class _BlocksNow:
    """Every record's blocks now (blocking_rule, record_key, block): the `kept` ones of the
    previous build, less those of the records in `changes`, plus the `added` ones."""

    kept: TableName
    added: TableName
    changes: TableName

    def joined(self, to: str, using: str) -> str:
        """SELECT blocking_rule, record_key, block: the blocks now joined to `to` (a SELECT) on `using`."""
        return f"""
            SELECT kept.blocking_rule, kept.record_key, kept.block
            FROM {self.kept.sql} AS kept JOIN ({to}) AS wanted USING ({using})
            WHERE kept.record_key NOT IN (SELECT record_key FROM {self.changes.sql})
            UNION ALL
            SELECT added.blocking_rule, added.record_key, added.block
            FROM {self.added.sql} AS added JOIN ({to}) AS wanted USING ({using})
        """


def _pairs_in_blocks_sql(members: TableName, blocks: str, of: str | None = None) -> str:
    """SELECT key_a, key_b: the pairs of records sharing a block of `blocks` (a SELECT of
    blocking_rule, block), drawn from `members` (blocking_rule, record_key, block); with `of`
    (a SELECT of record_key), only the pairs of those records with the others, formed from
    their side only."""
    other = "a.record_key <> b.record_key" if of else "a.record_key < b.record_key"
    return f"""
        SELECT * FROM (
            WITH members AS MATERIALIZED (
                SELECT r.blocking_rule, r.record_key, r.block
                FROM {members.sql} r JOIN ({blocks}) b USING (blocking_rule, block)
            )
            SELECT least(a.record_key, b.record_key) AS key_a, greatest(a.record_key, b.record_key) AS key_b
            FROM members a JOIN members b ON a.blocking_rule = b.blocking_rule AND a.block = b.block AND {other}
            {f"WHERE a.record_key IN ({of})" if of else ""}
        )
    """


def _changed_model_blocks(
    con: duckdb.DuckDBPyConnection,
    changes: TableName,
    model: ScoringModel,
    blocks_now: _BlocksNow,
    blocks: TableName,
    members: TableName,
    params: dict,
) -> None:
    """`blocks` (blocking_rule, block, members, members_before): every block of every blocking
    rule that a changed record was or is in, with its size now and before the changes; and
    `members` (blocking_rule, record_key, block): the records in those of them that were or
    are open (2 to `$max_records` records), as they are now."""
    changed = " UNION ALL ".join(
        f"SELECT {index}::SMALLINT AS blocking_rule, block, count(*) FILTER (side = 'new') AS arrived, "
        f"count(*) FILTER (side = 'old') AS departed FROM ({rule.keyed_sql(changes, ('side',))}) GROUP BY ALL"
        for index, rule in enumerate(model.blocking)
    )
    con.execute(
        f"""
        {create_table(blocks)} AS
        WITH changed AS ({changed}),
        before AS (
            SELECT blocking_rule, block, count(*) AS members_before
            FROM {blocks_now.kept.sql} JOIN (SELECT blocking_rule, block FROM changed) USING (blocking_rule, block)
            GROUP BY ALL
        )
        SELECT blocking_rule, block, coalesce(before.members_before, 0) - departed + arrived AS members,
               coalesce(before.members_before, 0) AS members_before
        FROM changed LEFT JOIN before USING (blocking_rule, block)
        """
    )
    opened = f"SELECT blocking_rule, block FROM {blocks.sql} WHERE members BETWEEN 2 AND $max_records " \
        "OR members_before BETWEEN 2 AND $max_records"  # fmt: skip
    con.execute(f"{create_table(members)} AS {blocks_now.joined(opened, 'blocking_rule, block')}", params)


def _first_blocking_rules(
    con: duckdb.DuckDBPyConnection,
    blocks_now: _BlocksNow,
    changed_blocks: TableName,
    pairs: TableName,
    ends: TableName,
    candidates: TableName,
    params: dict,
) -> None:
    """`candidates` (key_a, key_b, blocking_rule): each of `pairs` once per blocking rule that
    compares it now (both records in one block of the rule, the block not over the cap).
    `ends` gets the blocks now of the pairs' records; a block's size now is that of
    `changed_blocks` when a changed record was or is in it, else its size kept."""
    keys = f"SELECT key_a AS record_key FROM {pairs.sql} UNION SELECT key_b FROM {pairs.sql}"
    con.execute(f"{create_table(ends)} AS {blocks_now.joined(keys, 'record_key')}")
    con.execute(
        f"""
        {create_table(candidates)} AS
        WITH held AS (SELECT DISTINCT blocking_rule, block FROM {ends.sql}),
        kept_sizes AS (
            SELECT blocking_rule, block, count(*) AS members
            FROM {blocks_now.kept.sql} JOIN held USING (blocking_rule, block)
            GROUP BY ALL
        ),
        open AS (
            SELECT held.blocking_rule, held.block
            FROM held
            LEFT JOIN {changed_blocks.sql} AS changed USING (blocking_rule, block)
            LEFT JOIN kept_sizes AS kept USING (blocking_rule, block)
            WHERE coalesce(changed.members, kept.members) BETWEEN 2 AND $max_records
        )
        SELECT pair.key_a, pair.key_b, a.blocking_rule
        FROM {pairs.sql} AS pair
        JOIN {ends.sql} a ON a.record_key = pair.key_a
        JOIN {ends.sql} b ON b.record_key = pair.key_b AND b.blocking_rule = a.blocking_rule AND b.block = a.block
        JOIN open ON open.blocking_rule = a.blocking_rule AND open.block = a.block
        """,
        params,
    )


RECORD_COLUMNS = ("source_a", "record_id_a", "source_b", "record_id_b")  # the graph's columns naming its records


def stage_graph_rows(con: duckdb.DuckDBPyConnection, labelled: str, graph: TableName, rows: TableName) -> bool:
    """Write `rows`: the links of `labelled` (a SELECT of the labelled links) with the graph's
    columns, the records' sources left NULL. False, and nothing written, when the graph in the
    warehouse is not there or has other columns (its rows are then written whole)."""
    select = f"SELECT {', '.join(f'NULL::VARCHAR AS {c}' for c in RECORD_COLUMNS)}, " \
        f"link.* EXCLUDE (key_a, key_b), link.key_a, link.key_b FROM ({labelled}) AS link"  # fmt: skip
    if not table_exists(con, graph):
        return False
    columns = [(name, dtype) for name, dtype, *_ in con.execute(f"DESCRIBE {select}").fetchall()]
    if columns != table_columns(con, graph):
        return False
    con.execute(f"{create_table(rows)} AS {select}")
    return True


def name_records(con: duckdb.DuckDBPyConnection, lookup: TableName, table: TableName) -> None:
    """Fill the records' sources of the rows of `table` (graph columns) that lack them."""
    for side in ("a", "b"):
        con.execute(
            f"""
            UPDATE {table.sql} AS t SET source_{side} = l.source, record_id_{side} = l.source_record_id
            FROM {lookup.sql} AS l
            WHERE l.record_key = t.key_{side} AND t.source_{side} IS NULL
            """
        )


def graph_row_updates(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    graph: TableName,
    rows: TableName,
    came: TableName,
    went: TableName,
    only: TableName | None = None,
) -> list[tuple[str, None]]:
    """The statements that turn `graph` into `rows`: the rows that differ (a record keeps its
    key and its source, so the rest of a row tells) go, and the new ones come, named. `went`
    (key_a, key_b, comes, goes) lists the pairs whose row differs, `came` their new rows.
    With `only` (record_key), `rows` holds the links of those records alone, and only the
    graph's rows of those records are compared with them: a link joins two records of one
    component, so a component's rows are all there or all not."""
    compared = [quote_ident(c) for c, _ in table_columns(con, rows) if c not in (*RECORD_COLUMNS, "key_a", "key_b")]
    old = (
        graph.sql if only is None else f"(SELECT * FROM {graph.sql} WHERE key_a IN (SELECT record_key FROM {only.sql}))"
    )
    con.execute(
        f"""
        {create_table(went)} AS
        SELECT coalesce(new.key_a, old.key_a) AS key_a, coalesce(new.key_b, old.key_b) AS key_b,
               new.key_a IS NOT NULL AS comes, old.key_a IS NOT NULL AS goes
        FROM {rows.sql} AS new FULL JOIN {old} AS old ON new.key_a = old.key_a AND new.key_b = old.key_b
        WHERE new.key_a IS NULL OR old.key_a IS NULL
           OR ({", ".join(f"new.{c}" for c in compared)}) IS DISTINCT FROM ({", ".join(f"old.{c}" for c in compared)})
        """
    )
    con.execute(
        f"{create_table(came)} AS SELECT * EXCLUDE ({', '.join(RECORD_COLUMNS)}) FROM {rows.sql} "
        f"WHERE (key_a, key_b) IN (SELECT (key_a, key_b) FROM {went.sql} WHERE comes)"
    )
    return [
        (f"DELETE FROM {graph.sql} WHERE (key_a, key_b) IN (SELECT (key_a, key_b) FROM {went.sql} WHERE goes)", None),
        (
            f"""
            INSERT INTO {graph.sql} BY NAME
            SELECT a.source AS source_a, a.source_record_id AS record_id_a,
                   b.source AS source_b, b.source_record_id AS record_id_b, came.*
            FROM {came.sql} AS came
            JOIN {lookup.sql} a ON a.record_key = came.key_a
            JOIN {lookup.sql} b ON b.record_key = came.key_b
            """,
            None,
        ),
    ]
