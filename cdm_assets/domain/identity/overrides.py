"""Steward overrides win over every rule and the match model.

Applied to a freshly built identity graph, every run, so they hold across
reruns, retrains and late batches:

- `link`: the two records become one customer. When no link joins them
  directly, a link with the rule `override` does.
- `unlink`: the two records stay in different customers whatever else links
  them. The links of their group are taken strongest first (override links,
  then hard rules in configured order and by score, then the model's links by
  match weight) and a link that would put two records a steward keeps apart
  into one customer is cut: the weakest links between them go, the rest of
  the group stays together. Cut links move to the cut-links table, each with
  the line of the unlink that cut it. An override `link` that an `unlink`
  contradicts through other records is cut like any link.

Every line of the file gets a status in the overrides table: `joined` /
`already together` / `overruled` for links, `separated` / `already apart` for
unlinks, `unknown record` when a side names no record of the entity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from cdm_assets.domain.identity.clustering import cluster_labels, key_space
from cdm_assets.domain.identity.override_file import LINK, UNLINK, Override
from cdm_assets.domain.identity.star_contraction import star_components
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident, sql_string
from cdm_assets.domain.warehouse import arrow_views, is_duckdb, row_count, table_columns, table_exists

OVERRIDE_RULE = "override"  # the rule label of a link only a steward made
_OVERRIDES = "_cdm_steward_overrides"
_CUTS = "_cdm_cut_links"
_RANKS = "_cdm_rule_ranks"

OVERRIDES_DDL = """
    line INTEGER NOT NULL,            -- line of the overrides file
    action VARCHAR NOT NULL,          -- link | unlink
    source_a VARCHAR NOT NULL, record_id_a VARCHAR NOT NULL,
    source_b VARCHAR NOT NULL, record_id_b VARCHAR NOT NULL,
    reason VARCHAR,
    status VARCHAR NOT NULL,          -- joined | already together | overruled | separated | already apart | unknown record
    links_cut BIGINT NOT NULL         -- links this unlink cut
