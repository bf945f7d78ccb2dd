"""Estimating the match model from the records being resolved, without labels.

Fellegi-Sunter: for each comparison level, m is the probability that the
records of a *matching* pair reach it, u the probability for a *non-matching*
pair. Both come from the data at hand:

- **u** from pairs of records drawn at random (nearly all non-matches): a
  deterministic sample of `u_sample_pairs` pairs gives every level's share;
  the exact level's u is computed exactly from value frequencies
  (Σ c·(c-1) / (N·(N-1)): the chance two random records share a value).
  Each level's typical u and a starting m act as weak priors (worth
  `PRIOR_PAIRS` pairs and `PRIOR_MATCHES` matches), so that a model trained on
  a handful of records is sensible and one trained on thousands is the data's.
- **m** by expectation-maximisation with u held fixed. The person's own
  fields (names, birth date, identifiers) learn from a deterministic sample of
  the candidate pairs of all blocking rules together; contact fields (email,
  phone, address) from each rule's own pairs, leaving out the comparisons the
  rule blocks on and, for a rule on a household key, every household field
  (see `trained_comparisons`), averaged over the rules weighted by their
  expected matches.
- **the prior** (the chance two random records match) comes out of that EM:
  its share of matches is over all record pairs, not over the candidates,
  because u is measured on random pairs (a share among candidates would take
  the namesakes every name block holds for matches).

EM runs in numpy on the distinct comparison patterns and their counts (a few
thousand rows), not on the pairs themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from cdm_assets.domain.identity.match_model.blocking import BlockingRule
from cdm_assets.domain.identity.match_model.comparisons import (
    MISSING,
    PRIOR_PAIRS,
    SURNAME,
    Comparison,
    comparison_of_key,
    relatives_test,
)  # fmt: skip
from cdm_assets.domain.warehouse import TableName

EM_ITERATIONS = 100
EM_TOLERANCE = 1e-6
# Probabilities are kept off 0 and 1 so that every level has a finite weight.
FLOOR = 1e-7
# How many matching pairs the starting m counts for against EM's estimate: it
# steers a model trained on a handful of records and vanishes on real volumes.
PRIOR_MATCHES = 10
# The pooled EM samples this many rules' worth of em_max_pairs from all candidates together.
POOLED_RULES = 3


@dataclass
class ComparisonParameters:
    comparison: str
    levels: list[str]
    m: list[float]
    u: list[float]
    trained_by: list[str]  # blocking rules whose EM estimated m
    # u among two people of one surname, for the fields a household shares (None for
    # the rest): relatives share an address, an inbox or a landline far more often
    # than two people drawn at random, so beside an agreeing surname these say less.
    u_given_surname: list[float] | None = None

    def weights(self) -> list[float]:
        return [math.log2(m / u) for m, u in zip(self.m, self.u)]

    def weights_given_surname(self) -> list[float] | None:
        if self.u_given_surname is None:
            return None
        return [math.log2(m / u) for m, u in zip(self.m, self.u_given_surname)]


@dataclass
class TrainedModel:
    prior: float  # probability that two random records match
    parameters: list[ComparisonParameters]
    candidate_pairs: dict[str, int]  # per blocking rule
    expected_matches: dict[str, float]  # per blocking rule, from its EM


def estimate_u(
    con: duckdb.DuckDBPyConnection, lookup: TableName, comparisons: Sequence[Comparison], sample_pairs: int
) -> dict[str, list[float]]:
    """u per comparison level, from random pairs (exact levels from value frequencies)."""
    side = max(2, math.ceil(math.sqrt(sample_pairs)))
    gammas = ", ".join(f"{c.gamma_sql()} AS {c.column}" for c in comparisons)
    counts = ", ".join(f"histogram({c.column}) AS {c.column}" for c in comparisons)
    # Two deterministic samples of records, crossed: hash order is reproducible.
    row = con.execute(
        f"""
        WITH a AS (SELECT * FROM {lookup.sql} ORDER BY hash(record_key, 'u-a') LIMIT $side),
             b AS (SELECT * FROM {lookup.sql} ORDER BY hash(record_key, 'u-b') LIMIT $side),
             pairs AS (SELECT {gammas} FROM a CROSS JOIN b WHERE a.record_key <> b.record_key)
        SELECT {counts} FROM pairs
        """,
        {"side": side},
    ).fetchone()
    u: dict[str, list[float]] = {}
    for comparison, histogram in zip(comparisons, row):
        histogram = {int(k): int(v) for k, v in (histogram or {}).items() if int(k) != MISSING}
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
    counts = ", ".join(f"histogram({c.column}) AS {c.column}" for c in shared)
    row = con.execute(
        f"""
        WITH sampled AS (
            SELECT r.* FROM {lookup.sql} r JOIN ({blocks}) USING (last_name_key)
            WHERE r.first_name_root IS NOT NULL AND (hash(r.record_key, 'surname') % 1000000) < $share * 1000000
        ),
        pairs AS (
            SELECT {gammas} FROM sampled a JOIN sampled b
              ON a.last_name_key = b.last_name_key AND a.record_key < b.record_key
             AND a.first_name_root <> b.first_name_root
        )
        SELECT {counts} FROM pairs
        """,
        {"max_records": max_records, "share": share},
    ).fetchone()
    given: dict[str, list[float]] = {}
    for comparison, histogram in zip(shared, row):
        histogram = {int(k): int(v) for k, v in (histogram or {}).items() if int(k) != MISSING}
        compared = sum(histogram.values())
        plain = u[comparison.name]
        shares = [
            (histogram.get(index, 0) + PRIOR_PAIRS * plain[index]) / (compared + PRIOR_PAIRS)
            for index in range(len(comparison.levels))
        ]
        given[comparison.name] = [min(max(s, FLOOR), 1 - FLOOR) for s in shares]
    return given


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


def training_patterns(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    comparisons: Sequence[Comparison],
    rules: Sequence[BlockingRule],
    max_records: int,
    max_pairs: int,
    sampled: Sequence[BlockingRule] | None = None,
) -> tuple[dict[str, int], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per blocking rule: its candidate pair count, and for the `sampled` rules (default:
    all) the comparison patterns (one row of gammas each) with their counts over a
    sample of its blocks."""
    gammas = ", ".join(f"{c.gamma_sql()} AS {c.column}" for c in comparisons)
    columns = ", ".join(c.column for c in comparisons)
    pair_counts: dict[str, int] = {}
    patterns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for rule in rules:
        total = con.execute(rule.pair_count_sql(lookup), {"max_records": max_records}).fetchone()[0]
        pair_counts[rule.name] = int(total)
        if not total or (sampled is not None and rule not in sampled):
            continue
        rows = con.execute(
            f"""
            SELECT {columns}, count(*) AS n FROM (
                SELECT {gammas}
                FROM ({rule.pairs_sql(lookup, sampled=True)}) AS pair
                JOIN {lookup.sql} a ON a.record_key = pair.key_a
                JOIN {lookup.sql} b ON b.record_key = pair.key_b
            ) GROUP BY ALL
            """,
            {"max_records": max_records, "sample": min(1.0, max_pairs / total)},
        ).fetchnumpy()
        counts = np.asarray(rows.pop("n"), dtype=np.float64)
        matrix = np.column_stack([np.asarray(rows[c.column], dtype=np.int64) for c in comparisons])
        patterns[rule.name] = (matrix, counts)
    return pair_counts, patterns


