"""The default match rules: what links two customer records when the config names no rules.

They are tuned so that a shared household email, phone or address never links
on its own, and that a family's loyalty cards, handed out in sequence, are no
typo of one another; README's identity section lists them with their reasons.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdm_assets.domain.plan import MatchRule
from cdm_assets.domain.vocabulary import identifier_key

# The defaults are tuned so that a shared household email, phone or address
# never links on its own: a link also needs the same (or a similar) first
# name and no conflicting birth date. Twins share everything but the first
# name, so first-name thresholds stay high where a link rests on one name.
DEFAULT_RULES: tuple[MatchRule, ...] = (
    MatchRule(
        name="email_and_first_name",
        exact=["email"],
        similar={"first_name": 0.9, "last_name": 0.8},
        must_not_differ=["birth_date", "phone"],
    ),
    MatchRule(
        name="phone_and_first_name",
        exact=["phone"],
        similar={"first_name": 0.85, "last_name": 0.8},
        must_not_differ=["birth_date"],
    ),
    MatchRule(
        name="name_and_birth_date",
        exact=["last_name_core", "birth_date"],
        similar={"first_name": 0.9},
        must_not_differ=["phone", "email"],
    ),
    MatchRule(
        name="first_name_birth_date_similar_last_name",
        exact=["first_name_root", "birth_date"],
        similar={"last_name": 0.9},
        must_not_differ=["phone"],
    ),
    MatchRule(
        name="birth_date_and_postcode",
        exact=["birth_date", "postcode"],
        similar={"first_name": 0.97, "last_name": 0.85},
        must_not_differ=["phone"],
    ),
    # A typo in both names ("Jacquline Maliauskas"): the address narrows the
    # birth date to one home, where twins Sara and Sarah are kept apart by
    # their own phones or inboxes (and by cannot-link where a record lacks them).
    MatchRule(
        name="birth_date_address_and_similar_names",
        exact=["birth_date", "address"],
        similar={"first_name": 0.9, "last_name": 0.9},
        must_not_differ=["phone", "email"],
    ),
    MatchRule(
        name="name_and_address",
        exact=["address", "last_name_core"],
        similar={"first_name": 0.9},
        must_not_differ=["birth_date", "phone"],
    ),
    # The full name in one postcode, where the house number is missing or
    # mistyped; a different birth date (a father and son of one name) or
    # phone keeps two people apart.
    MatchRule(
        name="full_name_and_postcode",
        exact=["postcode", "last_name_core", "first_name_root"],
        must_not_differ=["birth_date", "phone"],
    ),
)


def identifier_typo_rules(identifier: str) -> list[MatchRule]:
    """An identifier one typo apart (two neighbours swapped, one character changed,
    dropped or added) with the same address, or the same birth date and postcode
    or first or last name.

    Numbers handed out in sequence are no typo (a family's loyalty cards
    L0000041 and L0000042, see `match_rules.numbered`), and a different phone or email
    keeps two people apart.
    """
    key = identifier_key(identifier)
    typo = {key: 1}
    apart = ["phone", "email"]
    return [
        MatchRule(name=f"{identifier}_typo_and_address", exact=["address"], max_edits=typo, must_not_differ=apart),
        *(
            MatchRule(
                name=f"{identifier}_typo_birth_date_and_{name}",
                exact=["birth_date", other],
                max_edits=typo,
                must_not_differ=apart,
            )
            for name, other in (
                ("postcode", "postcode"),
                ("first_name", "first_name_root"),
                ("last_name", "last_name_core"),
            )
        ),
    ]


def identifier_rules(identifier_names: Sequence[str]) -> list[MatchRule]:
    """A shared source identifier (a loyalty card, a national id) is one person."""
    return [MatchRule(name=f"same_{name}", exact=[identifier_key(name)]) for name in identifier_names]


def default_rules(identifier_names: Sequence[str]) -> list[MatchRule]:
    """The rule set used when the match model is switched off: shared source
    identifiers first (strongest evidence), then identifiers one typo apart,
    then the defaults."""
    same = identifier_rules(identifier_names)
    typos = [rule for name in identifier_names for rule in identifier_typo_rules(name)]
    return [*same, *typos, *DEFAULT_RULES]
