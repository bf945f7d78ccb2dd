"""Phone numbers to E.164 and national significant numbers, in SQL.

The parsing follows `phonenumbers.parse` closely enough to agree with it on
valid numbers, but runs as vectorised SQL over millions of records: the
library is used once per build to derive two small tables from its metadata,
which the SQL joins.

- `phone_regions`: per region (NL, US, ...) its calling code, trunk prefix
  (national_prefix), international dialling prefix, possible lengths of a
  national significant number and the general number pattern;
- `phone_prefixes`: every three-digit string → the calling code it starts
  with. Calling codes are prefix-free (no code is the start of another), so
  one equi-join on the first three digits after "+" finds the code.

A number written with "+", "00" or the home region's international prefix is
international: the calling code is split off. Otherwise it is national to the
record's country, else the source's `phone_region`. The trunk prefix is
stripped when what remains has a possible length, as phonenumbers does. When
no region is known, `phone` stays NULL but the key (the national significant
number, one leading trunk 0 dropped) still lets "0612345678" meet
"+31 6 12345678".
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
import pyarrow as pa
from phonenumbers import PhoneMetadata

from cdm_assets.domain.identity.standardise import sql_list, sql_string

# Shortest and longest national number we accept as a key; shorter strings are
# internal extensions or typos, longer ones two numbers run together.
MIN_KEY_DIGITS = 6
MAX_KEY_DIGITS = 15
_DIGITS = re.compile(r"^\d+$")
# An extension ("x12", "ext. 12", "toestel 12") at the end is not part of the number.
_EXTENSION = r"(?i)\s*(?:ext\.?|extension|toestel|tst\.?|x|#)\s*\d{1,6}\s*$"


@lru_cache(maxsize=1)
def phone_regions() -> pa.Table:
    """One row per region (and per non-geographic calling code, keyed '+800' etc.)."""
    rows = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        rows.append(_region_row(region, PhoneMetadata.metadata_for_region(region)))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        rows.append(_region_row(f"+{code}", PhoneMetadata.metadata_for_nongeo_region(code)))
    columns = list(zip(*rows))
    return pa.table(
        {
            "region": pa.array(columns[0], pa.string()),
            "calling_code": pa.array(columns[1], pa.string()),
            "national_prefix": pa.array(columns[2], pa.string()),
            "international_prefix": pa.array(columns[3], pa.string()),
            "possible_lengths": pa.array(columns[4], pa.list_(pa.int32())),
            "local_lengths": pa.array(columns[5], pa.list_(pa.int32())),
            "max_length": pa.array(columns[6], pa.int32()),
            "national_pattern": pa.array(columns[7], pa.string()),
        }
    )


def _region_row(region: str, metadata) -> tuple:
    general = metadata.general_desc
    possible = sorted(n for n in general.possible_length if n > 0)
    # Only plain digit prefixes are usable as SQL prefixes; a few regions give
    # a regex ("0[09]"), whose preferred form is then the one people dial.
    idd = next(
        (p for p in (metadata.international_prefix, metadata.preferred_international_prefix) if p and _DIGITS.match(p)),
        None,
    )
    trunk = metadata.national_prefix
    national_prefix = trunk if trunk and _DIGITS.match(trunk) else None
    return (
        region,
        str(metadata.country_code),
        national_prefix,
        idd,
        possible,
        sorted(general.possible_length_local_only),
        max(possible) if possible else None,
        general.national_number_pattern,
    )


@lru_cache(maxsize=1)
def phone_prefixes() -> pa.Table:
    """'000'..'999' → the calling code each starts with and that code's main region."""
    main_region = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        # The first region listed is the code's main one (US for 1, GB for 44);
        # "001" marks non-geographic codes such as +800.
        main_region[str(code)] = f"+{code}" if regions[0] == "001" else regions[0]
    prefixes, codes, regions = [], [], []
    for number in range(1000):
        prefix = f"{number:03d}"
        code = next((prefix[:n] for n in (1, 2, 3) if prefix[:n] in main_region), None)
        if code is not None:
            prefixes.append(prefix)
            codes.append(code)
            regions.append(main_region[code])
    return pa.table({"prefix": prefixes, "calling_code": codes, "region": regions})


