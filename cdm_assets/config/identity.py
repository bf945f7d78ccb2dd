"""The `identity:`, `customers:` and `entities:` of `cdm.yaml`: match rules, the match model,
survivorship and customer-like entities."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cdm_assets.config.base import SOURCE_NAME, StrictModel
from cdm_assets.domain.vocabulary import (
    MATCH_KEYS,
    MODEL_FIELDS,
    SIMILAR_KEYS,
    identifier_of,
    is_known_key,
)


class MatchRule(StrictModel):
    """Two records are linked when every `exact` key is equal (and not empty),
    every `similar` key reaches its Jaro-Winkler threshold, every `max_edits`
    key is at most that many edits apart (for phones, addresses, postcodes and
    identifiers: and not neighbours in a sequence), and none of the
    `must_not_differ` keys holds two different values."""

    name: str
    exact: list[str] = Field(min_length=1)
    similar: dict[str, float] = Field(default_factory=dict)
    max_edits: dict[str, int] = Field(default_factory=dict)  # key -> Damerau-Levenshtein distance
    must_not_differ: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError(f"rule name {value!r} must match [a-z][a-z0-9_]*")
        return value

    @field_validator("exact", "must_not_differ")
    @classmethod
    def _known_keys(cls, value: list[str]) -> list[str]:
        return _known_keys_in(value, "match")

    @field_validator("max_edits")
    @classmethod
    def _known_max_edits(cls, value: dict[str, int]) -> dict[str, int]:
        _known_keys_in(list(value), "max_edits")
        for key, edits in value.items():
            if not 1 <= edits <= 3:
                raise ValueError(f"max_edits for {key!r} must be 1, 2 or 3, got {edits}")
        return value

    @field_validator("similar")
    @classmethod
    def _known_similar(cls, value: dict[str, float]) -> dict[str, float]:
        for key, threshold in value.items():
            if key not in SIMILAR_KEYS:
                raise ValueError(f"unknown similar key {key!r}; expected one of: {', '.join(SIMILAR_KEYS)}")
            if not 0 < threshold <= 1:
                raise ValueError(f"similarity threshold for {key!r} must be in (0, 1], got {threshold}")
        return value


# Before any birth a customer or a historical record (parish registers, archives)
# holds, after the year-1 dates some systems write for "unknown" (0001-01-01).
EARLIEST_BIRTH_DATE = date(1000, 1, 1)


class BirthDateWindow(StrictModel):
    """The plausible birth dates; a parsed date outside them is NULL in the source lookup
    (and counted). `latest: today` is the day the lookup is built: no one is born in the future."""

    earliest: date | None = EARLIEST_BIRTH_DATE  # null: no lower bound
    latest: date | Literal["today"] = "today"

    @model_validator(mode="after")
    def _earliest_before_latest(self) -> BirthDateWindow:
        if self.earliest is not None and isinstance(self.latest, date) and self.earliest > self.latest:
            raise ValueError(f"earliest birth date {self.earliest} is after the latest, {self.latest}")
        return self


def _known_keys_in(value: list[str], what: str) -> list[str]:
    for key in value:
        if not is_known_key(key):
            raise ValueError(f"unknown {what} key {key!r}; expected one of: {', '.join(MATCH_KEYS)}, identifier:<name>")
    return value


class MatchModelConfig(StrictModel):
    """The Fellegi-Sunter match model: which record pairs it compares (`blocking`,
    lists of exact keys), the match probability a link needs, and which fields
    may veto a link when they clearly differ (`cannot_link`). Its m and u
    probabilities are estimated from the data, never configured."""

    enabled: bool = True
    threshold: float = Field(default=0.9, gt=0, lt=1)
    blocking: list[list[str]] | None = None  # null: the default blocking rules
    cannot_link: list[str] = Field(default_factory=lambda: ["first_name", "birth_date"])
    # random record pairs sampled to estimate u (how often non-matches agree by chance)
    u_sample_pairs: int = Field(default=250_000, ge=10_000)
    # candidate pairs per blocking rule used to estimate m by EM (a deterministic sample)
    em_max_pairs: int = Field(default=100_000, ge=1_000)

    @field_validator("blocking")
    @classmethod
    def _known_blocking_keys(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        for keys in value or []:
            if not keys:
                raise ValueError("a blocking rule needs at least one key")
            _known_keys_in(keys, "blocking")
        return value

    @field_validator("cannot_link")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in MODEL_FIELDS and identifier_of(name) is None:
                raise ValueError(
                    f"unknown field {name!r}; expected one of: {', '.join(MODEL_FIELDS)}, identifier:<name>"
                )
        return value


class IdentityConfig(StrictModel):
    """Identity resolution settings.

    By default records are linked by the match model plus one hard rule per
    source identifier (`same_<identifier>`). Configured `rules:` replace the
    hard rules; the model then runs only when `match_model:` is configured too,
    so a rule set written before the model keeps its meaning.
    """

    rules: list[MatchRule] | None = None
    birth_dates: BirthDateWindow = Field(default_factory=BirthDateWindow)
    match_model: MatchModelConfig | None = None
    max_records_per_key: int = Field(default=50, ge=2)
    max_cluster_size: int = Field(default=25, ge=2)
    # a steward's CSV of record pairs to link or keep apart (relative to cdm.yaml)
    overrides: str | None = None


SurvivorshipRule = Literal["precedence", "most_recent", "most_frequent"]


class CustomersConfig(StrictModel):
    """The golden record: which value survives per field.

    Every rule falls back on the others: `precedence` (default) takes the
    best-precedence source, then the most recent, then the most frequent
    value; `most_recent` and `most_frequent` lead with their own criterion.
    """

    survivorship: dict[str, SurvivorshipRule] = Field(default_factory=dict)


class EntityConfig(StrictModel):
    """A customer-like entity besides `customer`, such as B2B accounts or marketplace
    sellers: its sources get a lookup, identity graph, stable ids and golden records
    of their own (`identity.<name>_source_lookup` ... `marts.<table>`)."""

    table: str | None = None  # the golden-record table in `marts`; default: the name + "s"
    id_prefix: str | None = None  # prefix of the entity's ids; default: its first three letters + "_"
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    survivorship: dict[str, SurvivorshipRule] = Field(default_factory=dict)

    @field_validator("table")
    @classmethod
    def _safe_table(cls, value: str | None) -> str | None:
        if value is not None and (not SOURCE_NAME.match(value) or len(value) > 63):
            raise ValueError(f"unsafe table name {value!r}: expected lower-case [a-z][a-z0-9_]*")
        return value

    @field_validator("id_prefix")
    @classmethod
    def _safe_prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z][a-z0-9]{0,7}_$", value):
            raise ValueError(f"bad id prefix {value!r}: expected 1-8 lower-case letters or digits and '_', e.g. 'acc_'")
        return value
