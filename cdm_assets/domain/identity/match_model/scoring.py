"""Scoring candidate pairs with a trained match model.

A pair's match weight is the prior's log-odds plus, per comparison, the
log₂(m/u) of the level it reaches; on an exact level the u of the shared
value itself is used (term frequency: two records both named "Jansen" say
less than two named "Wijnaldum"). The match probability is 2^w / (1 + 2^w).
A pair that clearly differs on a `cannot_link` field (its `different` level)
is never linked by the model, whatever else it shares: a shared inbox with
two first names is a household, not a person.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.match_keys import key_column
from cdm_assets.domain.identity.match_model.blocking import BlockingRule
from cdm_assets.domain.identity.match_model.comparisons import (
    MISSING,
    PRIOR_PAIRS,
    SURNAME,
    Comparison,
    relatives_test,
)
from cdm_assets.domain.identity.match_model.training import ComparisonParameters
from cdm_assets.domain.sql import SCRATCH, TableName, create_table, in_sample, quote_ident, sample_threshold, sql_string


@dataclass(frozen=True)
class ValueFrequencies:
    """What the model measured on the records it was trained on, beside m and u: per
    frequency-weighted comparison the u of each value some records share and of a value
    held once (`table`: comparison, value, u; value NULL for the one holder), and how
    much a shared surname says about the first name (`first_name_given_surname`).

    They are part of the model, fixed until it is retrained: a pair's weight then
    depends on its two records alone, so a run that scores only the pairs a batch
    touches ends where scoring every pair would."""

    table: TableName
    one_holder_u: Mapping[str, float]
    first_name_given_surname: float = 1.0


@dataclass(frozen=True)
class ScoringModel:
    comparisons: tuple[Comparison, ...]
    parameters: tuple[ComparisonParameters, ...]
    prior: float
    threshold: float
    blocking: tuple[BlockingRule, ...]
    cannot_link: tuple[str, ...]
    # Lookup columns on which one customer may not hold two values: weak links
    # that would join two come out (see `personal_columns`).
    conflict_columns: tuple[str, ...] = ()
    frequencies: ValueFrequencies | None = None  # None: no exact agreement weighs its value

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1 - self.prior))


# A person rarely holds two values of a field when, by the model, fewer than this
# share of a person's record pairs differ on it.
PERSONAL_MAX_M = 0.01
# The comparisons whose lookup column (its match key) is checked for such conflicts.
CONFLICT_COMPARISONS = ("birth_date", "email", "phone")


def personal_columns(parameters: Sequence[ComparisonParameters], cannot_link: Sequence[str]) -> tuple[str, ...]:
    """Lookup columns whose two values in one customer mean two people: the birth date
    when it is a cannot-link field, and any contact key or identifier that, in this
    data, one person's records almost never hold two of (m of `different` below
    PERSONAL_MAX_M). Where people do keep several phones, the phone is no such column."""
    return tuple(
        key_column(p.comparison)
        for p in parameters
        if (p.comparison in CONFLICT_COMPARISONS or p.comparison.startswith("identifier:"))
        and ((p.comparison == "birth_date" and p.comparison in cannot_link) or p.m[-1] < PERSONAL_MAX_M)
    )


def weight_column(comparison: Comparison) -> str:
    return f"weight_{comparison.slug}"


def _weight_sql(
    comparison: Comparison,
    parameters: ComparisonParameters,
    frequency_alias: str | None,
    unlisted_u: float | None,
    surname_agrees: str,
) -> str:
    """The comparison's weight for a pair, from its gamma column; an exact agreement on a
    value not listed in the frequency table has u `unlisted_u` (one holder). A household
    field beside an agreeing surname (`surname_agrees`, SQL) weighs by its u among relatives."""
    plain = _levels_sql(comparison, parameters.m, parameters.u, frequency_alias, unlisted_u)
    if parameters.u_given_surname is None:
        return plain
    # among relatives a shared value is no rarity: its u is never below the level's
    given = _levels_sql(comparison, parameters.m, parameters.u_given_surname, frequency_alias, unlisted_u, floor=True)
    return f"CASE WHEN {surname_agrees} THEN {given} ELSE {plain} END"


def _levels_sql(
    comparison: Comparison,
    m: Sequence[float],
    u: Sequence[float],
    frequency_alias: str | None,
    unlisted_u: float | None,
    floor: bool = False,
) -> str:
    whens = [f"WHEN {MISSING} THEN 0.0"]
    for level, (m_level, u_level) in enumerate(zip(m, u)):
        if level == 0 and frequency_alias is not None:
            # log2(m / u_value): the share of records holding the shared value is its u
            value_u = f"greatest({frequency_alias}.tf, {u_level!r})" if floor else f"{frequency_alias}.tf"
            fallback = (
                math.log2(m_level / max(unlisted_u or 0.0, u_level))
                if floor
                else (math.log2(m_level / unlisted_u) if unlisted_u else math.log2(m_level / u_level))
            )
            exact = f"coalesce({math.log2(m_level)!r} - log2({value_u}), {fallback!r})"
            whens.append(f"WHEN 0 THEN {exact}")
        else:
            whens.append(f"WHEN {level} THEN {math.log2(m_level / u_level)!r}")
    return f"CASE {comparison.column} {' '.join(whens)} END"


def _relatives_possible(comparisons: Sequence[Comparison]) -> str:
    """SQL: the pair may be two of one household (see `relatives_test`), whose household
    fields are weighed by their u among relatives."""
    test = relatives_test(comparisons)
    return test.sql() if test is not None else "false"


def _given_surname_sql(comparison: Comparison, comparisons: Sequence[Comparison], factor: float) -> str:
    """The first name's weight beside an agreeing surname, less log2 of how much more often two
    different people with one surname share a first name than two people at random."""
    surname = next((c for c in comparisons if c.name == SURNAME), None)
    if comparison.name != "first_name" or surname is None or factor <= 1.0:
        return ""
    return (
        f" - CASE WHEN {comparison.column} IN (0, 1) AND {surname.column} IN (0, 1) "
        f"THEN {math.log2(factor)!r} ELSE 0.0 END"
    )


# About how many same-surname record pairs measure `first_name_given_surname`.
GIVEN_SURNAME_SAMPLE_PAIRS = 1_000_000


def first_name_given_surname(
    con: duckdb.DuckDBPyConnection, lookup: TableName, comparisons: Sequence[Comparison], max_records: int
) -> float:
    """How much more often two different people who share a surname share a first name than
    two records at random (1.0: as often, or not measurable here). First and last names are
    not independent where names come from one language or one family, while Fellegi-Sunter
    adds their evidence as if they were. Two records of one surname whose birth dates clearly
    differ are taken as two people (relatives, namesakes, parent and child of one name); a
    deterministic sample of records gives about GIVEN_SURNAME_SAMPLE_PAIRS such pairs, and
    PRIOR_PAIRS random pairs steady the share, so a small sample says "independent"."""
    by_name = {c.name: c for c in comparisons}
    first, birth = by_name.get("first_name"), by_name.get("birth_date")
    if first is None or birth is None or SURNAME not in by_name:
        return 1.0
    usable = f"""
        SELECT * FROM {lookup.sql}
        WHERE last_name_key IS NOT NULL AND first_name_key IS NOT NULL AND birth_date_key IS NOT NULL
    """
    blocks = f"SELECT last_name_key, count(*) AS n FROM ({usable}) GROUP BY ALL HAVING n BETWEEN 2 AND $max_records"
    agreeing, records, block_pairs = con.execute(
        f"""
        SELECT (SELECT sum(n * (n - 1))::DOUBLE FROM (SELECT count(*) AS n FROM ({usable}) GROUP BY first_name_key)),
               (SELECT count(*)::DOUBLE FROM ({usable})),
               (SELECT sum(n * (n - 1) / 2)::DOUBLE FROM ({blocks}))
        """,
        {"max_records": max_records},
    ).fetchone()
    if not block_pairs or not records or records < 2 or not agreeing:
        return 1.0
    plain = agreeing / (records * (records - 1))
    share = min(1.0, math.sqrt(GIVEN_SURNAME_SAMPLE_PAIRS / block_pairs))
    same, pairs = con.execute(
        f"""
        WITH sampled AS (
            SELECT u.* FROM ({usable}) u JOIN ({blocks}) USING (last_name_key)
            WHERE {in_sample("share", "u.record_key", "'given-surname'")}
        )
        SELECT count(*) FILTER (a.first_name_key = b.first_name_key)::DOUBLE, count(*)::DOUBLE
        FROM sampled a JOIN sampled b ON a.last_name_key = b.last_name_key AND a.record_key < b.record_key
        WHERE {birth.gamma_sql()} = {birth.different}
        """,
        {"max_records": max_records, "share": sample_threshold(share)},
    ).fetchone()
    given = (same + PRIOR_PAIRS * plain) / (pairs + PRIOR_PAIRS)
    return given / plain


MODEL_RULE_ORDER = 10_000  # model links sort after every hard rule
ONE_HOLDER = None  # the `value` of a frequency row that holds the u of a value held once


def measure_value_frequencies(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    comparisons: Sequence[Comparison],
    max_records: int,
    table: TableName,
) -> float:
    """Write `table` (comparison, value, u): the u of each value some records share, per
    comparison with a frequency column, steadied by the typical u, and (value NULL) the u
    of a value held by one record; returns `first_name_given_surname`."""
    con.execute(f"{create_table(table)} (comparison VARCHAR NOT NULL, value VARCHAR, u DOUBLE NOT NULL)")
    for comparison in comparisons:
        if comparison.frequency_column is None:
            continue
        holders = "greatest(count(DISTINCT first_name_root), 1)" if comparison.counts_holders else "count(*)"
        present = con.execute(f"SELECT count(*) FROM {lookup.sql} r WHERE {comparison.present('r')}").fetchall()[0][0]
        column = quote_ident(comparison.frequency_column)
        params = {
            "comparison": comparison.name,
            "prior_pairs": PRIOR_PAIRS,
            "typical_u": comparison.levels[0].typical_u,
            "present": present,
        }
        # Only values with more than one holder are listed: a value two records agree on is
        # held at least twice, and one held by one person has the u of a single holder.
        # That keeps the table (and the joins) small: most emails and phones are one person's.
        con.execute(
            f"""
            INSERT INTO {table.sql}
            SELECT $comparison, {column}::VARCHAR,
                   ({holders} - 1 + $prior_pairs * $typical_u) / ($present - 1 + $prior_pairs)
            FROM {lookup.sql} WHERE {column} IS NOT NULL GROUP BY {column} HAVING {holders} > 1
            UNION ALL
            SELECT $comparison, NULL, $prior_pairs * $typical_u / (greatest($present, 1) - 1 + $prior_pairs)
            """,
            params,
        )
    return first_name_given_surname(con, lookup, comparisons, max_records)


def build_model_links(
    con: duckdb.DuckDBPyConnection,
    lookup: TableName,
    model: ScoringModel,
    max_records: int,
    links: TableName,
    candidates: TableName | None = None,
) -> dict[str, float]:
    """Write `links` (key_a, key_b, blocking_rule, match_probability, match_weight,
    weight_<comparison>...) for the candidate pairs the model links; returns counts
    of candidate pairs, pairs over the threshold and pairs held apart by cannot-link,
    and the first name's dependence on the surname (`first_name_given_surname`).

    The candidate pairs (key_a, key_b, blocking_rule) are formed here, or taken from
    `candidates` when given (the pairs a batch touched)."""
    formed = candidates is None
    if candidates is None:
        candidates = TableName(SCRATCH, f"{links.name}_candidates")
        con.execute(
            f"{create_table(candidates)} AS {model_candidates_sql(lookup, model)}", {"max_records": max_records}
        )
    scored = TableName(SCRATCH, f"{links.name}_scored")  # in memory: only the links are kept
    con.execute(f"{create_table(scored)} AS {_scored_pairs_sql(lookup, model, candidates)}")
    if formed:
        con.execute(f"DROP TABLE {candidates.sql}")
    threshold_weight = math.log2(model.threshold / (1 - model.threshold))
    counts = con.execute(
        f"""
        SELECT count(*), count(*) FILTER (match_weight >= $w),
               count(*) FILTER (match_weight >= $w AND held_apart)
        FROM {scored.sql}
        """,
        {"w": threshold_weight},
    ).fetchone()
    con.execute(
        f"""
        {create_table(links)} AS
        SELECT key_a, key_b, blocking_rule, $rule_order AS rule_order, weak,
               1.0 / (1.0 + pow(2.0, -match_weight)) AS match_probability,
               match_weight, {", ".join(weight_column(c) for c in model.comparisons)}
        FROM {scored.sql}
        WHERE match_weight >= $w AND NOT held_apart
        """,
        {"w": threshold_weight, "rule_order": MODEL_RULE_ORDER},
    )
    con.execute(f"DROP TABLE {scored.sql}")
    return {
        "candidate_pairs": counts[0],
        "over_threshold": counts[1],
        "held_apart": counts[2],
        # how much more often one surname goes with one first name than chance (1.0: independent)
        "first_name_given_surname": round(model.frequencies.first_name_given_surname if model.frequencies else 1.0, 3),
    }


def model_candidates_sql(lookup: TableName, model: ScoringModel) -> str:
    """SELECT key_a, key_b, blocking_rule: the pairs of each blocking rule, once per rule
    (`$max_records` caps a block)."""
    return " UNION ALL ".join(
        f"SELECT key_a, key_b, {index}::SMALLINT AS blocking_rule FROM ({rule.pairs_sql(lookup)})"
        for index, rule in enumerate(model.blocking)
    )


def record_blocks_sql(lookup: TableName, model: ScoringModel, columns: tuple[str, ...] = ()) -> str:
    """SELECT blocking_rule, record_key, block (and `columns`): each record's block under each
    blocking rule (a record missing one of a rule's keys has none)."""
    extra = "".join(f", {quote_ident(c)}" for c in columns)
    return " UNION ALL ".join(
        f"SELECT {index}::SMALLINT AS blocking_rule, record_key, block{extra} "
        f"FROM ({rule.keyed_sql(lookup, ('record_key', *columns))})"
        for index, rule in enumerate(model.blocking)
    )


def _scored_pairs_sql(lookup: TableName, model: ScoringModel, candidates: TableName) -> str:
    """Each candidate pair once (its first blocking rule), compared field by field and weighed:
    per comparison its weight, the total match weight, whether cannot-link holds it apart and
    whether it rests on a fuzzy, shortened or missing first name (weak)."""
    weighted = [c for c in model.comparisons if c.frequency_column is not None] if model.frequencies else []
    aliases = {c.name: f"f{index}" for index, c in enumerate(weighted)}
    joins = " ".join(
        f"LEFT JOIN (SELECT value, u AS tf FROM {model.frequencies.table.sql} WHERE comparison = {sql_string(c.name)} "
        f"AND value IS NOT NULL) {aliases[c.name]} ON {c.column} = 0 "
        f"AND {aliases[c.name]}.value = a.{quote_ident(c.frequency_column)}::VARCHAR"
        for c in weighted
    )
    gammas = ", ".join(f"{c.gamma_sql()} AS {c.column}" for c in model.comparisons)
    frequency_columns = "".join(
        f"a.{column}, " for column in dict.fromkeys(quote_ident(c.frequency_column) for c in weighted)
    )
    surname_agrees = _relatives_possible(model.comparisons)
    one_holder = model.frequencies.one_holder_u if model.frequencies else {}
    given_surname = model.frequencies.first_name_given_surname if model.frequencies else 1.0
    weights = [
        f"{_weight_sql(c, p, aliases.get(c.name), one_holder.get(c.name), surname_agrees)}"
        f"{_given_surname_sql(c, model.comparisons, given_surname)} AS {weight_column(c)}"
        for c, p in zip(model.comparisons, model.parameters)
    ]
    total = " + ".join([repr(model.prior_weight), *(weight_column(c) for c in model.comparisons)])
    held_apart = (
        " OR ".join(f"{c.column} = {c.different}" for c in model.comparisons if c.name in model.cannot_link) or "false"
    )
    first = next((c for c in model.comparisons if c.name == "first_name"), None)
    weak = f"{first.column} NOT IN (0, 1)" if first is not None else "false"
    return f"""
        WITH pairs AS (
            SELECT key_a, key_b, min(blocking_rule) AS blocking_rule FROM {candidates.sql} GROUP BY key_a, key_b
        ),
        compared AS (
            SELECT pair.key_a, pair.key_b, pair.blocking_rule, {frequency_columns}{gammas}
            FROM pairs pair
            JOIN {lookup.sql} a ON a.record_key = pair.key_a
            JOIN {lookup.sql} b ON b.record_key = pair.key_b
        ),
        weighed AS (
            SELECT key_a, key_b, blocking_rule, {held_apart} AS held_apart, {weak} AS weak, {", ".join(weights)}
            FROM compared AS a {joins}
        )
        SELECT *, {total} AS match_weight FROM weighed
    """
