"""Match keys: the names rules and blocking use for the columns of `identity.source_lookup`."""

from __future__ import annotations

# Match key → column of identity.source_lookup; `identifier:<name>` → `id_<name>`.
KEY_COLUMNS = {
    "email": "email_key",
    "phone": "phone_key",
    "first_name": "first_name_key",
    "first_name_root": "first_name_root",
    "last_name": "last_name_key",
    "last_name_core": "last_name_core",
    "birth_date": "birth_date_key",
    "postcode": "postcode_key",
    "address": "address_key",
}


def key_column(key: str) -> str:
    if key.startswith("identifier:"):
        return "id_" + key.split(":", 1)[1]
    return KEY_COLUMNS[key]