def union_patterns(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    comparisons: Sequence[Comparison],
    rules: Sequence[BlockingRule],
    max_records: int,
    sample: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The comparison patterns, with their counts, of a deterministic sample (`sample`,
    a share 0..1, by a hash of the pair) of the distinct candidate pairs of all rules.

    Each rule's pairs are sampled by the same hash (of the pair's first record)
    before they are pooled, so the pool is that share of the union without the
    union, or the pairs left out, ever being built.
    """
    union = " UNION ".join(f"SELECT key_a, key_b FROM ({rule.pairs_sql(lookup, pair_sample=True)})" for rule in rules)
    gammas = ", ".join(f"{c.gamma_sql()} AS {c.column}" for c in comparisons)
    columns = ", ".join(c.column for c in comparisons)
    rows = con.execute(
        f"""
        SELECT {columns}, count(*) AS n FROM (
            SELECT {gammas}
            FROM ({union}) AS pair
            JOIN {lookup.sql} a ON a.record_key = pair.key_a
            JOIN {lookup.sql} b ON b.record_key = pair.key_b
        ) GROUP BY ALL
        """,
        {"max_records": max_records, "pair_share": sample},
    ).fetchnumpy()
    counts = np.asarray(rows.pop("n"), dtype=np.float64)
    if not len(counts):
        return np.zeros((0, len(comparisons)), dtype=np.int64), counts
    return np.column_stack([np.asarray(rows[c.column], dtype=np.int64) for c in comparisons]), counts


def expectation_maximisation(
    matrix: np.ndarray,
    counts: np.ndarray,
    u: Sequence[np.ndarray],
    trained: Sequence[bool],
    m_start: Sequence[np.ndarray],
    share_start: float = 0.5,
    population: float | None = None,
    evidence: np.ndarray | None = None,
) -> tuple[list[np.ndarray], float]:
    """m per comparison (those `trained`) and the share of matches, u fixed.

    `matrix` holds one pattern per row (a gamma per comparison, MISSING where
    not comparable), `counts` how many pairs show it. The share is over
    `population` pairs (default: the pairs given); the others are taken as
    non-matches. With u measured on random pairs, the share must be over all
    record pairs, not over the candidates: the candidates hold the namesakes
    that random pairs hold, and a share among candidates would call them matches.
    `evidence` (per pattern, natural log of m/u) is what comparisons not trained
    here but already estimated say about each pattern.
    """
    population = float(counts.sum()) if population is None else population
    m = [level_m.copy() for level_m in m_start]
    share = share_start
    log_u = [np.log(level_u) for level_u in u]
    for _ in range(EM_ITERATIONS):
        log_match = np.full(len(counts), math.log(share))
        log_non_match = np.full(len(counts), math.log(1 - share))
        if evidence is not None:
            log_match += evidence
        for index, is_trained in enumerate(trained):
            if not is_trained:
                continue
            gamma = matrix[:, index]
            seen = gamma != MISSING
            log_match[seen] += np.log(m[index])[gamma[seen]]
            log_non_match[seen] += log_u[index][gamma[seen]]
        posterior = 1.0 / (1.0 + np.exp(np.clip(log_non_match - log_match, -700, 700)))
        expected = counts * posterior
        new_share = float(expected.sum() / population)
        change = abs(new_share - share)
        share = min(max(new_share, FLOOR), 1 - FLOOR)
        for index, is_trained in enumerate(trained):
            if not is_trained:
                continue
            gamma = matrix[:, index]
            seen = gamma != MISSING
            per_level = np.bincount(gamma[seen], weights=expected[seen], minlength=len(m[index]))
            if per_level.sum() > 0:
                new_m = np.maximum(per_level / per_level.sum(), FLOOR)
                change = max(change, float(np.abs(new_m - m[index]).max()))
                m[index] = new_m / new_m.sum()
        if change < EM_TOLERANCE:
            break
    return m, share


def _steadied_m(expected: np.ndarray, matches: float, levels: int) -> np.ndarray:
    """EM's expected matches per level, steadied by the starting m counted as PRIOR_MATCHES matches."""
    m = (expected + PRIOR_MATCHES * starting_m(levels)) / (matches + PRIOR_MATCHES)
    return np.clip(m, FLOOR, 1 - FLOOR)


