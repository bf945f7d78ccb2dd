"""SQL expression builders that standardise customer fields and derive match keys.

Each function takes SQL expressions (usually a column name) and returns a
DuckDB expression. They are composed into the stages of `source_lookup` and
run vectorised over every record; nothing here loops over rows in Python.
Reference lists from `reference_data` are rendered as SQL string literals
(they are code, not user input); values from the config are parameters of
the caller's statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cdm_assets.domain.identity.reference_data import (
    ELIDED_PARTICLES,
    LOWER_CASE_PARTICLES,
    NAME_PARTICLES,
    NAME_TITLES,
    PLACEHOLDER_EMAIL_DOMAINS,
    PLACEHOLDER_EMAIL_LOCAL_PARTS,
    PLACEHOLDER_EMAIL_LOCAL_PATTERN,
    PLACEHOLDER_EMAIL_TLDS,
    POSTCODE_FORMATS,
    UNAMBIGUOUS_POSTCODE_FORMATS,
)
from cdm_assets.domain.sql import sql_list, sql_string

# Letters that `strip_accents` leaves alone because they are not an accented
# base letter; folded by hand so "Øvergaard" meets "Overgaard".
_FOLD_REPLACEMENTS = (("ß", "ss"), ("æ", "ae"), ("œ", "oe"), ("þ", "th"), ("ĳ", "ij"))
_FOLD_TRANSLATE = ("øłđıð", "oldid")


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of literal words, longest first so 'van' never shadows 'vanden'."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


# -- text ---------------------------------------------------------------------


def trimmed(column: str) -> str:
    """`trim(column)` for a column reference, NULL when empty.

    trim() is one of the dearer string functions here; most values need none.
    """
    return (
        f"nullif(CASE WHEN starts_with({column}, ' ') OR ends_with({column}, ' ') "
        f"THEN trim({column}) ELSE {column} END, '')"
    )


# Whitespace that is not a single space: runs of spaces, tabs, newlines, no-break spaces.
_IRREGULAR_SPACE = r"\s\s|[\t\n\r\f\v\x{00A0}\x{2000}-\x{200B}\x{202F}\x{205F}\x{3000}]"


def collapsed(column: str) -> str:
    """Trimmed, internal whitespace (including no-break spaces) collapsed to one space; NULL when empty."""
    return (
        f"CASE WHEN regexp_matches({column}, {sql_string(_IRREGULAR_SPACE)}) "
        rf"THEN nullif(trim(regexp_replace({column}, '[\s\pZ]+', ' ', 'g')), '') "
        f"ELSE {trimmed(column)} END"
    )


def folded(expr: str) -> str:
    """Lower-case ASCII-ish form for comparison: accents removed, ß → ss, ø → o, ..."""
    result = f"lower({expr})"
    for letter, replacement in _FOLD_REPLACEMENTS:
        result = f"replace({result}, {sql_string(letter)}, {sql_string(replacement)})"
    source, target = _FOLD_TRANSLATE
    return f"strip_accents(translate({result}, {sql_string(source)}, {sql_string(target)}))"


def letters_only(expr: str) -> str:
    """Only a-z of an already folded expression; NULL when nothing is left."""
    return f"nullif(regexp_replace({expr}, '[^a-z]', '', 'g'), '')"


# -- names --------------------------------------------------------------------

_TITLES = _alternation(NAME_TITLES)
_PARTICLES = _alternation(NAME_PARTICLES)


def without_titles(expr: str) -> str:
    """Drop leading salutations ("Dhr. ", "Mr ", "Prof. Dr. "); a title must be followed by a name."""
    pattern = rf"^(?:(?:{_TITLES})(?:\.\s*|\s+))+(\S)"
    # no trim needed: the pattern eats the spaces after the titles
    return rf"nullif(regexp_replace({expr}, {sql_string(pattern)}, '\1', 'i'), '')"


def given_name_and_particles(expr: str) -> str:
    """Split the part after the comma of "Berg, Jan van der": a struct of `given` ('Jan') and
    `particles` (' van der'), which belong in front of the last name."""
    pattern = rf"^(.*?)((?:\s+(?:{_PARTICLES}))*)$"
    return f"regexp_extract({expr}, {sql_string(pattern)}, ['given', 'particles'], 'i')"


def particles_before_surname(expr: str) -> str:
    """Particles written after the surname and a comma go back in front of it.

    Directories write "Bourgondië, van" for "van Bourgondië"; full names then
    read "Wouter Bourgondië, van" or "Bourgondië, van, Wouter". A comma
    segment of nothing but particles moves before the word in front of the
    comma: "Wouter van Bourgondië", "van Bourgondië, Wouter". Names without
    such a segment ("Berg, Jan van der") are left as they are.
    """
    particles = rf"(?:{_PARTICLES})(?:\s+(?:{_PARTICLES}))*"
    pattern = rf"^((?:[^,]*\s)?)([^,\s]+)\s*,\s*({particles})\s*(,.*)?$"
    return (
        f"CASE WHEN strpos({expr}, ',') > 0 "
        rf"THEN regexp_replace({expr}, {sql_string(pattern)}, '\1\3 \2\4', 'i') ELSE {expr} END"
    )


def _capitalised(word: str) -> str:
    """Upper-case the first letter of each hyphen part; after "o'" / "d'" as well (O'Brien)."""
    return (
        f"array_to_string(list_transform(string_split({word}, '-'), lambda part: "
        f"CASE WHEN substr(part, 2, 1) = '''' AND length(part) > 2 "
        f"THEN upper(substr(part, 1, 1)) || '''' || upper(substr(part, 3, 1)) || substring(part, 4) "
        f"ELSE upper(substr(part, 1, 1)) || substring(part, 2) END), '-')"
    )


def name_cased(expr: str, *, surname: bool) -> str:
    """Sensible capitalisation of a collapsed name.

    A word typed in mixed case ("McDonald", "DeVries", "Le") is kept as typed;
    a word in all-upper or all-lower case is re-cased: "JAN" → "Jan",
    "o'brien" → "O'Brien". In a surname, Dutch/German particles before the
    last word are written lower-case ("VAN DER BERG" → "van der Berg"), and
    any particle typed in lower case stays so ("de la Fontaine").
    """
    particle_rule = (
        f"WHEN i < array_length(string_split({expr}, ' ')) AND (lower(word) IN {sql_list(LOWER_CASE_PARTICLES)} "
        f"OR (word = lower(word) AND word IN {sql_list(NAME_PARTICLES)})) THEN lower(word) "
        if surname
        else ""
    )
    return (
        f"array_to_string(list_transform(string_split({expr}, ' '), lambda word, i: CASE "
        f"WHEN word <> lower(word) AND word <> upper(word) THEN word "
        f"{particle_rule}"
        f"ELSE {_capitalised('lower(word)')} END), ' ')"
    )


def first_given_name(folded_expr: str) -> str:
    """Letters of the first word of a folded first name: 'jan' of 'jan-peter' or 'jan peter'."""
    return letters_only(rf"regexp_extract({folded_expr}, '^[\s\-]*([^\s\-]+)', 1)")


def without_leading_particles(folded_expr: str) -> str:
    """A folded surname without its leading particles: 'van der berg' → 'berg', "d'artagnan" → 'artagnan'.

    A surname that is nothing but particles ("De") is left whole.
    """
    elided = _alternation(ELIDED_PARTICLES)
    pattern = rf"^(?:(?:{_PARTICLES})\s+|(?:{elided})\s*)+"
    stripped = f"regexp_replace({folded_expr}, {sql_string(pattern)}, '')"
    return f"coalesce({letters_only(stripped)}, {letters_only(folded_expr)})"


def name_initials(first_key: str, last_key: str) -> str:
    """The first letters of a first name key and a surname key in alphabetical order:
    'ja' for Jan Aalders and for Aalders Jan, typed the other way round; NULL unless both are known."""
    initials = f"left({first_key}, 1), left({last_key}, 1)"
    return (
        f"CASE WHEN {first_key} IS NOT NULL AND {last_key} IS NOT NULL "
        f"THEN least({initials}) || greatest({initials}) END"
    )


# -- email --------------------------------------------------------------------

_EMAIL_PATTERN = (
    r"[\pL\pN!#$%&'*+/=?^_`{|}~-]+(?:\.[\pL\pN!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[\pL\pN](?:[\pL\pN-]*[\pL\pN])?\.)+[\pL]{2,}"
)


def email_text(lowered: str) -> str:
    """The email without a leading `mailto:`; `lowered` is the trimmed, lower-cased column."""
    return f"CASE WHEN starts_with({lowered}, 'mailto:') THEN substring({lowered}, 8) ELSE {lowered} END"


def email(text_expr: str) -> str:
    """The email text when it looks like one address (local@domain.tld), else NULL."""
    return f"CASE WHEN regexp_full_match({text_expr}, {sql_string(_EMAIL_PATTERN)}) THEN {text_expr} END"


def _placeholder_email_pattern() -> str:
    """One regex for every placeholder rule, so the check is one scan of the address."""
    locals_ = _alternation(PLACEHOLDER_EMAIL_LOCAL_PARTS)
    domains = _alternation(PLACEHOLDER_EMAIL_DOMAINS)
    tlds = _alternation(PLACEHOLDER_EMAIL_TLDS)
    prefix = PLACEHOLDER_EMAIL_LOCAL_PATTERN.removeprefix("^")
    return rf"(?:{locals_})@.*|{prefix}[^@]*@.*|[^@]*@(?:{domains})|.*\.(?:{tlds})"


def email_key(email_expr: str, at_expr: str) -> str:
    """The email as a match key, NULL for placeholders (noemail@..., test@test.com, x@example.com, aaa@...).

    `at_expr` is the position of the '@' (strpos), computed once by the caller.
    """
    local = f"left({email_expr}, {at_expr} - 1)"
    return (
        f"CASE WHEN NOT regexp_full_match({email_expr}, {sql_string(_placeholder_email_pattern())}) "
        # a local part of one repeated character: a@, xxx@
        f"AND length(replace({local}, left({email_expr}, 1), '')) > 0 THEN {email_expr} END"
    )


# -- dates --------------------------------------------------------------------


def plausible_birth_date(date_expr: str, earliest: str, latest: str) -> str:
    """The date, or NULL outside the configured window (future dates, placeholder years such as 0001).

    `earliest` and `latest` are DATE expressions, usually parameters; a NULL `earliest` is no lower bound.
    """
    return (
        f"CASE WHEN {date_expr} <= {latest} AND ({date_expr} >= {earliest} OR {earliest} IS NULL) THEN {date_expr} END"
    )


# strftime directives that spell a date in digits, and the part each reads.
_DATE_DIGIT_DIRECTIVES = {"%Y": ("year", r"(\d{4})"), "%m": ("month", r"(\d{1,2})"), "%d": ("day", r"(\d{1,2})")}


def date_digits_pattern(strftime_format: str | None) -> tuple[str, list[str]] | None:
    """A regex reading year, month and day from text written in `strftime_format`
    (ISO when None) whatever their values ("1949-00-13" has the shape of "%Y-%m-%d"
    though it is no date), and the part each group reads. None for formats that do
    not spell all three in digits (two-digit years, month names, times)."""
    fmt = strftime_format or "%Y-%m-%d"
    pieces, parts, index = [], [], 0
    for match in re.finditer(r"%.", fmt):
        if match.group() not in _DATE_DIGIT_DIRECTIVES:
            return None
        part, group = _DATE_DIGIT_DIRECTIVES[match.group()]
        pieces += [re.escape(fmt[index : match.start()]), group]
        parts.append(part)
        index = match.end()
    pieces.append(re.escape(fmt[index:]))
    if sorted(parts) != ["day", "month", "year"]:
        return None
    return "^" + "".join(pieces) + "$", parts


def date_digits(text_expr: str, strftime_format: str | None) -> str:
    """The date's digits as 'YYYYMMDD' text, read by the format's shape also where they
    make no calendar date (month 13, day 64): a typo in a date is evidence for matching
    even where the date itself is NULL. NULL when the text has not that shape."""
    found = date_digits_pattern(strftime_format)
    if found is None:
        return "NULL::VARCHAR"
    pattern, parts = found
    names = "[" + ", ".join(sql_string(part) for part in parts) + "]"
    digits = f"regexp_extract({text_expr}, {sql_string(pattern)}, {names})"
    return f"nullif({digits}.year || lpad({digits}.month, 2, '0') || lpad({digits}.day, 2, '0'), '0000')"


def parsed_date(text_expr: str, strftime_format: str | None) -> str:
    """A text date parsed with the configured strftime format (ISO dates when none)."""
    if strftime_format is None:
        return f"try_cast({text_expr} AS DATE)"
    return f"CAST(try_strptime({text_expr}, {sql_string(strftime_format)}) AS DATE)"


# -- addresses ----------------------------------------------------------------

# "Kerkstraat 12", "12a", "12 A", "12-3", "12/3", "12 bis" at the end of the street...
_TRAILING_HOUSE_NUMBER = r"(?:^|\s)(\d{1,5})\s*(?:[-/]\s*)?([A-Za-z]{1,3}|\d{1,4}[A-Za-z]?)?\.?$"
# ... or "10 Downing Street", "221B Baker Street", "10, rue de la Paix" at the start.
_LEADING_HOUSE_NUMBER = r"^(\d{1,5})\s*([A-Za-z])?(?:[\s,]|$)"


def house_number_parts(street_expr: str) -> str:
    """A struct (number, addition) of the house number in a street line; empty strings when none.

    Computed once per record; `house_number` formats it.
    """
    trailing = f"regexp_extract({street_expr}, {sql_string(_TRAILING_HOUSE_NUMBER)}, ['number', 'addition'])"
    leading = f"regexp_extract({street_expr}, {sql_string(_LEADING_HOUSE_NUMBER)}, ['number', 'addition'])"
    # COALESCE evaluates the leading pattern only where the trailing one found nothing.
    nothing = "{'number': '', 'addition': ''}"
    return f"coalesce(nullif({trailing}, {nothing}), {leading})"


def house_number(parts_expr: str) -> str:
    """'12', '12A' (from "12a", "12 a", "12-a"), '12-3' (from "12/3", "12-3"); NULL without a number."""
    number, addition = f"{parts_expr}.number", f"{parts_expr}.addition"
    return (
        f"nullif({number} || CASE WHEN left({addition}, 1) BETWEEN '0' AND '9' THEN '-' || {addition} "
        f"ELSE upper({addition}) END, '')"
    )


def postcode_key(text_expr: str) -> str:
    """Upper-case letters and digits only: the postcode match key (`text_expr` is upper-cased already)."""
    spaceless = f"replace({text_expr}, ' ', '')"
    # the regex rewrite is dear; most postcodes only have a space to lose
    return (
        f"nullif(CASE WHEN regexp_full_match({spaceless}, '[A-Z0-9]*') THEN {spaceless} "
        f"ELSE regexp_replace({text_expr}, '[^A-Z0-9]+', '', 'g') END, '')"
    )


def postcode(text_expr: str, key_expr: str, country_expr: str) -> str:
    """Upper-case postcode with the canonical spacing of its country ("1234 AB", "SW1A 1AA").

    Without a country, a format no other country shares is still applied;
    otherwise the postcode stays as typed (upper-cased).
    """

    def formatted(code: str) -> str:
        pattern, tail, separator = POSTCODE_FORMATS[code]
        return (
            f"CASE WHEN regexp_full_match({key_expr}, {sql_string(pattern)}) "
            f"THEN left({key_expr}, length({key_expr}) - {tail}) || {sql_string(separator)} || right({key_expr}, {tail}) END"
        )

    typed = text_expr
    by_country = " ".join(f"WHEN {sql_string(code)} THEN {formatted(code)}" for code in POSTCODE_FORMATS)
    guessed = ", ".join(formatted(code) for code in UNAMBIGUOUS_POSTCODE_FORMATS)
    return (
        f"CASE WHEN {country_expr} IS NULL THEN coalesce({guessed}, {typed}) "
        f"ELSE coalesce(CASE {country_expr} {by_country} END, {typed}) END"
    )


def country_key(expr: str) -> str:
    """How a country name is compared: folded, without a leading 'the', letters only."""
    return letters_only(rf"regexp_replace({folded(expr)}, '^\s*the\s+', '')")
