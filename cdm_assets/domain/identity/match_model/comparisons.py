"""Comparisons: how alike two records are on one field, as a level.

A comparison is a short ordered list of levels, strongest first; a pair gets
the first level whose condition holds (its *gamma*), `MISSING` when either
side has no value (a missing value is no evidence either way), and the last
level, `different`, otherwise. Each level renders to SQL over the two sides
`a` and `b` of a pair of `identity.source_lookup` rows, so the same objects
serve training, scoring and explaining.

The levels follow the record-linkage practice of Fellegi-Sunter models
(Splink's comparison libraries use the same bands): exact, equal after
normalisation (nickname roots, particles), Jaro-Winkler bands for names,
typo levels for dates and contact keys, and a level for initials.
"""

from __future__ import annotations

from dataclasses import dataclass

MISSING = -1  # gamma of a pair with a value missing on either side


@dataclass(frozen=True)
class Level:
    name: str
    condition: str  # SQL over a.<column>, b.<column>; empty for the final `different`
    # A weak prior for u, the chance two different people reach this level: it
    # weighs as `PRIOR_PAIRS` record pairs against the data's own, so it steers
    # a model trained on a handful of records and vanishes on real volumes.
    typical_u: float = 0.0


# How many record pairs the typical u of a level counts for against the data.
PRIOR_PAIRS = 10_000


@dataclass(frozen=True)
class Comparison:
    """One field compared between the two records of a pair."""

    name: str  # `first_name`, `email`, `identifier:loyalty_card`, ...
    missing: str  # SQL over `{side}`: true when that record has no value to compare
    levels: tuple[Level, ...]  # strongest first; the last is `different`
    # The lookup column whose value frequency adjusts the exact level (common
    # names weigh less than rare ones); None: no adjustment.
    frequency_column: str | None = None
    # Shared within a household (a family inbox, phone, address or surname): among
    # pairs blocked on one of these, the others agree for non-matches too.
    household: bool = False
    # A contact or identifier value belongs to the people who hold it, not to the
    # records: its u counts the distinct first names among its holders, so an
    # inbox held by one "Lucas" and a record without a name is one person's,
    # and an inbox held by Anna and Anne is a family's.
    counts_holders: bool = False

    @property
    def slug(self) -> str:
        """The name as part of a column or table name (`identifier_loyalty_card`)."""
        return self.name.replace(":", "_")

    @property
    def column(self) -> str:
        """The column name of the pair's level (`gamma_first_name`)."""
        return f"gamma_{self.slug}"

    @property
    def null_condition(self) -> str:
        """SQL: true when the pair cannot be compared on this field."""
        return f"({self.missing.format(side='a')}) OR ({self.missing.format(side='b')})"

    def present(self, alias: str) -> str:
        """SQL: true when the record `alias` has a value to compare."""
        return f"NOT ({self.missing.format(side=alias)})"

    @property
    def contact(self) -> bool:
        """A contact field (email, phone, address): shared by families, held by people."""
        return self.household and self.counts_holders

    @property
    def level_names(self) -> list[str]:
        return [level.name for level in self.levels]

    def gamma_sql(self) -> str:
        """The level of a pair: MISSING, 0 (strongest) .. len(levels)-1 (`different`)."""
        whens = " ".join(f"WHEN {level.condition} THEN {index}" for index, level in enumerate(self.levels[:-1]))
        return f"CASE WHEN {self.null_condition} THEN {MISSING} {whens} ELSE {len(self.levels) - 1} END::TINYINT"

    @property
    def different(self) -> int:
        return len(self.levels) - 1


def _null(column: str) -> str:
    return "{side}." + column + " IS NULL"


def _one_edit(column: str) -> str:
    """Damerau-Levenshtein distance ≤ 1, computed only where it can hold: lengths at
    most one apart, and (for values of eight or more characters) a Jaro similarity
    of at least 0.9 (one substitution in eight: 0.917), tests far cheaper than the
    distance that drop nearly every other pair (emails of one domain included).
    CASE, not AND: only CASE keeps DuckDB from computing the rest on every pair.
    Shorter values one edit apart may miss this level and count as different."""
    a, b = f"a.{column}", f"b.{column}"
    return (
        f"CASE WHEN abs(length({a}) - length({b})) > 1 THEN false "
        f"WHEN jaro_similarity({a}, {b}) >= 0.9 THEN damerau_levenshtein({a}, {b}) <= 1 ELSE false END"
    )


def _jaro_winkler(column: str) -> str:
    return f"jaro_winkler_similarity(a.{column}, b.{column})"


