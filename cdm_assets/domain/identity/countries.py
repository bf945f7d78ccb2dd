"""Country names and codes → ISO 3166 alpha-2, derived once from pycountry.

A country column holds whatever people typed: "NL", "NLD", "Netherlands",
"Nederland", "Pays-Bas", "the Netherlands", "Holland". The alias table lists
every ISO code and the country names in English and in the languages of the
markets we serve; `source_lookup` folds both sides with the same SQL
expression (so "België" and "Belgie" meet) and joins.
"""

from __future__ import annotations

import gettext
from functools import lru_cache

import pyarrow as pa
import pycountry

# Names people use that are not ISO names in any language.
MANUAL_ALIASES: dict[str, str] = {
    "UK": "GB",
    "U.K.": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "Groot-Brittannië": "GB",
    "Engeland": "GB",
    "Grossbritannien": "GB",
    "Großbritannien": "GB",
    "Angleterre": "GB",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "United States of America": "US",
    "America": "US",
    "Amerika": "US",
    "Verenigde Staten van Amerika": "US",
    "Holland": "NL",
    "The Netherlands": "NL",
    "Nederland": "NL",
    "Belgie": "BE",
    "Belgique": "BE",
    "Belgien": "BE",
    "Deutschland": "DE",
    "EL": "GR",  # the EU's code for Greece
    "Czech Republic": "CZ",
    "Russia": "RU",
    "South Korea": "KR",
    "Korea": "KR",
    "Vatican": "VA",
    "Ivory Coast": "CI",
    "Turkey": "TR",
    "Macedonia": "MK",
}

# Languages whose country names we accept: the markets' own languages plus
# their neighbours'. Names in non-Latin scripts fold to nothing and are skipped.
LANGUAGES: tuple[str, ...] = (
    "nl",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "pl",
    "da",
    "sv",
    "nb_NO",
    "fi",
    "cs",
    "sk",
    "hu",
    "ro",
    "hr",
    "sl",
    "tr",
    "et",
    "lv",
    "lt",
    "ga",
    "fy",
)

# Lower wins when two countries claim the same folded alias.
PRIORITY_MANUAL, PRIORITY_ALPHA_2, PRIORITY_ALPHA_3 = 0, 1, 2
PRIORITY_ENGLISH, PRIORITY_SHORTENED, PRIORITY_TRANSLATED = 3, 4, 5


@lru_cache(maxsize=1)
def country_aliases() -> pa.Table:
    """(alias, country, priority): every spelling we accept for each alpha-2 code.

    Aliases are raw text; the caller folds them with the same expression it
    applies to the data. Ambiguity (one folded alias, two countries at the
    same priority) is resolved in SQL, where the folding happens.
    """
    rows: list[tuple[str, str, int]] = [(alias, code, PRIORITY_MANUAL) for alias, code in MANUAL_ALIASES.items()]
    for country in pycountry.countries:
        code = country.alpha_2
        rows.append((code, code, PRIORITY_ALPHA_2))
        rows.append((country.alpha_3, code, PRIORITY_ALPHA_3))
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                rows.append((name, code, PRIORITY_ENGLISH))
                # "Congo" must stay the Republic of the Congo, not become ambiguous.
                rows.append((_without_qualifier(name), code, PRIORITY_SHORTENED))
    for language in LANGUAGES:
        translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True)
        for country in pycountry.countries:
            for attribute in ("name", "common_name"):
                name = getattr(country, attribute, None)
                if name:
                    local = translation.gettext(name)
                    if local != name:
                        rows.append((local, country.alpha_2, PRIORITY_TRANSLATED))
    aliases, codes, priorities = zip(*rows)
    return pa.table(
        {
            "alias": pa.array(aliases, pa.string()),
            "country": pa.array(codes, pa.string()),
            "priority": pa.array(priorities, pa.int8()),
        }
    )


def _without_qualifier(name: str) -> str:
    """ "Korea, Republic of" → "Korea"; "Bolivia (Plurinational State of)" → "Bolivia"."""
    return name.split(",")[0].split("(")[0].strip()
