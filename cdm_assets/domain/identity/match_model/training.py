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
thousand rows), not on the pairs themselves. `u_probabilities` estimates u,
`expectation_maximisation` m; this module samples the patterns and puts the
model together.
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
    Comparison,
    comparisons_of_key,
)  # fmt: skip
from cdm_assets.domain.identity.match_model.expectation_maximisation import (
    FLOOR,
    contact_evidence,
    expectation_maximisation,
    starting_m,
    steadied_m,
)
from cdm_assets.domain.identity.match_model.u_probabilities import estimate_u, estimate_u_given_surname
from cdm_assets.domain.sql import TableName, sample_threshold
from cdm_assets.domain.warehouse import row_count

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
            ) GROUP BY ALL ORDER BY {columns}  -- one order on every engine: EM sums alike
            """,
            {"max_records": max_records, "sample": sample_threshold(min(1.0, max_pairs / total))},
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
        ) GROUP BY ALL ORDER BY {columns}  -- one order on every engine: EM sums alike
        """,
        {"max_records": max_records, "pair_share": sample_threshold(sample)},
    ).fetchnumpy()
    counts = np.asarray(rows.pop("n"), dtype=np.float64)
    if not len(counts):
        return np.zeros((0, len(comparisons)), dtype=np.int64), counts
    return np.column_stack([np.asarray(rows[c.column], dtype=np.int64) for c in comparisons]), counts


def trained_comparisons(rule: BlockingRule, comparisons: Sequence[Comparison]) -> list[bool]:
    """Which comparisons a rule's pairs can teach m: not those it blocks on (its
    pairs agree on them by construction), and when it blocks on a household
    key (a shared inbox, phone or address) none of the household comparisons:
    among such pairs the non-matches are relatives, who share them too. A rule that
    blocks on every one of the person's own fields it compares (names, birth date)
    teaches nothing: its pairs could be told apart by contact fields alone, and
    twins sharing a home would pass for one person whose phones differ."""
    blocked = {name for key in rule.keys for name in comparisons_of_key(key)}
    by_name = {c.name: c for c in comparisons}
    if any(name in by_name and by_name[name].household for name in blocked):
        blocked |= {c.name for c in comparisons if c.household}
    trained = [c.name not in blocked for c in comparisons]
    # names and birth date describe the person; contact fields and identifiers are held
    if not any(is_trained and not c.counts_holders for is_trained, c in zip(trained, comparisons)):
        return [False for _ in comparisons]
    return trained


@dataclass
class _MEstimates:
    """Per comparison: EM's expected matches per level, the matches they come from, and the rules that taught it."""

    sums: list[np.ndarray]
    weights: list[float]
    trained_by: list[list[str]]


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
    records = row_count(con, lookup)
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
    estimates, expected_matches = _per_rule_m(comparisons, rules, patterns, pair_counts, u_arrays)
    # POOLED_RULES x em_max_pairs pairs at most: the rules' pair counts bound the union's from above
    sampled_part = min(1.0, POOLED_RULES * em_max_pairs / max(sum(pair_counts.values()), 1))
    matrix, counts = union_patterns(con, lookup, comparisons, rules, max_records, sampled_part)
    prior_matches = None
    if len(counts):
        prior_matches = _pooled_m(
            estimates, comparisons, matrix, counts, u, u_given_surname, records, all_pairs, sampled_part
        )
    parameters = [
        ComparisonParameters(
            comparison=comparison.name,
            levels=comparison.level_names,
            m=[float(x) for x in steadied_m(estimates.sums[i], estimates.weights[i], len(comparison.levels))],
            u=u[comparison.name],
            trained_by=estimates.trained_by[i],
            u_given_surname=u_given_surname.get(comparison.name),
        )
        for i, comparison in enumerate(comparisons)
    ]
    expected = prior_matches if prior_matches is not None else max(expected_matches.values(), default=1.0)
    prior = min(max(expected / all_pairs, FLOOR), 0.5)
    return TrainedModel(prior, parameters, pair_counts, expected_matches)


def _per_rule_m(
    comparisons: Sequence[Comparison],
    rules: Sequence[BlockingRule],
    patterns: dict,
    pair_counts: dict[str, int],
    u_arrays: list[np.ndarray],
) -> tuple[_MEstimates, dict[str, float]]:
    """m by EM on each rule's own pairs, for the comparisons the rule does not block on,
    averaged over the rules weighted by their expected matches; and each rule's expected matches."""
    estimates = _MEstimates(
        [np.zeros(len(c.levels)) for c in comparisons], [0.0 for _ in comparisons], [[] for _ in comparisons]
    )
    expected_matches: dict[str, float] = {}
    for rule in rules:
        if rule.name not in patterns:
            continue
        matrix, counts = patterns[rule.name]
        trained = trained_comparisons(rule, comparisons)
        m, share = expectation_maximisation(
            matrix, counts, u_arrays, trained, [starting_m(len(c.levels)) for c in comparisons]
        )
        expected_matches[rule.name] = share * pair_counts[rule.name]
        sampled_matches = share * counts.sum()
        for index, is_trained in enumerate(trained):
            if is_trained and (matrix[:, index] != MISSING).any():
                estimates.sums[index] += m[index] * sampled_matches
                estimates.weights[index] += sampled_matches
                estimates.trained_by[index].append(rule.name)
    return estimates, expected_matches


def _pooled_m(
    estimates: _MEstimates,
    comparisons: Sequence[Comparison],
    matrix: np.ndarray,
    counts: np.ndarray,
    u: dict[str, list[float]],
    u_given_surname: dict[str, list[float]],
    records: int,
    all_pairs: float,
    sampled_part: float,
) -> float:
    """m of the person's own fields by EM on the candidate pairs of all rules together
    (replacing their per-rule estimates); returns the expected matches among all record pairs.

    A rule's own pairs are those whose blocked fields are intact, and where a record's
    errors are not independent (one corrupted field per duplicate, as in RLdata) that
    leaves the other fields' errors over-represented. Contact fields (email, phone,
    address) keep the per-rule estimate: the union holds families sharing them, who
    would pass for matches.
    """
    personal = [not c.contact for c in comparisons]
    # The contact fields, as their per-rule EM estimated them, are evidence here: a
    # person's records that differ on a name or the birth date but share an inbox
    # are told from namesakes by it (weighed as among relatives where the pair could
    # be a family's), so m learns that married names and typos happen.
    contact_m = [steadied_m(estimates.sums[i], estimates.weights[i], len(c.levels)) for i, c in enumerate(comparisons)]
    evidence = contact_evidence(matrix, comparisons, contact_m, u, u_given_surname)
    # The share is over all record pairs (the sample's part of them): EM starts
    # from one match per two records.
    m_union, share = expectation_maximisation(
        matrix, counts, [np.asarray(u[c.name]) for c in comparisons], personal,
        [starting_m(len(c.levels)) for c in comparisons],
        share_start=min(0.5, records / (2 * all_pairs)), population=all_pairs * sampled_part,
        evidence=evidence,
    )  # fmt: skip
    sampled_matches = share * all_pairs * sampled_part
    for index, is_personal in enumerate(personal):
        if is_personal and (matrix[:, index] != MISSING).any():
            estimates.sums[index] = m_union[index] * sampled_matches
            estimates.weights[index] = sampled_matches
            estimates.trained_by[index] = ["all blocking rules"]
    return share * all_pairs
