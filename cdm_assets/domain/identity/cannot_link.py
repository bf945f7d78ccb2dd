"""Cannot-link across a customer: weak links that would join two people come out.

A rule's `must_not_differ` keys keep two records with different birth dates
(or phones) apart, but only pair by pair: twins "Sara" and "Sarah" sharing an
inbox still end up in one customer when the record that joins them lacks the
birth date or phone that would tell them apart. So the check is repeated on
the connected components of the links: in a component whose records hold two
different values of a key, every *weak* link (one resting on a fuzzy or a
missing name) of a rule with that key under `must_not_differ` is dropped.
Links on equal names and identifiers stay, so one person's records stay
together; what the weak links joined falls apart where it conflicts.

Vectorised: components with scipy on DuckDB, in star rounds where the links
stay in the engine (Spark); only those holding a weak link are checked, the
conflict test as one GROUP BY (`min <> max`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from cdm_assets.domain.identity.clustering import cluster_labels, key_space
from cdm_assets.domain.identity.star_contraction import star_components
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, quote_ident
from cdm_assets.domain.warehouse import arrow_views, is_duckdb, row_count

_MEMBERS = "_cdm_cannot_link_members"
_REACHED = "_cdm_cannot_link_reached"


def drop_weak_links_in_conflict(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    links: TableName,
    key_values: Mapping[str, str],
    rule_orders: Mapping[str, Sequence[int]],
    reach: Reach | None = None,
) -> int:
    """Delete from `links` (key_a, key_b, rule_order, weak) the weak links that sit in a
    component holding two different values of a key their rule says must not differ.

    `key_values` maps each such lookup column to the SQL expression of its value
    (placeholders already NULL); `rule_orders` maps it to the rules (by order)
    that name it. Returns the number of links dropped. With `reach` (DuckDB only), the
    records of the components (before any link is dropped) that hold one of its seeds
    are written too: only there can the check's outcome have changed since the seeds' links did.
    """
    if not key_values:
        if reach is not None:
            key_a, key_b, _ = _edges(con, links)
            _write_reached(con, cluster_labels(key_space(con, lookup), key_a, key_b), reach)
        return 0
    flags = {column: f"_conflict_{index}" for index, column in enumerate(key_values)}
    values = ", ".join(f"{expression} AS {quote_ident(column)}" for column, expression in key_values.items())
    conflicts = ", ".join(
        f"min({quote_ident(column)}) <> max({quote_ident(column)}) AS {flag}" for column, flag in flags.items()
    )
    dropped = " OR ".join(
        f"(links.rule_order IN ({', '.join(str(int(o)) for o in rule_orders[column])}) AND conflicted.{flag})"
        for column, flag in flags.items()
    )
    with _suspects(con, lookup, links, reach) as members:
        if members is None:
            return 0
        before = row_count(con, links)
        con.execute(
            f"""
            DELETE FROM {links.sql} AS links USING (
                WITH members AS (
                    SELECT m.record_key, m.component, {values}
                    FROM {members} m JOIN {lookup.sql} USING (record_key)
                )
                SELECT members.record_key, conflicts.*
                FROM members
                JOIN (SELECT component, {conflicts} FROM members GROUP BY component) AS conflicts USING (component)
            ) AS conflicted
            WHERE links.key_a = conflicted.record_key AND links.weak AND ({dropped})
            """
        )
        after = row_count(con, links)
    return before - after


@dataclass(frozen=True)
class Reach:
    """Records whose components to find: `seeds` (a SELECT of record_key). The records of
    those components, and the seeds themselves, are inserted into `into` (record_key)."""

    seeds: str
    into: TableName


def _edges(con: duckdb.DuckDBPyConnection, links: TableName) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The links' key_a, key_b and weak as numpy arrays."""
    edges = con.sql(f"SELECT key_a, key_b, weak FROM {links.sql}").to_arrow_table()
    key_a = edges.column("key_a").to_numpy().astype(np.int64, copy=False)
    key_b = edges.column("key_b").to_numpy().astype(np.int64, copy=False)
    weak = edges.column("weak").to_numpy(zero_copy_only=False).astype(bool, copy=False)
    return key_a, key_b, weak


def _write_reached(con: duckdb.DuckDBPyConnection, labels: np.ndarray, reach: Reach) -> None:
    """Insert into `reach.into` the seeds and the records that share a component `labels` with one."""
    seeds = con.sql(f"SELECT DISTINCT record_key FROM ({reach.seeds})").to_arrow_table()
    seed_keys = seeds.column("record_key").to_numpy().astype(np.int64, copy=False)
    reached = np.zeros(int(labels.max()) + 1 if len(labels) else 0, dtype=bool)
    reached[labels[seed_keys[seed_keys < len(labels)]]] = True  # a removed record's key may lie past the lookup's
    keys = np.union1d(np.flatnonzero(reached[labels]), seed_keys)
    with arrow_views(con, {_REACHED: pa.table({"record_key": keys})}):
        con.execute(f"INSERT INTO {reach.into.sql} SELECT record_key FROM {_REACHED}")


@contextmanager
def _suspects(
    con: duckdb.DuckDBPyConnection, lookup: TableName, links: TableName, reach: Reach | None = None
) -> Iterator[str | None]:
    """The records (record_key, component) of the components of `links` that hold a weak
    link, as a table name to read while the block runs; None when no link is weak. DuckDB
    finds the components in memory with scipy; an engine whose links need not fit on one
    machine (Spark) finds them in star rounds where the links are. With `reach`, the
    components are also used to write the records reached from its seeds (DuckDB only)."""
    if not is_duckdb(con):
        if reach is not None:
            raise ValueError("the records reached from seeds are found on DuckDB only")
        yield from _suspects_in_rounds(con, links)
        return
    key_a, key_b, weak = _edges(con, links)
    if not weak.any() and reach is None:
        yield None
        return
    labels = cluster_labels(key_space(con, lookup), key_a, key_b)
    if reach is not None:
        _write_reached(con, labels, reach)
    if not weak.any():
        yield None
        return
    holds_weak_link = np.zeros(int(labels.max()) + 1, dtype=bool)
    holds_weak_link[labels[key_a[weak]]] = True
    suspects = np.flatnonzero(holds_weak_link[labels])
    with arrow_views(con, {_MEMBERS: pa.table({"record_key": suspects, "component": labels[suspects]})}):
        yield _MEMBERS


def _suspects_in_rounds(con: duckdb.DuckDBPyConnection, links: TableName) -> Iterator[str | None]:
    if not con.execute(f"SELECT count(*) FROM {links.sql} WHERE weak").fetchone()[0]:
        yield None
        return
    labels, members = (TableName(SCRATCH, f"{_MEMBERS}_{part}") for part in ("labels", "suspects"))
    try:
        star_components(con, f"SELECT key_a, key_b FROM {links.sql}", labels)
        con.execute(
            f"""
            {create_table(members)} AS
            SELECT record_key, component FROM {labels.sql}
            WHERE component IN (
                SELECT l.component FROM {links.sql} AS links JOIN {labels.sql} AS l ON l.record_key = links.key_a
                WHERE links.weak
            )
            """
        )
        yield members.sql
    finally:
        for table in (labels, members):
            con.execute(f"DROP TABLE IF EXISTS {table.sql}")