def contact_evidence(
    matrix: np.ndarray,
    comparisons: Sequence[Comparison],
    m: Sequence[np.ndarray],
    u: dict[str, list[float]],
    u_given_surname: dict[str, list[float]],
) -> np.ndarray:
    """Per pattern, the natural log of m/u summed over the contact comparisons; a household
    field of a pair that may be relatives (one surname, no agreeing first name) by its u
    among relatives, as scoring weighs it."""
    position = {c.name: index for index, c in enumerate(comparisons)}
    relatives = np.zeros(len(matrix), dtype=bool)
    test = relatives_test(list(comparisons))
    if test is not None:
        relatives = np.isin(matrix[:, position[test.surname.name]], test.surname_levels)
        if test.first_name is not None:
            relatives &= ~np.isin(matrix[:, position[test.first_name.name]], test.first_name_levels)
    evidence = np.zeros(len(matrix))
    for index, comparison in enumerate(comparisons):
        if not comparison.contact:
            continue
        gamma = matrix[:, index]
        seen = gamma != MISSING
        plain = np.log(m[index]) - np.log(np.asarray(u[comparison.name]))
        ratio = plain[np.where(seen, gamma, 0)]
        if comparison.name in u_given_surname:
            given = np.log(m[index]) - np.log(np.asarray(u_given_surname[comparison.name]))
            ratio = np.where(relatives, given[np.where(seen, gamma, 0)], ratio)
        evidence += np.where(seen, ratio, 0.0)
    return evidence


def trained_comparisons(rule: BlockingRule, comparisons: Sequence[Comparison]) -> list[bool]:
    """Which comparisons a rule's pairs can teach m: not those it blocks on (its
    pairs agree on them by construction), and when it blocks on a household
    key (a shared inbox, phone or address) none of the household comparisons:
    among such pairs the non-matches are relatives, who share them too."""
    blocked = {comparison_of_key(key) for key in rule.keys}
    by_name = {c.name: c for c in comparisons}
    if any(name in by_name and by_name[name].household for name in blocked):
        blocked |= {c.name for c in comparisons if c.household}
    return [c.name not in blocked for c in comparisons]


def starting_m(levels: int) -> np.ndarray:
    """Where EM starts: most matches agree exactly, few differ."""
    start = np.array([0.8 * 0.5**i for i in range(levels - 1)] + [0.05])
    return start / start.sum()