def phone_stage_sql(records: str, regions: str, prefixes: str, home_regions: list[str]) -> str:
    """CTEs that add `phone_key` (and what `e164_sql` needs) to `records`.

    `records` must have `phone_text` (the number as typed) and `phone_region`
    (the region national numbers belong to, or NULL). The last CTE is named
    `phones`; helper columns start with `_phone`. `home_regions` lists the
    values `phone_region` takes.
    """
    return (
        _phone_digits_sql(records)
        + _phone_international_sql(regions)
        + _phone_national_sql(regions, prefixes, home_regions)
        + _phone_key_sql()
    )


def _phone_digits_sql(records: str) -> str:
    """The number's digits, and whether it was typed with a leading +."""
    return f"""
    phone_text_cleaned AS (
        SELECT *,
               -- the usual formatting goes with cheap replaces; a regex only for the rest
               replace(replace(replace(replace(phone_text, ' ', ''), '-', ''), '(', ''), ')', '') AS _phone_cleaned
        FROM {records}
    ),
    phone_digits AS (
        SELECT * EXCLUDE (_phone_cleaned),
               CASE WHEN regexp_full_match(_phone_cleaned, '[0-9]+') THEN _phone_cleaned
                    WHEN regexp_full_match(_phone_cleaned, '\\+[0-9]+') THEN substring(_phone_cleaned, 2)
                    ELSE regexp_replace(regexp_replace(phone_text, {sql_string(_EXTENSION)}, ''), '[^0-9]+', '', 'g')
               END AS _phone_digits,
               regexp_matches(phone_text, '^[^0-9]*\\+') AS _phone_plus
        FROM phone_text_cleaned
    ),
    """


def _phone_international_sql(regions: str) -> str:
    """The digits after an international prefix (+, 00 or the home region's own), if any."""
    return f"""
    phone_international AS (
        SELECT phone_digits.*,
               home.region AS _phone_home,
               home.calling_code AS _phone_home_code,
               home.max_length AS _phone_home_max_length,
               home.national_prefix AS _phone_home_trunk,
               CASE
                   WHEN _phone_plus THEN _phone_digits
                   WHEN starts_with(_phone_digits, '00') THEN substring(_phone_digits, 3)
                   WHEN starts_with(_phone_digits, home.international_prefix)
                       THEN substring(_phone_digits, length(home.international_prefix) + 1)
               END AS _phone_international
        FROM phone_digits
        LEFT JOIN {regions} AS home ON home.region = phone_digits.phone_region
    ),
    """


def _phone_national_sql(regions: str, prefixes: str, home_regions: list[str]) -> str:
    """The number's region and calling code, and its national number."""
    after_code = "substring(_phone_digits, length(_phone_home_code) + 1)"
    without_code = (
        f"CASE WHEN starts_with({after_code}, _phone_home_trunk) "
        f"THEN substring({after_code}, length(_phone_home_trunk) + 1) ELSE {after_code} END"
    )
    return f"""
    phone_national AS (
        SELECT phone_international.*,
               number_region.region AS _phone_number_region,
               number_region.national_prefix AS _phone_trunk,
               number_region.possible_lengths AS _phone_lengths,
               number_region.local_lengths AS _phone_local_lengths,
               number_region.max_length AS _phone_max_length,
               CASE WHEN _phone_international IS NOT NULL THEN international_code.calling_code
                    ELSE _phone_home_code END AS _phone_code,
               CASE WHEN _phone_international IS NOT NULL
                    THEN substring(_phone_international, length(international_code.calling_code) + 1)
                    -- "31612345678" typed in NL without the "+": like phonenumbers, split off
                    -- the calling code when the number is too long with it, or valid only
                    -- without it (trunk prefix and all).
                    WHEN starts_with(_phone_digits, _phone_home_code)
                         AND (length(_phone_digits) > _phone_home_max_length
                              OR (NOT {matches_home_pattern("_phone_digits", home_regions)}
                                  AND {matches_home_pattern(without_code, home_regions)}))
                    THEN substring(_phone_digits, length(_phone_home_code) + 1)
                    ELSE _phone_digits END AS _phone_national_number
        FROM phone_international
        LEFT JOIN {prefixes} AS international_code
               ON international_code.prefix = left(_phone_international, 3)
        LEFT JOIN {regions} AS number_region
               ON number_region.region = CASE WHEN _phone_international IS NOT NULL
                                              THEN international_code.region ELSE _phone_home END
    ),
    """


