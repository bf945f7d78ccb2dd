"""Match rules as SQL: each rule renders to one SELECT of the record pairs it links.

A rule blocks on `exact` keys (records sharing every key value are compared)
and tests each pair of a block with small conditions that render their own
SQL: `NotDifferent` (a `must_not_differ` key), `WithinEdits` (a `max_edits`
key) and, for rules that compare names, `SimilarName` (a `similar` key and
its Jaro-Winkler threshold; a nickname of the same name counts as identical).
Key values shared by more than `max_records_per_key` records link nothing:
placeholders such as `test@test.com` or a shop's own phone number must not
chain strangers into one customer.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdm_assets.domain.identity.match_keys import key_column
from cdm_assets.domain.plan import MatchRule
from cdm_assets.domain.sql import TableName, quote_ident, sql_string
from cdm_assets.domain.vocabulary import match_key

# How alike the first names of everybody sharing a key must be for the key to
# count as one person's own (so that a record without a name may use it).
PRIVATE_NAME_SIMILARITY = 0.9


def is_placeholder(value: str, key: str, placeholders: TableName) -> str:
    """Whether `value` (an expression of the key's lookup column) is listed in `placeholders`."""
    return f"{value} IN (SELECT value FROM {placeholders.sql} WHERE key_column = {sql_string(key_column(key))})"


def without_placeholders(key: str, placeholders: TableName) -> str:
    """The key's lookup column, NULL where its value is listed in `placeholders`."""
    column = quote_ident(key_column(key))
    return f"CASE WHEN {is_placeholder(column, key, placeholders)} THEN NULL ELSE {column} END"


_BLOCK = "_block"  # the column of a rule's keyed records holding the hash of their exact keys
# The lookup columns a rule that compares names needs besides its own keys.
_COMPARED = ("record_key", "first_name_key", "first_name_root", "last_name_key", "last_name_core", "birth_date")


@dataclass(frozen=True)
class NotDifferent:
    """A pair condition: the key holds no two different values (a placeholder never counts as one)."""

    key: str

    def pair_sql(self, placeholders: TableName | None) -> str:
        column = quote_ident(key_column(self.key))
        # checked only for the few pairs whose values differ
        placeholder = (
            f" OR {is_placeholder(f'a.{column}', self.key, placeholders)}"
            f" OR {is_placeholder(f'b.{column}', self.key, placeholders)}"
            if placeholders is not None and match_key(self.key).personal
            else ""
        )
        return f"(a.{column} IS NULL OR b.{column} IS NULL OR a.{column} = b.{column}{placeholder})"


@dataclass(frozen=True)
class WithinEdits:
    """A pair condition: the key's values are at most `edits` typos apart, and for keys handed
    out in sequence not neighbours (one apart in the last place is a neighbour, not a typo)."""

    key: str
    edits: int

    def pair_sql(self, placeholders: TableName | None = None) -> str:
        a, b = (f"{side}.{quote_ident(key_column(self.key))}::VARCHAR" for side in "ab")
        within = f"damerau_levenshtein({a}, {b}) <= {int(self.edits)}"
        if not match_key(self.key).numbered:
            return within
        # CASE: the sequence test (regular expressions) only for the few pairs within reach
        return f"CASE WHEN {within} THEN NOT {_in_sequence(a, b)} ELSE false END"


@dataclass(frozen=True)
class SimilarName:
    """A name condition: the first (or last) names reach `threshold`, or one is missing on a
    private key (one every record sharing it agrees on)."""

    key: str  # first_name | last_name
    threshold: float

    def columns_sql(self, index: int) -> str:
        return f"{_similarity_sql(self.key)} AS _sim{index}, {_missing_sql(self.key)} AS _missing{index}"

    def condition_sql(self, index: int) -> str:
        private = "_private_last_name" if self.key == "last_name" else "_private"
        return f"(_sim{index} >= {float(self.threshold)!r} OR ({private} AND _missing{index}))"


def pair_conditions(rule: MatchRule) -> list[NotDifferent | WithinEdits]:
    """The rule's conditions on a pair of one block, in the order they are tested."""
    return [
        *(NotDifferent(key) for key in rule.must_not_differ),
        *(WithinEdits(key, edits) for key, edits in rule.max_edits.items()),
    ]


def name_conditions(rule: MatchRule) -> list[SimilarName]:
    return [SimilarName(key, threshold) for key, threshold in rule.similar.items()]


def rule_blocks_sql(rule: MatchRule, records: TableName, columns: tuple[str, ...] = ("record_key",)) -> str:
    """SELECT `columns` and `block` (the hash of the exact keys the rule blocks on) of the
    `records` (the lookup, or rows with its columns) that the rule can compare at all."""
    exact = [quote_ident(key_column(k)) for k in rule.exact]
    not_null = " AND ".join(f"{c} IS NOT NULL" for c in [*exact, *_near_columns(rule)])
    selected = ", ".join(quote_ident(c) for c in columns)
    return f"SELECT {selected}, hash({', '.join(exact)}) AS block FROM {records.sql} WHERE {not_null}"


def shared_alone_keys(rule: MatchRule) -> list[str]:
    """The exact keys of the rule that link nothing when their value alone is shared by more
    than `max_records_per_key` records: personal keys of a rule blocking on several keys."""
    return [k for k in rule.exact if match_key(k).personal] if len(rule.exact) > 1 else []


def _near_columns(rule: MatchRule) -> list[str]:
    return [quote_ident(key_column(k)) for k in rule.max_edits]


def rule_sql(
    rule: MatchRule, lookup: TableName, placeholders: TableName | None = None, only_blocks: str | None = None
) -> str:
    """One rule as a SELECT of (key_a, key_b, score, weak); `$max_records` is max_records_per_key.
    With `only_blocks` (a SELECT of block hashes as `rule_blocks_sql` makes them), only the
    pairs of those blocks, each block judged on all its records.

    Blocks are found with GROUP BY, not window functions: most key values
    belong to one record and are dropped before any pair is formed.
    `placeholders` (key_column, value) lists the placeholder values of
    placeholder-prone keys; they cannot contradict under `must_not_differ`.
    A link is `weak` when it rests on a fuzzy or a missing name.
    """
    exact = [quote_ident(key_column(k)) for k in rule.exact]
    near = _near_columns(rule)
    compared = [quote_ident(c) for c in _COMPARED] if rule.similar else ["record_key"]
    selected = dict.fromkeys([*compared, *exact, *near])
    selected.update(dict.fromkeys(quote_ident(key_column(key)) for key in rule.must_not_differ))
    not_null = " AND ".join(f"{c} IS NOT NULL" for c in [*exact, *near])
    # Blocks are grouped and joined on one hash of the exact keys, far cheaper
    # than the strings themselves; the pairs still compare the keys, so a hash
    # collision can only merge two blocks' statistics, never link two records.
    keyed = f"SELECT {', '.join(selected)}, hash({', '.join(exact)}) AS {_BLOCK} FROM {lookup.sql} WHERE {not_null}"
    # A value shared by too many records is a placeholder or a shared inbox:
    # each such key counts on its own, not just the combination. Names, dates
    # and postcodes are shared by many people by nature.
    shared_alone = "".join(
        f" AND {quote_ident(key_column(k))} NOT IN (SELECT {quote_ident(key_column(k))} FROM keyed "
        f"GROUP BY {quote_ident(key_column(k))} HAVING count(*) > $max_records)"
        for k in shared_alone_keys(rule)
    )
    if only_blocks is not None:
        shared_alone += f" AND {_BLOCK} IN ({only_blocks})"
    join = " AND ".join(f"a.{c} = b.{c}" for c in [_BLOCK, *exact])
    conditions = ["a.record_key < b.record_key", *(c.pair_sql(placeholders) for c in pair_conditions(rule))]
    if not rule.similar:
        return _key_pairs_sql(keyed, shared_alone, join, conditions)
    return _name_pairs_sql(name_conditions(rule), keyed, shared_alone, join, conditions)


def _key_pairs_sql(keyed: str, shared_alone: str, join: str, pair_conditions: list[str]) -> str:
    """A rule without names to compare: every pair of a block that meets the conditions, never weak."""
    return f"""
        WITH keyed AS NOT MATERIALIZED ({keyed}),
        blocks AS (
            SELECT {_BLOCK} FROM keyed
            WHERE true{shared_alone}
            GROUP BY {_BLOCK}
            HAVING count(*) BETWEEN 2 AND $max_records
        ),
        eligible AS MATERIALIZED (SELECT keyed.* FROM keyed JOIN blocks USING ({_BLOCK}))
        SELECT a.record_key AS key_a, b.record_key AS key_b, NULL::DOUBLE AS score, false AS weak
        FROM eligible a JOIN eligible b ON {join}
        WHERE {" AND ".join(pair_conditions)}
    """


def _name_pairs_sql(
    names: list[SimilarName], keyed: str, shared_alone: str, join: str, pair_conditions: list[str]
) -> str:
    """A rule with `similar` names: the pairs of a block whose names are alike enough (or
    missing on a private key), scored by the weaker similarity."""
    similarities = [name.columns_sql(i) for i, name in enumerate(names)]
    # A missing name cannot contradict, but only on a private key: one that
    # every record sharing it agrees on (one first name, last name and birth date).
    conditions = [name.condition_sql(i) for i, name in enumerate(names)]
    sims = [f"_sim{i}" for i in range(len(names))]
    weak = f"NOT coalesce({' AND '.join(f'{s} = 1.0' for s in sims)}, false)"
    return f"""
        WITH keyed AS NOT MATERIALIZED ({keyed}),
        blocks AS (
            -- min = max: at most one birth date (cheaper than count(DISTINCT))
            SELECT {_BLOCK}, min(birth_date) IS NOT DISTINCT FROM max(birth_date) AS _one_birth_date,
                   min(first_name_key) AS _usual_first_name, min(last_name_core) AS _usual_last_name
            FROM keyed
            WHERE true{shared_alone}
            GROUP BY {_BLOCK}
            HAVING count(*) BETWEEN 2 AND $max_records
        ),
        members AS (
            -- the full name only for the records of a block, not every keyed record
            SELECT keyed.*, blocks._one_birth_date, blocks._usual_first_name, blocks._usual_last_name,
                   first_name_key || last_name_key AS _full_name_key
            FROM keyed JOIN blocks USING ({_BLOCK})
        ),
        private_blocks AS (
            -- private: everybody sharing the key has one birth date and (typos
            -- aside) one first name and one last name; a missing last name
            -- only needs the one last name. CASE: Jaro-Winkler only where a
            -- name is not the block's usual one.
            SELECT {_BLOCK},
                   bool_and(_one_birth_date AND CASE WHEN first_name_key IS NULL OR first_name_key = _usual_first_name
                       THEN true ELSE jaro_winkler_similarity(first_name_key, _usual_first_name)
                       >= {PRIVATE_NAME_SIMILARITY} END)
                   AND bool_and(_same_last_name) AS _private,
                   bool_and(_same_last_name) AS _private_last_name
            FROM (
                SELECT *, CASE WHEN last_name_core IS NULL OR last_name_core = _usual_last_name THEN true
                       ELSE jaro_winkler_similarity(last_name_core, _usual_last_name) >= {PRIVATE_NAME_SIMILARITY}
                       END AS _same_last_name
                FROM members
            )
            GROUP BY {_BLOCK}
        ),
        eligible AS (SELECT * FROM members JOIN private_blocks USING ({_BLOCK})),
        pairs AS MATERIALIZED (
            SELECT a.record_key AS key_a, b.record_key AS key_b, a._private, a._private_last_name,
                   {", ".join(similarities)}
            FROM eligible a JOIN eligible b ON {join}
            WHERE {" AND ".join(pair_conditions)}
        )
        SELECT key_a, key_b, least({", ".join(sims)}) AS score, {weak} AS weak
        FROM pairs
        WHERE {" AND ".join(conditions)}
    """


def _in_sequence(a: str, b: str) -> str:
    """Whether two values look handed out in sequence rather than typed wrong: the
    same but for the last character, or for trailing numbers at most 5 apart (a
    family's loyalty cards L0000019 and L0000020). Two swapped last digits
    (…65 and …56, 9 or more apart) remain a typo."""
    prefix, number = "'^(.*?)[0-9]+$'", "'[0-9]+$'"
    return (
        f"coalesce(left({a}, length({a}) - 1) = left({b}, length({b}) - 1) OR (regexp_extract({a}, {prefix}, 1) = regexp_extract({b}, {prefix}, 1) "
        f"AND abs(try_cast(regexp_extract({a}, {number}) AS BIGINT) - try_cast(regexp_extract({b}, {number}) AS BIGINT)) <= 5), "
        "false)"
    )


def _similarity_sql(key: str) -> str:
    """How alike two records' first (or last) names are, 0..1.

    Equal nickname roots (or last names without particles) count as equal;
    so do names whose first and last parts together read the same ("Hans
    Dieter | Müller" and "Hans | Dieter Müller") and names written the other
    way round. Otherwise the Jaro-Winkler similarity, or for names that look
    swapped (crosswise initials agree) the better of it and the weaker of the
    two crosswise similarities, so a swap with a typo still counts.
    """
    same_root = (
        "a.first_name_root = b.first_name_root" if key == "first_name" else "a.last_name_core = b.last_name_core"
    )
    column = "first_name_key" if key == "first_name" else "last_name_key"
    straight = f"jaro_winkler_similarity(a.{column}, b.{column})"
    return (
        f"CASE WHEN {same_root} OR a._full_name_key = b._full_name_key THEN 1.0 "
        # one record swapped, the other with a first name only
        "WHEN (b.last_name_key IS NULL AND a.last_name_key = b.first_name_key) "
        "OR (a.last_name_key IS NULL AND b.last_name_key = a.first_name_key) THEN 1.0 "
        "WHEN left(a.first_name_key, 1) = left(b.last_name_key, 1) "
        "AND left(a.last_name_key, 1) = left(b.first_name_key, 1) "
        f"THEN greatest({straight}, least(jaro_winkler_similarity(a.first_name_key, b.last_name_key), "
        "jaro_winkler_similarity(a.last_name_key, b.first_name_key))) "
        f"ELSE {straight} END"
    )


def _missing_sql(key: str) -> str:
    column = "first_name_key" if key == "first_name" else "last_name_key"
    return f"(a.{column} IS NULL OR b.{column} IS NULL)"