"""


@dataclass(frozen=True)
class OverrideReport:
    """Per status, how many lines of the overrides file ended in it; and the links cut."""

    statuses: Mapping[str, int]
    links_cut: int
    unknown: Sequence[Override] = ()  # lines naming a record the entity does not hold
    overruled: Sequence[tuple[Override, int]] = ()  # (link, line of the unlink that overruled it)


def apply_overrides(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    graph: TableName,
    overrides: Sequence[Override],
    rule_order: Mapping[str, int],
    report: TableName,
    cuts: TableName,
) -> OverrideReport:
    """Apply `overrides` to the links in `graph` (a staging table of the identity graph);
    write the status of every line to `report` and the links cut to `cuts`.
    `rule_order` ranks the hard rules by name (lower is stronger)."""
    con.execute(f"{create_table(report)} ({OVERRIDES_DDL})")
    graph_columns = ", ".join(f"{quote_ident(name)} {dtype}" for name, dtype in table_columns(con, graph))
    con.execute(f"{create_table(cuts)} ({graph_columns}, override_line INTEGER NOT NULL)")
    if not overrides:
        return OverrideReport({}, 0)
    keys = _record_keys(con, lookup, overrides)
    known = [o for o in overrides if keys[o.line] is not None]
    links = {keys[o.line]: o for o in known if o.action == LINK}
    unlinks = [(*keys[o.line], o.line) for o in known if o.action == UNLINK]
    record_count = key_space(con, lookup)
    edges = _edges(con, graph, rule_order, list(links), record_count)
    base_labels = cluster_labels(record_count, edges.key_a, edges.key_b)
    pairs = list(links)
    linked = edges.holds(pairs, record_count) if pairs else np.zeros(0, dtype=bool)
    if not linked.all():
        _insert_override_links(con, lookup, graph, [pair for pair, done in zip(pairs, linked) if not done])
        edges = _edges(con, graph, rule_order, pairs, record_count)
    cut_lines = cut_to_separate(record_count, edges, unlinks)
    _move_cut_links(con, graph, cuts, edges, cut_lines)
    cut = np.flatnonzero(cut_lines >= 0)  # few links, however large the graph
    cut_per_unlink = {int(line): int(n) for line, n in zip(*np.unique(cut_lines[cut], return_counts=True))}
    overruled_by = {
        (int(edges.key_a[i]), int(edges.key_b[i])): int(cut_lines[i])
        for i in cut
        if (int(edges.key_a[i]), int(edges.key_b[i])) in links
    }
    statuses = []
    for override in overrides:
        pair = keys[override.line]
        if pair is None:
            statuses.append(("unknown record", 0))
        elif override.action == UNLINK:
            links_cut = cut_per_unlink.get(override.line, 0)
            statuses.append(("separated" if links_cut else "already apart", links_cut))
        elif pair in overruled_by:
            statuses.append(("overruled", 0))
        else:
            together = base_labels[pair[0]] == base_labels[pair[1]]
            statuses.append(("already together" if together else "joined", 0))
    _write_report(con, report, overrides, statuses)
    counts: dict[str, int] = {}
    for status, _ in statuses:
        counts[status] = counts.get(status, 0) + 1
    return OverrideReport(
        statuses=counts,
        links_cut=len(cut),
        unknown=[o for o in overrides if keys[o.line] is None],
        overruled=[(links[pair], line) for pair, line in overruled_by.items()],
    )


def _record_keys(
    con: duckdb.DuckDBPyConnection, lookup: TableName, overrides: Sequence[Override]
) -> dict[int, tuple[int, int] | None]:
    """Per line, the record keys of its two records (smaller first), or None when a side is unknown."""
    rows = pa.table({
        "line": [o.line for o in overrides],
        "source_a": [o.source_a for o in overrides], "record_id_a": [o.record_id_a for o in overrides],
        "source_b": [o.source_b for o in overrides], "record_id_b": [o.record_id_b for o in overrides],
    })  # fmt: skip
    with arrow_views(con, {_OVERRIDES: rows}):
        found = con.execute(
            f"""
            SELECT o.line, a.record_key, b.record_key FROM {_OVERRIDES} o
            LEFT JOIN {lookup.sql} a ON a.source = o.source_a AND a.source_record_id = o.record_id_a
            LEFT JOIN {lookup.sql} b ON b.source = o.source_b AND b.source_record_id = o.record_id_b
            """
        ).fetchall()
    return {
        line: None if a is None or b is None else (min(a, b), max(a, b))
        for line, a, b in found  # a record id is unique within its source, so one row per line
    }


@dataclass(frozen=True)
class Edges:
    """The links of a graph as arrays, with a strength rank per link (0 is strongest)."""

    key_a: np.ndarray
    key_b: np.ndarray
    strength: np.ndarray  # position in strongest-first order

    def holds(self, pairs: Sequence[tuple[int, int]], record_count: int) -> np.ndarray:
        """Per pair (smaller key first), whether a link joins it directly."""
        return np.isin(_pair_codes(pairs, record_count), self.key_a * record_count + self.key_b)


def _pair_codes(pairs: Sequence[tuple[int, int]], record_count: int) -> np.ndarray:
    """One number per record pair (smaller key first), comparable with `key_a * record_count + key_b`."""
    return np.array([a * record_count + b for a, b in pairs], dtype=np.int64)


def _edges(
    con: duckdb.DuckDBPyConnection,
    graph: TableName,
    rule_order: Mapping[str, int],
    steward_links: Sequence[tuple[int, int]],
    record_count: int,
) -> Edges:
    """Every link with its strength: steward links, then hard rules by order and score, then
    the model's links by match weight; ties broken by record keys, so the order is repeatable."""
    has_weight = any(name == "match_weight" for name, _ in table_columns(con, graph))
    model_rank = len(rule_order)
    ranks = pa.table({
        "rule": pa.array(list(rule_order), pa.string()), "rank": pa.array(list(rule_order.values()), pa.int64()),
    })  # fmt: skip
    with arrow_views(con, {_RANKS: ranks}):
        table = con.sql(
            f"""
            SELECT g.key_a, g.key_b, coalesce(r.rank, $model_rank) AS rank,
                   coalesce(CASE WHEN r.rank IS NULL THEN {"g.match_weight" if has_weight else "NULL"} ELSE g.score END,
                            0)::DOUBLE AS strength_within
            FROM {graph.sql} g LEFT JOIN {_RANKS} r USING (rule)
            """,
            params={"model_rank": model_rank},
        ).to_arrow_table()
    key_a = table.column("key_a").to_numpy().astype(np.int64, copy=False)
    key_b = table.column("key_b").to_numpy().astype(np.int64, copy=False)
    rank = table.column("rank").to_numpy().astype(np.int64)
    if steward_links:
        rank[np.isin(key_a * record_count + key_b, _pair_codes(steward_links, record_count))] = -1
    within = table.column("strength_within").to_numpy()
    order = np.lexsort((key_b, key_a, -within, rank))
    strength = np.empty(len(order), dtype=np.int64)
    strength[order] = np.arange(len(order))
    return Edges(key_a, key_b, strength)


