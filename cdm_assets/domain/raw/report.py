"""What one load of a source did: the figures its materialisation reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cdm_assets.domain.sql import TableName


@dataclass
class RawLoadReport:
    """What one load of a source did; the figures a materialisation reports."""

    source: str
    table: TableName
    files: list[str]
    rows_in: int = 0
    rows_accepted: int = 0
    quarantined_by_reason: Counter = field(default_factory=Counter)
    suppressed: int = 0  # rows of erased people left out (privacy.suppressions)
    seconds: float = 0.0  # wall time of the load, swap included
    files_read: int | None = None  # files this load read, when it read only those new or changed

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())
