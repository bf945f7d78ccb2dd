"""Expectation-maximisation of m (and the share of matches) with u held fixed.

EM runs in numpy on the distinct comparison patterns and their counts (a few
thousand rows), not on the pairs themselves; a starting m counted as
`PRIOR_MATCHES` matches steadies what it learns from few pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cdm_assets.domain.identity.match_model.comparisons import (
    MISSING,
    Comparison,
    relatives_test,
)

EM_ITERATIONS = 100
EM_TOLERANCE = 1e-6
# Probabilities are kept off 0 and 1 so that every level has a finite weight.
FLOOR = 1e-7
# How many matching pairs the starting m counts for against EM's estimate: it
# steers a model trained on a handful of records and vanishes on real volumes.
PRIOR_MATCHES = 10


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


def steadied_m(expected: np.ndarray, matches: float, levels: int) -> np.ndarray:
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


def starting_m(levels: int) -> np.ndarray:
    """Where EM starts: most matches agree exactly, few differ."""
    start = np.array([0.8 * 0.5**i for i in range(levels - 1)] + [0.05])
    return start / start.sum()