def train(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    comparisons: Sequence[Comparison],
    rules: Sequence[BlockingRule],
    max_records: int,
    u_sample_pairs: int,
    em_max_pairs: int,
) -> TrainedModel:
    """Estimate the model's parameters from the lookup's records."""
    records = con.execute(f"SELECT count(*) FROM {lookup.sql}").fetchone()[0]
    all_pairs = max(records * (records - 1) / 2, 1.0)
    u = estimate_u(con, lookup, comparisons, u_sample_pairs)
    u_given_surname = estimate_u_given_surname(con, lookup, comparisons, u, max_records, u_sample_pairs)
    u_arrays = [np.asarray(u[c.name]) for c in comparisons]
    # Per-rule EM only teaches contact fields (the pooled EM below teaches the rest):
    # rules that train none of them are counted, not sampled.
    teaching = [
        rule
        for rule in rules
        if any(t and c.contact for t, c in zip(trained_comparisons(rule, comparisons), comparisons))
    ]
    pair_counts, patterns = training_patterns(con, lookup, comparisons, rules, max_records, em_max_pairs, teaching)
    sums = [np.zeros(len(c.levels)) for c in comparisons]
    weights = [0.0 for _ in comparisons]
    trained_by: list[list[str]] = [[] for _ in comparisons]
    expected_matches: dict[str, float] = {}
    for rule in rules:
        if rule.name not in patterns:
            continue
        matrix, counts = patterns[rule.name]
        trained = trained_comparisons(rule, comparisons)
        m, share = expectation_maximisation(
            matrix, counts, u_arrays, trained, [starting_m(len(c.levels)) for c in comparisons]
        )
        matches = share * pair_counts[rule.name]
        expected_matches[rule.name] = matches
        sampled_matches = share * counts.sum()
        for index, is_trained in enumerate(trained):
            if is_trained and (matrix[:, index] != MISSING).any():
                sums[index] += m[index] * sampled_matches
                weights[index] += sampled_matches
                trained_by[index].append(rule.name)
    # The person's own fields (names, birth date, identifiers) learn m from the candidate
    # pairs of all rules together: a rule's own pairs are those whose blocked fields are
    # intact, and where a record's errors are not independent (one corrupted field per
    # duplicate, as in RLdata) that leaves the other fields' errors over-represented.
    # Contact fields (email, phone, address) keep the per-rule estimate: the union holds
    # families sharing them, who would pass for matches.
    # POOLED_RULES x em_max_pairs pairs at most: the rules' pair counts bound the union's from above
    sampled_part = min(1.0, POOLED_RULES * em_max_pairs / max(sum(pair_counts.values()), 1))
    matrix, counts = union_patterns(con, lookup, comparisons, rules, max_records, sampled_part)
    prior_matches = None
    if len(counts):
        personal = [not c.contact for c in comparisons]
        # The contact fields, as their per-rule EM estimated them, are evidence here: a
        # person's records that differ on a name or the birth date but share an inbox
        # are told from namesakes by it (weighed as among relatives where the pair could
        # be a family's), so m learns that married names and typos happen.
        contact_m = [_steadied_m(sums[i], weights[i], len(c.levels)) for i, c in enumerate(comparisons)]
        evidence = contact_evidence(matrix, comparisons, contact_m, u, u_given_surname)
        # The share is over all record pairs (the sample's part of them): EM starts
        # from one match per two records.
        m_union, share = expectation_maximisation(
            matrix, counts, u_arrays, personal, [starting_m(len(c.levels)) for c in comparisons],
            share_start=min(0.5, records / (2 * all_pairs)), population=all_pairs * sampled_part,
            evidence=evidence,
        )  # fmt: skip
        prior_matches = share * all_pairs
        sampled_matches = share * all_pairs * sampled_part
        for index, is_personal in enumerate(personal):
            if is_personal and (matrix[:, index] != MISSING).any():
                sums[index] = m_union[index] * sampled_matches
                weights[index] = sampled_matches
                trained_by[index] = ["all blocking rules"]
    parameters = []
    for index, comparison in enumerate(comparisons):
        m = _steadied_m(sums[index], weights[index], len(comparison.levels))
        parameters.append(
            ComparisonParameters(
                comparison=comparison.name,
                levels=comparison.level_names,
                m=[float(x) for x in m],
                u=u[comparison.name],
                trained_by=trained_by[index],
                u_given_surname=u_given_surname.get(comparison.name),
            )
        )
    expected = prior_matches if prior_matches is not None else max(expected_matches.values(), default=1.0)
    prior = min(max(expected / all_pairs, FLOOR), 0.5)
    return TrainedModel(prior, parameters, pair_counts, expected_matches)
