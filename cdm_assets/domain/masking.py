"""Masking personal values before they leave the warehouse as metadata.

Previews of tables and samples of failing rows are copied into Dagster's
event log, a store with other access rules that no erasure reaches. There a
value is shown masked, by what it is: a name as its initial ("J."), an email
as "j***@g***.com", a phone by its last two digits, a birth date by its year,
an address or an id not at all ("***"). Counts, schemas and distributions
are not personal and stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

# How a column's values are masked.
NAME, EMAIL, PHONE, BIRTH_DATE, POSTCODE, HIDDEN = "name", "email", "phone", "birth_date", "postcode", "hidden"
# A reference to a customer: a source's record id, or an email where that is the reference.
REFERENCE = "reference"
MASKED = "***"

# Columns of the identity and mart tables that hold personal values, by kind.
KNOWN_COLUMNS: dict[str, str] = {
    "first_name": NAME, "last_name": NAME, "full_name": NAME,
    "first_name_key": NAME, "first_name_root": NAME, "last_name_key": NAME, "last_name_core": NAME, "name_initials": NAME,
    "email": EMAIL, "email_key": EMAIL,
    "phone": PHONE, "phone_key": PHONE,
    "birth_date": BIRTH_DATE, "birth_date_key": BIRTH_DATE,
    "street": HIDDEN, "house_number": HIDDEN, "address_key": HIDDEN, "raw_row": HIDDEN,
    "postcode": POSTCODE, "postcode_key": POSTCODE,
    "anonymous_id": HIDDEN, "customer_ref": REFERENCE,
}  # fmt: skip
# Canonical source fields and the kind of their raw column.
FIELD_KINDS = {
    "first_name": NAME, "last_name": NAME, "full_name": NAME, "email": EMAIL, "phone": PHONE,
    "birth_date": BIRTH_DATE, "street": HIDDEN, "postcode": POSTCODE, "anonymous_id": HIDDEN,
}  # fmt: skip


@dataclass(frozen=True)
class PreviewPolicy:
    """How personal columns show in metadata: `masked`, `off` (no rows at all) or `full`."""

    mode: str = "masked"
    # column name -> kind, besides KNOWN_COLUMNS and `id_<name>` (hidden)
    columns: Mapping[str, str] = field(default_factory=dict)

    @property
    def shows_rows(self) -> bool:
        return self.mode != "off"

    def kind(self, column: str) -> str | None:
        if self.mode == "full":
            return None
        if column in self.columns:
            return self.columns[column]
        if column.startswith("id_"):
            return HIDDEN
        return KNOWN_COLUMNS.get(column)

    def value(self, column: str, value: object) -> object:
        """The value as metadata may show it."""
        kind = self.kind(column)
        return value if kind is None or value is None else mask(kind, value)

    def row(self, row: Mapping[str, object]) -> dict[str, object]:
        return {column: self.value(column, value) for column, value in row.items()}


def mask(kind: str, value: object) -> str:
    text = str(value).strip()
    if not text:
        return text
    if kind == NAME:
        return text[0].upper() + "."
    if kind == EMAIL:
        return _masked_email(text)
    if kind == PHONE:
        digits = re.sub(r"\D", "", text)
        return MASKED + digits[-2:] if len(digits) > 2 else MASKED
    if kind == BIRTH_DATE:
        if isinstance(value, (date, datetime)):
            return str(value.year)
        year = re.search(r"\d{4}", text)
        return year.group() if year else MASKED
    if kind == REFERENCE:
        return _masked_email(text) if "@" in text else text
    if kind == POSTCODE:
        return text[:2] + "**" if len(text) > 2 else MASKED
    return MASKED


def _masked_email(text: str) -> str:
    local, at, domain = text.partition("@")
    if not at:
        return MASKED
    label, dot, tld = domain.rpartition(".")
    if not dot:
        label, tld = domain, ""
    return f"{local[:1]}***@{label[:1]}***" + (f".{tld}" if tld else "")


def source_columns(fields: Mapping[str, object], identifiers: Iterable[str], column_of) -> dict[str, str]:
    """The kinds of a raw source's own columns, from its field mapping and identifier columns."""
    kinds = {column_of(mapping): FIELD_KINDS[name] for name, mapping in fields.items() if name in FIELD_KINDS}
    kinds.update({column: HIDDEN for column in identifiers})
    return kinds