def cut_to_separate(record_count: int, edges: Edges, unlinks: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Per link, the line of the unlink that cuts it, or -1 when it stays.

    Only groups holding both records of an unlink are worked on. Their links are
    joined strongest first, as in building a maximum spanning forest; a link
    whose two sides hold records kept apart is cut, so every unlinked pair ends
    in two groups and only links on the way between them go.
    """
    cut = np.full(len(edges.key_a), -1, dtype=np.int64)
    if not unlinks or record_count == 0:
        return cut
    labels = cluster_labels(record_count, edges.key_a, edges.key_b)
    conflicted = {int(labels[a]) for a, b, _ in unlinks if labels[a] == labels[b]}
    if not conflicted:
        return cut
    in_conflict = np.isin(labels[edges.key_a], np.fromiter(conflicted, dtype=np.int64))
    candidates = np.flatnonzero(in_conflict)
    candidates = candidates[np.argsort(edges.strength[candidates], kind="stable")]
    groups = _ApartGroups(unlinks)
    for index in candidates:
        line = groups.join(int(edges.key_a[index]), int(edges.key_b[index]))
        if line is not None:
            cut[index] = line
    return cut


class _ApartGroups:
    """Union-find whose groups remember which other groups they must stay apart from (and why)."""

    def __init__(self, unlinks: Sequence[tuple[int, int, int]]):
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.apart: dict[int, dict[int, int]] = {}  # root -> {other root: unlink line}
        for a, b, line in unlinks:
            for one, other in ((a, b), (b, a)):
                kept = self.apart.setdefault(one, {})
                kept[other] = min(kept.get(other, line), line)

    def find(self, record: int) -> int:
        parent = self.parent
        while parent.get(record, record) != record:
            grand = parent.get(parent[record], parent[record])
            parent[record] = grand
            record = grand
        return record

    def join(self, a: int, b: int) -> int | None:
        """Join the groups of `a` and `b`; when they must stay apart, the unlink line instead."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return None
        line = self.apart.get(root_a, {}).get(root_b)
        if line is not None:
            return line
        if self.size.get(root_a, 1) < self.size.get(root_b, 1):
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] = self.size.get(root_a, 1) + self.size.get(root_b, 1)
        moved = self.apart.pop(root_b, {})
        kept = self.apart.setdefault(root_a, {})
        for other, other_line in moved.items():
            partner = self.apart[other]
            del partner[root_b]
            partner[root_a] = kept[other] = min(kept.get(other, other_line), other_line)
        return None


def _insert_override_links(
    con: duckdb.DuckDBPyConnection, lookup: TableName, graph: TableName, pairs: Sequence[tuple[int, int]]
) -> None:
    """A link labelled `override` for each steward link no other link makes directly."""
    if not pairs:
        return
    new = pa.table({"key_a": [a for a, _ in pairs], "key_b": [b for _, b in pairs]})
    with arrow_views(con, {_OVERRIDES: new}):
        con.execute(
            f"""
            INSERT INTO {graph.sql} BY NAME
            SELECT a.source AS source_a, a.source_record_id AS record_id_a,
                   b.source AS source_b, b.source_record_id AS record_id_b,
                   $rule AS rule, 1.0 AS score, n.key_a, n.key_b
            FROM {_OVERRIDES} n
            JOIN {lookup.sql} a ON a.record_key = n.key_a
            JOIN {lookup.sql} b ON b.record_key = n.key_b
            """,
            {"rule": OVERRIDE_RULE},
        )


def _move_cut_links(
    con: duckdb.DuckDBPyConnection, graph: TableName, cuts: TableName, edges: Edges, cut_lines: np.ndarray
) -> None:
    """Move the cut links from `graph` to `cuts`, each with the line of its unlink."""
    chosen = np.flatnonzero(cut_lines >= 0)
    if len(chosen) == 0:
        return
    cut = pa.table({"key_a": edges.key_a[chosen], "key_b": edges.key_b[chosen], "override_line": cut_lines[chosen]})
    with arrow_views(con, {_CUTS: cut}):
        con.execute(
            f"INSERT INTO {cuts.sql} BY NAME SELECT g.*, c.override_line "
            f"FROM {graph.sql} g JOIN {_CUTS} c USING (key_a, key_b)"
        )
        con.execute(f"DELETE FROM {graph.sql} g USING {_CUTS} c WHERE g.key_a = c.key_a AND g.key_b = c.key_b")


def _write_report(
    con: duckdb.DuckDBPyConnection,
    report: TableName,
    overrides: Sequence[Override],
    statuses: Sequence[tuple[str, int]],
) -> None:
    rows = pa.table({
        "line": [o.line for o in overrides], "action": [o.action for o in overrides],
        "source_a": [o.source_a for o in overrides], "record_id_a": [o.record_id_a for o in overrides],
        "source_b": [o.source_b for o in overrides], "record_id_b": [o.record_id_b for o in overrides],
        "reason": [o.reason for o in overrides],
        "status": [s for s, _ in statuses], "links_cut": [n for _, n in statuses],
    })  # fmt: skip
    with arrow_views(con, {_OVERRIDES: rows}):
        con.execute(f"INSERT INTO {report.sql} BY NAME SELECT * FROM {_OVERRIDES}")


