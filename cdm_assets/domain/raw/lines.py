"""Physical lines of a landed text file, found without a parser.

Every delimited or JSON lines file is first cut into physical lines (ended by
`\\n`, `\\r\\n` or a lone `\\r`, as the CSV parser ends them), with numpy over
the raw bytes: this is the independent count that "rows in" rests on. Only
lines a parser could read differently (a quote left open, invalid UTF-8) get
a closer look in Python; the rest go to the parser as they are.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

_CR, _LF, _QUOTE = 13, 10, 34


@dataclass(frozen=True)
class Lines:
    """The file's bytes (UTF-8) and where each physical line starts and ends."""

    data: bytes
    starts: np.ndarray  # first byte of each line
    ends: np.ndarray  # one past its last byte, terminator excluded
    next_starts: np.ndarray  # first byte after its terminator

    def without_first(self, count: int) -> Lines:
        """The same file without its first `count` lines (a header)."""
        return Lines(self.data, self.starts[count:], self.ends[count:], self.next_starts[count:])

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, index: int) -> bytes:
        return self.data[self.starts[index] : self.ends[index]]

    def span(self, first: int, last: int) -> bytes:
        """Lines `first`..`last` with the terminators between them, as in the file."""
        return self.data[self.starts[first] : self.ends[last]]

    def blank(self, whitespace: bytes = b"") -> np.ndarray:
        """Lines that are empty, or hold only `whitespace` bytes."""
        blank = self.ends == self.starts
        if whitespace and len(self):
            array = np.frombuffer(self.data, dtype=np.uint8)
            starts_blank = np.isin(array[np.minimum(self.starts, len(array) - 1)], list(whitespace))
            # only lines that start with whitespace can be blank; long lines hold data
            for index in np.flatnonzero(~blank & starts_blank & (self.ends - self.starts < 4096)):
                blank[index] = not self.line(index).strip(whitespace)
        return blank

    def quote_counts(self) -> np.ndarray:
        """How many double quotes each line holds."""
        quotes = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == _QUOTE)
        return np.searchsorted(quotes, self.ends) - np.searchsorted(quotes, self.starts)

    def undecodable(self) -> np.ndarray:
        """Indices of lines that are not valid UTF-8 (checked only when the file is not)."""
        try:
            self.data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return np.zeros(0, dtype=np.int64)
        return np.array([i for i in range(len(self)) if not _is_utf8(self.line(i))], dtype=np.int64)

    def as_arrow(self) -> pa.Array:
        """Each line's bytes (terminator excluded) as one Arrow binary value, copied once."""
        if not len(self):
            return pa.array([], type=pa.large_binary())
        region = np.frombuffer(self.data, dtype=np.uint8)[self.starts[0] : self.next_starts[-1]]
        text = np.ones(len(region), dtype=bool)
        terminator = self.next_starts - self.ends  # 0 (end of file), 1 (LF or CR) or 2 (CR LF) bytes
        text[self.ends[terminator > 0] - self.starts[0]] = False
        text[self.ends[terminator == 2] + 1 - self.starts[0]] = False
        lengths = (self.ends - self.starts).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return pa.Array.from_buffers(
            pa.large_binary(), len(self), [None, pa.py_buffer(offsets), pa.py_buffer(region[text])]
        )

    def select(self, keep: np.ndarray) -> bytes:
        """The kept lines, each with its own terminator, as one buffer."""
        if not len(self):
            return b""
        region = np.frombuffer(self.data, dtype=np.uint8)[self.starts[0] : self.next_starts[-1]]
        if keep.all():
            return region.tobytes()
        return region[np.repeat(keep, self.next_starts - self.starts)].tobytes()


def read_lines(data: bytes, encoding: str = "utf-8", skip: int = 0) -> Lines:
    """Cut `data` into physical lines after transcoding it to UTF-8; the first
    `skip` lines (a header) are left out. Bytes the encoding cannot decode are
    kept as they were, so they are flagged per column later, not lost."""
    data = to_utf8(data, encoding)
    array = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(array == _LF)  # where each terminator ends
    line_ends = ends.copy()  # where each line's text ends
    if len(ends):  # CR LF ends a line as one terminator
        line_ends[1:] -= array[ends[1:] - 1] == _CR
        if ends[0] > 0:
            line_ends[0] -= array[ends[0] - 1] == _CR
    crs = np.flatnonzero(array == _CR)
    lone = crs[(crs + 1 >= len(array)) | (array[np.minimum(crs + 1, len(array) - 1)] != _LF)] if len(crs) else crs
    if len(lone):  # a CR on its own ends a line too
        order = np.argsort(np.concatenate([ends, lone]), kind="stable")
        ends = np.concatenate([ends, lone])[order]
        line_ends = np.concatenate([line_ends, lone])[order]
    next_starts = ends + 1
    starts = np.concatenate(([0], next_starts[:-1])).astype(np.int64) if len(ends) else np.zeros(0, np.int64)
    if len(data) and (not len(ends) or ends[-1] != len(data) - 1):  # last line without a terminator
        starts = np.append(starts, next_starts[-1] if len(ends) else 0)
        line_ends = np.append(line_ends, len(data))
        next_starts = np.append(next_starts, len(data))
    return Lines(data, starts[skip:], line_ends[skip:], next_starts[skip:])


def to_utf8(data: bytes, encoding: str) -> bytes:
    """`data` in UTF-8; undecodable bytes pass through unchanged."""
    name = codecs.lookup(encoding).name
    if name == "utf-8":
        return data
    if name == "utf-8-sig":
        return data.removeprefix(codecs.BOM_UTF8)
    return data.decode(encoding, errors="surrogateescape").encode("utf-8", errors="surrogateescape")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def printable(data: bytes) -> str:
    """Text of a raw line for the quarantine: undecodable bytes as `\\xNN`."""
    return data.decode("utf-8", errors="backslashreplace")
