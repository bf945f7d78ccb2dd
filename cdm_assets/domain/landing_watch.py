"""A small fingerprint of a landing folder: which files, how big, when changed.

Sensors compare fingerprints between evaluations; the digest is short so it
fits in a sensor cursor whatever the number of files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cdm_assets.domain.raw.load import landed_files


@dataclass(frozen=True)
class LandingFingerprint:
    digest: str
    files: int
    bytes: int
    newest_change: float = 0.0  # seconds since the epoch; not kept in the cursor

    def as_cursor(self) -> str:
        return f"{self.digest}:{self.files}:{self.bytes}"

    @classmethod
    def from_cursor(cls, cursor: str | None) -> LandingFingerprint | None:
        if not cursor:
            return None
        digest, files, size = cursor.split(":")
        return cls(digest, int(files), int(size))


def landing_fingerprint(pattern: Path) -> LandingFingerprint:
    """Name, size and modification time of every matching file, hashed."""
    hasher = hashlib.sha256()
    total = 0
    newest = 0.0
    files = landed_files(pattern)
    for path in files:
        stat = os.stat(path)
        total += stat.st_size
        newest = max(newest, stat.st_mtime)
        hasher.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return LandingFingerprint(hasher.hexdigest()[:32], len(files), total, newest)
