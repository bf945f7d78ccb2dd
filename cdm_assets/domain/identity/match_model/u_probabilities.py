"""u, how often two different people reach each comparison level, from the records themselves.

From pairs of records drawn at random (nearly all non-matches): a
deterministic sample of `u_sample_pairs` pairs gives every level's share; the
exact level's u is computed exactly from value frequencies (Σ c·(c-1) /
(N·(N-1)): the chance two random records share a value). Each level's
typical u acts as a weak prior worth `PRIOR_PAIRS` pairs, so a model trained
on a handful of records is sensible and one trained on thousands is the data's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb

from cdm_assets.domain.identity.match_model.comparisons import (
    MISSING,
    PRIOR_PAIRS,
    SURNAME,
    Comparison,
)
from cdm_assets.domain.identity.match_model.expectation_maximisation import FLOOR
from cdm_assets.domain.sql import TableName, in_sample, sample_hash, sample_threshold


def estimate_u(
    con: duckdb.DuckDBPyConnection, lookup: TableName, comparisons: Sequence[Comparison], sample_pairs: int
) -> dict[str, list[float]]:
    """u per comparison level, from random pairs (exact levels from value frequencies)."""
    side = max(2, math.ceil(math.sqrt(sample_pairs)))
    gammas = ", ".join(f"{c.gamma_sql()} AS {c.column}" for c in comparisons)
    # Two deterministic samples of records, crossed: the hash order is reproducible, on any engine.
    histograms = _level_counts(
        con,
        f"""
        WITH a AS (SELECT * FROM {lookup.sql} ORDER BY {sample_hash("record_key", "'u-a'")} LIMIT $side),
             b AS (SELECT * FROM {lookup.sql} ORDER BY {sample_hash("record_key", "'u-b'")} LIMIT $side),
             pairs AS (SELECT {gammas} FROM a CROSS JOIN b WHERE a.record_key <> b.record_key)
        """,
        [c.column for c in comparisons],
        {"side": side},
    )
    u: dict[str, list[float]] = {}
    for comparison, histogram in zip(comparisons, histograms):
        compared = sum(histogram.values())
        shares = [
            _with_prior(histogram.get(index, 0), compared, level.typical_u)
            for index, level in enumerate(comparison.levels[:-1])
        ]
        exact = _exact_agreement(con, lookup, comparison)
        if exact is not None:
            shares[0] = exact
        # the rest of the probability mass is `different`
        shares.append(max(1.0 - sum(shares), FLOOR))
        u[comparison.name] = [min(max(s, FLOOR), 1 - FLOOR) for s in shares]
    return u


def surname_shared(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons a household shares besides the surname."""
    if not any(c.name == SURNAME for c in comparisons):
        return []
    return [c for c in comparisons if c.household and c.name != SURNAME]


def estimate_u_given_surname(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    comparisons: Sequence[Comparison],
    u: dict[str, list[float]],
    max_records: int,
    sample_pairs: int,
) -> dict[str, list[float]]:
    """u of the household fields among pairs of records with one surname and two first
    names (relatives, or namesakes, nearly never one person), from a deterministic
    sample of records whose pairs number about `sample_pairs`; each level steadied by
    its unconditional u counted as PRIOR_PAIRS pairs. In data without families it
    comes out as the plain u."""
    shared = surname_shared(comparisons)
    if not shared:
        return {}
    blocks = f"""
        SELECT last_name_key, count(*) AS n FROM {lookup.sql}
        WHERE last_name_key IS NOT NULL AND first_name_root IS NOT NULL
        GROUP BY last_name_key HAVING count(*) BETWEEN 2 AND $max_records
    """
    pairs = con.execute(
        f"SELECT coalesce(sum(n * (n - 1) / 2), 0)::DOUBLE FROM ({blocks})", {"max_records": max_records}
    ).fetchone()[0]
    if not pairs:
        return {}
    # records sampled at share f give about f² of the pairs
    share = min(1.0, math.sqrt(sample_pairs / pairs))
    gammas = ", ".join(f"{c.gamma_sql()} AS {c.column}" for c in shared)
    histograms = _level_counts(
        con,
        f"""
        WITH sampled AS (
            SELECT r.* FROM {lookup.sql} r JOIN ({blocks}) USING (last_name_key)
            WHERE r.first_name_root IS NOT NULL AND {in_sample("share", "r.record_key", "'surname'")}
        ),
        pairs AS (
            SELECT {gammas} FROM sampled a JOIN sampled b
              ON a.last_name_key = b.last_name_key AND a.record_key < b.record_key
             AND a.first_name_root <> b.first_name_root
        )
        """,
        [c.column for c in shared],
        {"max_records": max_records, "share": sample_threshold(share)},
    )
    given: dict[str, list[float]] = {}
    for comparison, histogram in zip(shared, histograms):
        compared = sum(histogram.values())
        plain = u[comparison.name]
        shares = [
            (histogram.get(index, 0) + PRIOR_PAIRS * plain[index]) / (compared + PRIOR_PAIRS)
            for index in range(len(comparison.levels))
        ]
        given[comparison.name] = [min(max(s, FLOOR), 1 - FLOOR) for s in shares]
    return given


def _level_counts(con: duckdb.DuckDBPyConnection, pairs: str, columns: list[str], params: dict) -> list[dict[int, int]]:
    """Per column of the CTE `pairs` (defined by the WITH clause `pairs`), how many pairs
    reach each level, MISSING aside: one pass, a grouping set per column (levels are
    never NULL, so a row's one non-NULL level says whose count it is)."""
    sets = ", ".join(f"({column})" for column in columns)
    rows = con.execute(
        f"{pairs} SELECT {', '.join(columns)}, count(*) FROM pairs GROUP BY GROUPING SETS ({sets})", params
    ).fetchall()
    histograms: list[dict[int, int]] = [{} for _ in columns]
    for *levels, pairs_reaching in rows:
        for histogram, level in zip(histograms, levels):
            if level is not None and int(level) != MISSING:
                histogram[int(level)] = int(pairs_reaching)
    return histograms


def _with_prior(agreeing: float, pairs: float, typical_u: float) -> float:
    """A level's share of pairs, steadied by its typical u counted as PRIOR_PAIRS pairs."""
    return (agreeing + PRIOR_PAIRS * typical_u) / (pairs + PRIOR_PAIRS)


def _exact_agreement(con: duckdb.DuckDBPyConnection, lookup: TableName, comparison: Comparison) -> float | None:
    """The chance that two random records with a value agree exactly: pairs sharing a
    value over all pairs (Σ c·(c-1)/2 over N·(N-1)/2), steadied by the level's typical u."""
    column = comparison.frequency_column
    if column is None:
        return None
    same, present = con.execute(
        f"""
        SELECT (SELECT coalesce(sum(n * (n - 1) / 2), 0)::DOUBLE FROM (
                    SELECT count(*) AS n FROM {lookup.sql} WHERE "{column}" IS NOT NULL GROUP BY "{column}")),
               (SELECT count(*)::DOUBLE FROM {lookup.sql} r WHERE {comparison.present("r")})
        """
    ).fetchone()
    return _with_prior(same, present * (present - 1) / 2, comparison.levels[0].typical_u)
