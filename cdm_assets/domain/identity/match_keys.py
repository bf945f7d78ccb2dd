"""Match keys: the names rules and blocking use for the columns of `identity.source_lookup`."""

from __future__ import annotations

from cdm_assets.domain.vocabulary import match_key


def key_column(key: str) -> str:
    """The source lookup column of a match key; `identifier:<name>` → `id_<name>`."""
    return match_key(key).column
