"""Connected components in SQL, by alternating large-star and small-star rounds.

`clustering.py` pulls the links onto one machine and runs union-find there:
the fastest way when they fit. Where they do not (a Spark cluster resolving
hundreds of millions of records), the components must be found where the
links are, in rounds of set operations. Min-label propagation needs as many
rounds as the longest chain is long; large-star / small-star (Kiveris et al.,
"Connected Components in MapReduce and Beyond", SoCC 2014) contracts every
component into a star around its smallest record key, and on chains it
converges in O(log n) rounds.

The edges are kept as undirected pairs `(a, b)` with `a > b`, one row each:

- large-star: every record points its larger neighbours at the smallest of
  its neighbourhood (itself included);
- small-star: every record points itself and its smaller neighbours at the
  smallest of them.

Records take part in a random order (a hash of the record key in the high
bits of their node number, the key itself in the low ones): on a chain whose
keys ascend, the order of the keys alone took 29 rounds for 20,000 records,
more than 2·log2(n). Each round is one statement that writes a new table (a
checkpoint on engines that keep lineage), then one query that tests whether
the pairs form stars: no node heads two pairs, and no node both heads one and
is pointed at. Each component is then labelled with its smallest record key.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cdm_assets.domain.sql import TableName, create_table

# Far above what any graph needs (about 2·log2 of its longest chain): a bound
# against an endless loop, reported as an error, not a silent result.
MAX_ROUNDS = 200
# A node number is a random priority (31 bits of a hash of the record key) above the
# record key (32 bits): unique, in random order, and the key is read back from it.
KEY_BITS = 32
_KEY_MASK = (1 << KEY_BITS) - 1


def _node(key: str) -> str:
    return f"(((hash({key}) & 2147483647)::BIGINT << {KEY_BITS}) | {key})"


@dataclass(frozen=True)
class StarComponents:
    rounds: int  # star rounds run, large and small each counting one


def _large_star(pairs: TableName) -> str:
    return f"""
        WITH neighbours AS (
            SELECT a AS record, b AS neighbour FROM {pairs.sql}
            UNION ALL
            SELECT b AS record, a AS neighbour FROM {pairs.sql}
        ),
        smallest AS (
            SELECT record, least(record, min(neighbour)) AS head FROM neighbours GROUP BY record
        )
        SELECT DISTINCT n.neighbour AS a, s.head AS b
        FROM neighbours n JOIN smallest s USING (record)
        WHERE n.neighbour > n.record
    """


def _small_star(pairs: TableName) -> str:
    # a pair (a, b) is a's link to a smaller neighbour b
    return f"""
        WITH smallest AS (SELECT a AS record, min(b) AS head FROM {pairs.sql} GROUP BY a)
        SELECT DISTINCT p.b AS a, s.head AS b
        FROM {pairs.sql} p JOIN smallest s ON s.record = p.a
        WHERE p.b <> s.head
        UNION
        SELECT record AS a, head AS b FROM smallest
    """


def _are_stars(con: duckdb.DuckDBPyConnection, pairs: TableName) -> bool:
    """Every record heads at most one pair, and no head is itself pointed at another."""
    repeated, chained = con.execute(
        f"""
        SELECT (SELECT count(*) - count(DISTINCT a) FROM {pairs.sql}),
               (SELECT count(*) FROM {pairs.sql} p WHERE p.b IN (SELECT a FROM {pairs.sql}))
        """
    ).fetchone()
    return repeated == 0 and chained == 0


def star_components(
    con: duckdb.DuckDBPyConnection, links_sql: str, labels: TableName, max_rounds: int = MAX_ROUNDS
) -> StarComponents:
    """Write `labels` (record_key, component): for every record key in the links
    (`links_sql` selects key_a, key_b), the smallest record key of its connected
    component. Records without a link are not listed: each is its own component."""
    work = [TableName(labels.schema, f"{labels.name}_round_{side}") for side in ("even", "odd")]
    outside = con.execute(
        f"SELECT count(*) FROM ({links_sql}) WHERE least(key_a, key_b) < 0 OR greatest(key_a, key_b) > {_KEY_MASK}"
    ).fetchone()[0]
    if outside:
        raise ValueError(f"{outside} link(s) name a record key outside 0..{_KEY_MASK}")
    con.execute(
        f"""
        {create_table(work[0])} AS
        SELECT DISTINCT greatest(node_a, node_b) AS a, least(node_a, node_b) AS b
        FROM (SELECT {_node("key_a")} AS node_a, {_node("key_b")} AS node_b FROM ({links_sql}) WHERE key_a <> key_b)
        """
    )
    current, rounds = 0, 0
    try:
        while not _are_stars(con, work[current]):
            if rounds >= max_rounds:
                raise RuntimeError(f"connected components did not settle in {max_rounds} star rounds")
            star = _large_star if rounds % 2 == 0 else _small_star
            following = 1 - current
            con.execute(f"DROP TABLE IF EXISTS {work[following].sql}")
            con.execute(f"{create_table(work[following])} AS {star(work[current])}")
            current, rounds = following, rounds + 1
        con.execute(
            f"""
            {create_table(labels)} AS
            WITH members AS (
                SELECT a AS node, b AS head FROM {work[current].sql}
                UNION ALL
                SELECT DISTINCT b, b FROM {work[current].sql}
            )
            SELECT node & {_KEY_MASK} AS record_key, min(node & {_KEY_MASK}) OVER (PARTITION BY head) AS component
            FROM members
            """
        )
    finally:
        for table in work:
            con.execute(f"DROP TABLE IF EXISTS {table.sql}")
    return StarComponents(rounds)