def _phone_key_sql() -> str:
    """The national significant number without trunk prefix, and the key unless it is a placeholder."""
    return f"""
    phone_significant AS (
        SELECT *,
               CASE
                   WHEN _phone_number_region IS NULL
                       -- unknown region: only a national number has a key, without one trunk 0
                       THEN CASE WHEN _phone_international IS NULL THEN regexp_replace(_phone_digits, '^0', '') END
                   -- the trunk prefix goes when what remains could be a whole number
                   -- (phonenumbers keeps it when the rest is too short or local-only)
                   WHEN starts_with(_phone_national_number, _phone_trunk)
                        AND NOT list_contains(_phone_local_lengths, _phone_untrunked_length)
                        AND (list_contains(_phone_lengths, _phone_untrunked_length)
                             OR _phone_untrunked_length > _phone_max_length)
                       THEN substring(_phone_national_number, length(_phone_trunk) + 1)
                   ELSE _phone_national_number
               END AS _phone_nsn
        FROM (
            SELECT *, length(_phone_national_number) - length(_phone_trunk) AS _phone_untrunked_length
            FROM phone_national
        )
    ),
    phones AS (
        SELECT *,
               CASE WHEN length(_phone_nsn) BETWEEN {MIN_KEY_DIGITS} AND {MAX_KEY_DIGITS}
                     -- placeholders: a run such as 123456789, or the subscriber digits
                     -- all the same (0000000000, 06-11111111)
                     AND right(_phone_nsn, 7) NOT IN {sql_list(digit * 7 for digit in "0123456789")}
                     AND strpos('01234567890123456789', _phone_nsn) = 0
                     AND strpos('98765432109876543210', _phone_nsn) = 0
                    THEN _phone_nsn
               END AS phone_key
        FROM phone_significant
    )
    """


def matches_home_pattern(digits: str, home_regions: list[str]) -> str:
    """Whether `digits` fit the general number pattern of the home region.

    One CASE branch per region that occurs, so each pattern is compiled once
    per query (a pattern taken from a joined column would be compiled per row,
    and all 250 regions take a noticeable while to compile). Evaluated only for
    the rare numbers that start with their own calling code.
    """
    regions = phone_regions()
    patterns = dict(zip(regions.column("region").to_pylist(), regions.column("national_pattern").to_pylist()))
    branches = " ".join(
        f"WHEN {sql_string(region)} THEN regexp_full_match({digits}, {sql_string(patterns[region])})"
        for region in sorted(set(home_regions) & patterns.keys())
    )
    return f"(CASE _phone_home {branches} END)" if branches else "false"


def e164_sql() -> str:
    """`phone` from the `phones` stage: '+' calling code and number when the region and length are known."""
    return (
        "CASE WHEN phone_key IS NOT NULL AND _phone_number_region IS NOT NULL "
        "AND list_contains(_phone_lengths, length(phone_key)) "
        "THEN '+' || _phone_code || phone_key END"
    )