def clusters_made_by_overrides(
    con: duckdb.DuckDBPyConnection,
    graph: TableName,
    cut_links: TableName,
    clusters: str,
    made: TableName,
) -> int:
    """Write `made` (cluster): the clusters of `clusters` (a relation of record_key, cluster
    for every record) that the steward's overrides shaped, i.e. that the graph without its
    override links and with its cut links back would not give. Returns how many."""
    con.execute(f"{create_table(made)} (cluster BIGINT)")
    if not table_exists(con, cut_links):
        return 0
    touched = con.execute(
        f"SELECT EXISTS (SELECT 1 FROM {graph.sql} WHERE rule = $rule) OR EXISTS (SELECT 1 FROM {cut_links.sql})",
        {"rule": OVERRIDE_RULE},
    ).fetchall()[0][0]
    if not touched:
        return 0
    if not is_duckdb(con):
        return _clusters_made_in_rounds(con, graph, cut_links, clusters, made)
    final = con.sql(f"SELECT record_key, cluster FROM {clusters}").to_arrow_table()
    keys = final.column("record_key").to_numpy().astype(np.int64, copy=False)
    final_labels = final.column("cluster").to_numpy().astype(np.int64, copy=False)
    edges = con.sql(
        f"SELECT key_a, key_b FROM {graph.sql} WHERE rule <> $rule "
        f"UNION ALL SELECT key_a, key_b FROM {cut_links.sql} WHERE rule <> $rule",
        params={"rule": OVERRIDE_RULE},
    ).to_arrow_table()
    key_a = edges.column("key_a").to_numpy().astype(np.int64, copy=False)
    key_b = edges.column("key_b").to_numpy().astype(np.int64, copy=False)
    # labels by record key: keys of records gone leave gaps
    key_count = int(max(keys.max(initial=-1), key_a.max(initial=-1), key_b.max(initial=-1))) + 1
    base_labels = cluster_labels(key_count, key_a, key_b)[keys]
    span = int(base_labels.max()) + 1 if len(base_labels) else 1
    pairs = np.unique(final_labels * span + base_labels)  # each (cluster, base group) once
    final_of_pairs, base_of_pairs = pairs // span, pairs % span
    joined = np.unique(final_of_pairs, return_counts=True)  # one cluster, several base groups
    split = np.unique(base_of_pairs, return_counts=True)  # one base group, several clusters
    shaped = set(joined[0][joined[1] > 1].tolist())
    shaped |= set(final_of_pairs[np.isin(base_of_pairs, split[0][split[1] > 1])].tolist())
    with arrow_views(con, {_OVERRIDES: pa.table({"cluster": pa.array(sorted(shaped), pa.int64())})}):
        con.execute(f"INSERT INTO {made.sql} SELECT cluster FROM {_OVERRIDES}")
    return len(shaped)


def _clusters_made_in_rounds(
    con: duckdb.DuckDBPyConnection, graph: TableName, cut_links: TableName, clusters: str, made: TableName
) -> int:
    """`clusters_made_by_overrides` where the links stay in the engine (Spark): the groups
    the graph would give without the steward are found in star rounds, and a cluster is
    shaped where it holds several such groups or shares one with another cluster."""
    base = TableName(SCRATCH, f"{made.name}_without_overrides")
    try:
        star_components(
            con,
            f"SELECT key_a, key_b FROM {graph.sql} WHERE rule <> {sql_string(OVERRIDE_RULE)} "
            f"UNION ALL SELECT key_a, key_b FROM {cut_links.sql} WHERE rule <> {sql_string(OVERRIDE_RULE)}",
            base,
        )
        # a record in no link is a group of its own, named by its key (no group's smallest key)
        con.execute(
            f"""
            INSERT INTO {made.sql}
            WITH groups AS (
                SELECT DISTINCT f.cluster, coalesce(b.component, f.record_key) AS base_group
                FROM {clusters} AS f LEFT JOIN {base.sql} AS b ON b.record_key = f.record_key
            ),
            joined AS (SELECT cluster FROM groups GROUP BY cluster HAVING count(*) > 1),
            split AS (SELECT base_group FROM groups GROUP BY base_group HAVING count(*) > 1)
            SELECT cluster FROM joined
            UNION
            SELECT cluster FROM groups WHERE base_group IN (SELECT base_group FROM split)
            """
        )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {base.sql}")
    return row_count(con, made)
