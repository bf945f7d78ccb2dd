"""What reading one landed file gives: its rows, its rejects and how many rows came in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

# the quarantine's stage for rows a raw load rejects
RAW_STAGE = "raw"


class LandingError(ValueError):
    """A landed file cannot be read at all (the message names the file)."""


@dataclass(frozen=True)
class Reject:
    """One input row that could not be accepted, and why."""

    row_number: int
    reason: str
    raw: str
    column: str | None = None


@dataclass
class LandedFile:
    path: Path
    rows: pa.Table  # source columns (binary) + _row_number
    rejects: list[Reject] = field(default_factory=list)
    # Rows in the file, counted from its physical lines without the parser:
    # every one of them is accepted or quarantined.
    rows_in: int = 0