def first_name() -> Comparison:
    full_name_equal = (
        "a.first_name_key || coalesce(a.last_name_key, '') = b.first_name_key || coalesce(b.last_name_key, '')"
    )
    swapped = "(a.first_name_key = b.last_name_key AND a.last_name_key = b.first_name_key)"
    # An initial, or a name cut short ("Chris" for "Christopher", "J" for "Jan").
    initial = (
        "left(a.first_name_key, 1) = left(b.first_name_key, 1) AND "
        "(starts_with(a.first_name_key, b.first_name_key) OR starts_with(b.first_name_key, a.first_name_key))"
    )
    return Comparison(
        name="first_name",
        missing=_null("first_name_key"),
        levels=(
            Level("exact", "a.first_name_key = b.first_name_key", typical_u=0.005),
            Level(
                "same_name", f"a.first_name_root = b.first_name_root OR {full_name_equal} OR {swapped}", typical_u=0.001
            ),
            Level("jaro_winkler_0.92", f"{_jaro_winkler('first_name_key')} >= 0.92", typical_u=0.001),
            Level("initial", initial, typical_u=0.001),
            Level("jaro_winkler_0.80", f"{_jaro_winkler('first_name_key')} >= 0.80", typical_u=0.01),
            Level("different", ""),
        ),
        frequency_column="first_name_key",
    )


def last_name() -> Comparison:
    full_name_equal = (
        "coalesce(a.first_name_key, '') || a.last_name_key = coalesce(b.first_name_key, '') || b.last_name_key"
    )
    swapped = "(a.first_name_key = b.last_name_key AND a.last_name_key = b.first_name_key)"
    # A double name and one of its parts ("smith jones" and "jones").
    part = (
        "(length(a.last_name_core) >= 3 AND length(b.last_name_core) >= 3 AND "
        "(contains(a.last_name_core, b.last_name_core) OR contains(b.last_name_core, a.last_name_core)))"
    )
    return Comparison(
        name="last_name",
        missing=_null("last_name_key"),
        levels=(
            Level("exact", "a.last_name_key = b.last_name_key", typical_u=0.002),
            Level(
                "same_name", f"a.last_name_core = b.last_name_core OR {full_name_equal} OR {swapped}", typical_u=0.0002
            ),
            Level("jaro_winkler_0.92", f"{_jaro_winkler('last_name_core')} >= 0.92", typical_u=0.0005),
            Level("jaro_winkler_0.80", f"{_jaro_winkler('last_name_core')} >= 0.80 OR {part}", typical_u=0.005),
            Level("different", ""),
        ),
        frequency_column="last_name_key",
        household=True,
    )


def birth_date() -> Comparison:
    """Compared on the date's digits, 'YYYYMMDD' (`birth_date_key`), which a typo that
    makes no calendar date (month 13, day 64) keeps where the date itself is NULL."""
    key = "{side}.birth_date_key"
    year, month, day = (f"{fn}({key}, {n})" for fn, n in (("left", 4), ("substr", "5, 2"), ("right", 2)))
    part = {"year": year, "month": month, "day": day}
    a, b = ({name: sql.format(side=side) for name, sql in part.items()} for side in "ab")
    same_parts = " + ".join(f"({a[name]} = {b[name]})::INT" for name in ("year", "month", "day"))
    distance = "damerau_levenshtein(a.birth_date_key, b.birth_date_key)"
    swapped = f"({a['day']} = {b['month']} AND {a['month']} = {b['day']} AND {a['year']} = {b['year']})"
    year_apart = (
        f"({a['day']} = {b['day']} AND {a['month']} = {b['month']} "
        f"AND abs({a['year']}::INTEGER - {b['year']}::INTEGER) = 1)"
    )
    # One typed digit wrong (or two neighbours swapped) leaves two of year, month and day equal.
    return Comparison(
        name="birth_date",
        missing=_null("birth_date_key"),
        levels=(
            Level("exact", "a.birth_date_key = b.birth_date_key", typical_u=0.0001),
            Level(
                "one_typo",
                f"{swapped} OR {year_apart} OR CASE WHEN {same_parts} = 2 THEN {distance} <= 1 ELSE false END",
                typical_u=0.001,
            ),
            # a day, month or year wholly wrong (a date field typed from another record, a default day)
            Level("one_part_wrong", f"{same_parts} = 2", typical_u=0.005),
            Level("two_typos", f"CASE WHEN {same_parts} >= 1 THEN {distance} <= 2 ELSE false END", typical_u=0.01),
            Level("different", ""),
        ),
        frequency_column="birth_date_key",
    )


