"""Steward overrides as a steward writes them: a CSV of record pairs and a decision.

Columns `source_a, record_id_a, source_b, record_id_b, action` (`link`: the two
records are one person; `unlink`: they never are) and an optional `reason`;
other columns (a steward's name, a ticket number) are kept out of the way.
Header names are matched without regard to case or surrounding blanks, values
are trimmed, and blank lines are skipped. A line that cannot be read is an
error naming the file, the line and the column: a steward's decision is never
dropped silently, and a failed build leaves the previous graph in place.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

LINK, UNLINK = "link", "unlink"
RECORD_COLUMNS = ("source_a", "record_id_a", "source_b", "record_id_b")
REQUIRED_COLUMNS = (*RECORD_COLUMNS, "action")


class OverrideFileError(ValueError):
    """The overrides file cannot be read as written; the message names the file, line and column."""


@dataclass(frozen=True)
class Override:
    """One line of the overrides file: two records (source, record id) and the decision."""

    line: int
    action: str  # link | unlink
    source_a: str
    record_id_a: str
    source_b: str
    record_id_b: str
    reason: str | None = None

    @property
    def pair(self) -> frozenset[tuple[str, str]]:
        return frozenset({(self.source_a, self.record_id_a), (self.source_b, self.record_id_b)})


def read_overrides(path: str | Path) -> list[Override]:
    """Every override of the file at `path`, in file order; `[]` for an empty file."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                return []
            names = _columns(path, header)
            overrides = []
            for row in reader:
                if any(cell.strip() for cell in row):
                    overrides.append(_override(path, reader.line_num, names, row))
    except UnicodeDecodeError as error:
        raise OverrideFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise OverrideFileError(f"{path}:{reader.line_num}: {error}") from None
    _check_contradictions(path, overrides)
    return overrides


def _columns(path: Path, header: list[str]) -> list[str]:
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise OverrideFileError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the header needs "
            f"{', '.join(REQUIRED_COLUMNS)} and may add reason"
        )
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise OverrideFileError(f"{path}:1: column(s) {', '.join(repeated)} appear more than once")
    return names


def _override(path: Path, line: int, names: list[str], row: list[str]) -> Override:
    if len(row) != len(names):
        raise OverrideFileError(f"{path}:{line}: {len(row)} fields, but the header has {len(names)}")
    values = {name: cell.strip() for name, cell in zip(names, row)}
    for column in REQUIRED_COLUMNS:
        if not values[column]:
            raise OverrideFileError(f"{path}:{line}: column {column} is empty")
    action = values["action"].lower()
    if action not in (LINK, UNLINK):
        raise OverrideFileError(f"{path}:{line}: column action is {values['action']!r}; expected link or unlink")
    override = Override(line, action, *(values[c] for c in RECORD_COLUMNS), values.get("reason") or None)
    if len(override.pair) == 1:
        raise OverrideFileError(
            f"{path}:{line}: both sides name {override.source_a}:{override.record_id_a}; expected two records"
        )
    return override


def _check_contradictions(path: Path, overrides: list[Override]) -> None:
    """The same pair both linked and unlinked is a contradiction only the steward can settle."""
    first_line: dict[tuple[frozenset, str], int] = {}
    for override in overrides:
        first_line.setdefault((override.pair, override.action), override.line)
        other = LINK if override.action == UNLINK else UNLINK
        if (override.pair, other) in first_line:
            raise OverrideFileError(
                f"{path}:{override.line}: {override.action} of {override.source_a}:{override.record_id_a} and "
                f"{override.source_b}:{override.record_id_b} contradicts the {other} at line "
                f"{first_line[(override.pair, other)]}"
            )
