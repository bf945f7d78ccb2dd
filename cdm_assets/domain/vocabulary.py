"""The words config, domain and tests share: entities, record fields and match keys.

Each is defined here once. `cdm_assets.config` validates `cdm.yaml` against
them; the domain builds its tables and SQL from them.
"""

from __future__ import annotations

from dataclasses import dataclass

# The built-in entities; `entities:` in cdm.yaml declares more customer-like ones.
CUSTOMER = "customer"
TRANSACTION = "transaction"
EVENT = "event"
BUILT_IN_ENTITIES = (CUSTOMER, TRANSACTION, EVENT)

# Canonical fields a source maps its columns to, per kind of entity.
NAME_FIELDS = ("first_name", "last_name", "full_name")
ADDRESS_PARTS = ("street", "postcode", "city", "country")
CUSTOMER_FIELDS = (*NAME_FIELDS, "email", "phone", "birth_date", *ADDRESS_PARTS)
TRANSACTION_FIELDS = ("amount", "currency", "type", "occurred_at")
EVENT_FIELDS = ("anonymous_id", "email", "event_type", "occurred_at")
CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    CUSTOMER: CUSTOMER_FIELDS,
    TRANSACTION: TRANSACTION_FIELDS,
    EVENT: EVENT_FIELDS,
}
# Fields whose values are dates or timestamps: they may carry a strftime format.
DATE_FIELDS = frozenset({"birth_date", "occurred_at"})
# Golden-record fields with their own survivorship; address parts survive together as `address`.
GOLDEN_FIELDS = ("first_name", "last_name", "email", "phone", "birth_date", "address")
# Fields the match model compares (each a comparison with its own levels).
MODEL_FIELDS = ("first_name", "last_name", "birth_date", "email", "phone", "address")


def default_golden_table(entity: str) -> str:
    """`customers` for customers, `accounts` for accounts: the entity's name + "s"."""
    return f"{entity}s"


def default_id_prefix(entity: str) -> str:
    """`cus_` for customers, `acc_` for accounts: the entity's first three letters + "_"."""
    return f"{entity[:3]}_"


IDENTIFIER_PREFIX = "identifier:"


@dataclass(frozen=True)
class MatchKey:
    """A key match rules and blocking compare: a column of the source lookup.

    `personal`: its values belong to one person or one home, so a value held by
    more than `max_records_per_key` records is a placeholder (or a shop's own
    phone), neither evidence for a link nor against one. `numbered`: its values
    are handed out in sequence (cards, accounts, phone lines, house numbers,
    postcodes), so neighbouring values belong to neighbours and one apart in the
    last place is no typo. `similar`: a rule may ask for a Jaro-Winkler threshold.
    """

    name: str
    column: str
    personal: bool = False
    numbered: bool = False
    similar: bool = False


_LOOKUP_KEYS = (
    MatchKey("email", "email_key", personal=True),
    MatchKey("phone", "phone_key", personal=True, numbered=True),
    MatchKey("first_name", "first_name_key", similar=True),
    MatchKey("first_name_root", "first_name_root"),
    MatchKey("last_name", "last_name_key", similar=True),
    MatchKey("last_name_core", "last_name_core"),
    MatchKey("name_initials", "name_initials"),
    MatchKey("birth_date", "birth_date_key"),
    MatchKey("postcode", "postcode_key", numbered=True),
    MatchKey("address", "address_key", personal=True, numbered=True),
)
# Keys of the source lookup by name; `identifier:<name>` adds the source ids
# declared under a customer source's `identifiers:`.
MATCH_KEYS: dict[str, MatchKey] = {key.name: key for key in _LOOKUP_KEYS}
SIMILAR_KEYS = tuple(key.name for key in _LOOKUP_KEYS if key.similar)


def identifier_key(identifier: str) -> str:
    """The match key of a declared source identifier: `identifier:loyalty_card`."""
    return f"{IDENTIFIER_PREFIX}{identifier}"


def identifier_of(key: str) -> str | None:
    """The identifier a key names (`loyalty_card` of `identifier:loyalty_card`), else None."""
    return key[len(IDENTIFIER_PREFIX) :] if key.startswith(IDENTIFIER_PREFIX) else None


def match_key(key: str) -> MatchKey:
    """The match key a rule names; an identifier is personal and numbered, in column `id_<name>`."""
    identifier = identifier_of(key)
    if identifier is not None:
        return MatchKey(key, f"id_{identifier}", personal=True, numbered=True)
    return MATCH_KEYS[key]


def is_known_key(key: str) -> bool:
    return key in MATCH_KEYS or key.startswith(IDENTIFIER_PREFIX)