def _personal_key(name: str, column: str, typical_u: float) -> Comparison:
    """A key one person (or one household) holds: exact, one typo apart, or different."""
    return Comparison(
        name=name,
        missing=_null(column),
        levels=(
            Level("exact", f"a.{column} = b.{column}", typical_u=typical_u),
            Level("one_typo", _one_edit(column), typical_u=typical_u),
            Level("different", ""),
        ),
        frequency_column=column,
        household=True,
        counts_holders=True,
    )


def email() -> Comparison:
    # No level for the same user name at another domain: jan.smit@ at two
    # employers is as often two namesakes as one person.
    return _personal_key("email", "email_key", 1e-06)


def phone() -> Comparison:
    return _personal_key("phone", "phone_key", 1e-06)


def address() -> Comparison:
    """The place a record lives: one comparison for address, postcode and city,
    because they are not independent (the same address is the same postcode)."""
    city = "lower(strip_accents({side}.city))"
    return Comparison(
        name="address",
        missing="{side}.postcode_key IS NULL AND {side}.city IS NULL",
        levels=(
            Level("same_address", "a.address_key = b.address_key", typical_u=1e-05),
            Level("same_postcode", "a.postcode_key = b.postcode_key", typical_u=0.0001),
            Level("same_city", f"{city.format(side='a')} = {city.format(side='b')}", typical_u=0.02),
            Level("different", ""),
        ),
        frequency_column="address_key",
        household=True,
        counts_holders=True,
    )


def identifier(name: str) -> Comparison:
    """A source's own id (a loyalty card, a customer number): the same or not. No typo
    level: such ids are handed out in sequence, so the card one digit from a person's
    is as often the next one issued, to the person in the queue behind or to the spouse."""
    column = f"id_{name}"
    return Comparison(
        name=f"identifier:{name}",
        missing=_null(column),
        levels=(Level("exact", f"a.{column} = b.{column}", typical_u=1e-06), Level("different", "")),
        frequency_column=column,
        counts_holders=True,
    )


FIELD_COMPARISONS = {
    "first_name": first_name,
    "last_name": last_name,
    "birth_date": birth_date,
    "email": email,
    "phone": phone,
    "address": address,
}


# Two records that agree on the surname (these levels) and not on a first name (none of
# these) may be two people of one household: relatives share an address, an inbox or a
# landline far more often than strangers, and training and scoring weigh them so.
SURNAME = "last_name"
SURNAME_AGREES = ("exact", "same_name")
PERSONAL_FIRST_NAME_LEVELS = ("exact", "same_name", "jaro_winkler_0.92", "initial")


@dataclass(frozen=True)
class RelativesTest:
    """Which levels make a pair possible relatives: the surname's `surname_levels` and none
    of the first name's `first_name_levels` (a missing first name counts as none)."""

    surname: Comparison
    surname_levels: tuple[int, ...]
    first_name: Comparison | None
    first_name_levels: tuple[int, ...]

    def sql(self) -> str:
        condition = f"{self.surname.column} IN ({', '.join(map(str, self.surname_levels))})"
        if self.first_name is not None:
            condition += f" AND {self.first_name.column} NOT IN ({', '.join(map(str, self.first_name_levels))})"
        return condition


def relatives_test(comparisons: list[Comparison] | tuple[Comparison, ...]) -> RelativesTest | None:
    by_name = {c.name: c for c in comparisons}
    surname, first = by_name.get(SURNAME), by_name.get("first_name")
    if surname is None:
        return None

    def levels(comparison: Comparison, names: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(index for index, name in enumerate(comparison.level_names) if name in names)

    return RelativesTest(
        surname, levels(surname, SURNAME_AGREES), first, levels(first, PERSONAL_FIRST_NAME_LEVELS) if first else ()
    )


def comparisons_for(identifier_names: list[str]) -> list[Comparison]:
    """Every field the source lookup holds, plus each declared source identifier."""
    return [*(make() for make in FIELD_COMPARISONS.values()), *(identifier(name) for name in identifier_names)]


# Which comparisons a blocking key belongs to: a pair blocked on a key agrees on it
# by construction, so those comparisons say nothing about matches among those pairs.
KEY_COMPARISONS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "phone": ("phone",),
    "first_name": ("first_name",),
    "first_name_root": ("first_name",),
    "last_name": ("last_name",),
    "last_name_core": ("last_name",),
    "name_initials": ("first_name", "last_name"),
    "birth_date": ("birth_date",),
    "postcode": ("address",),
    "address": ("address",),
}


def comparisons_of_key(key: str) -> tuple[str, ...]:
    return (key,) if key.startswith("identifier:") else KEY_COMPARISONS[key]
