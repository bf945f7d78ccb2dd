"""SQL text: the one place that quotes names and constants and names tables.

Every statement the domain writes puts identifiers through `quote_ident` and
constants through `sql_string` (values from users are bound as parameters
instead). Tables are `TableName`s; scratch tables live in the `temp` schema
and staging tables carry the building process's token.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

_SCHEMA_OR_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")
# Source columns are quoted identifiers in SQL; refuse what could break out of
# the quotes or hide in logs (double quotes, control characters).
UNSAFE_COLUMN = re.compile(r'["\x00-\x1f\x7f]')
MAX_IDENTIFIER_LENGTH = 128

# Staging tables carry the token of the process that builds them. Only one
# process writes a DuckDB file at a time, so staging tables of another token
# were left by a process that died mid-build (a killed run) and can go.
STAGING_PREFIX = "_staging_"
PROCESS_TOKEN = uuid.uuid4().hex[:8]
SCRATCH = "temp"  # the schema of per-connection scratch tables: in memory, never written to the file


class StatementError(RuntimeError):
    """A statement an engine other than DuckDB could not run (DuckDB raises its own
    `duckdb.Error`); the message says what the engine said and which statement it was."""


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB; refuses names that cannot be quoted safely."""
    if not name or '"' in name or any(ord(ch) < 32 for ch in name):
        raise ValueError(f"unsafe identifier {name!r}")
    return f'"{name}"'


def check_column_name(name: str) -> str:
    """Accept a source column name that can be safely quoted in SQL."""
    if not name or not name.strip():
        raise ValueError("column name must not be empty")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"column name longer than {MAX_IDENTIFIER_LENGTH} characters")
    if UNSAFE_COLUMN.search(name):
        raise ValueError(f"unsafe column name {name!r}: double quotes and control characters are not allowed")
    return name


def sql_string(value: str) -> str:
    """A single-quoted SQL literal for a constant of our own (reference data, names from the config)."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """A parenthesised list of literals, for `x IN (...)`; `(NULL)`, which holds nothing, when empty."""
    return "(" + (", ".join(sql_string(v) for v in values) or "NULL") + ")"


def sql_array(values: Iterable[str]) -> str:
    """A list literal of text values: `['a', 'b']`."""
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


@dataclass(frozen=True)
class TableName:
    """A schema-qualified warehouse table such as `raw.crm`."""

    schema: str
    name: str

    def __post_init__(self) -> None:
        for part in (self.schema, self.name):
            if not _SCHEMA_OR_TABLE.match(part):
                raise ValueError(f"unsafe table name part {part!r}")

    @classmethod
    def parse(cls, qualified: str) -> TableName:
        schema, _, name = qualified.partition(".")
        return cls(schema, name)

    @property
    def sql(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def staging(self) -> TableName:
        """A fresh staging name beside the table (unique per build)."""
        return TableName(self.schema, f"{STAGING_PREFIX}{self.name}_{PROCESS_TOKEN}_{uuid.uuid4().hex[:8]}")

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def create_table(table: TableName) -> str:
    """`CREATE TABLE <table>`, or `CREATE TEMP TABLE` for a scratch table (schema `temp`).

    Intermediate results that only one build reads belong in scratch tables:
    writing a persistent table compresses it, which costs about as much as
    computing it.
    """
    if table.schema == SCRATCH:
        return f"CREATE TEMP TABLE {quote_ident(table.name)}"
    return f"CREATE TABLE {table.sql}"


def union_all(selects: Iterable[str]) -> str:
    """SELECTs combined with UNION ALL, each in parentheses (a LIMIT in one stays its own)."""
    return " UNION ALL ".join(f"({select})" for select in selects)


def sample_hash(*values: str) -> str:
    """A pseudo-random text of the SQL `values` that every engine computes alike (the hex
    digits of an MD5), for the samples a match model learns from: DuckDB and Spark draw
    the same records, so they train the same model. (DuckDB's `hash` is its own.)"""
    return f"md5(concat_ws('|', {', '.join(f'CAST({v} AS VARCHAR)' for v in values)}))"


def hash_bucket(value: str, buckets_param: str) -> str:
    """SQL: the bucket 0..n-1 of `value`'s hash, n the parameter `buckets_param`, on every
    engine. DuckDB's hash is unsigned; Spark's is signed, and the remainder of a negative
    hash is negative there, so the remainder is shifted into 0..n-1 before it is compared."""
    return f"((hash({value}) % ${buckets_param}) + ${buckets_param}) % ${buckets_param}"


def in_sample(threshold_param: str, *values: str) -> str:
    """True for a share of the rows, drawn by `sample_hash` of `values`; the parameter
    `threshold_param` holds `sample_threshold(share)`."""
    return f"left({sample_hash(*values)}, 8) < ${threshold_param}"


def sample_threshold(share: float) -> str:
    """The value of `in_sample`'s parameter for a share 0..1 of the rows."""
    if share >= 1:
        return "g"  # above every hex digit: all rows
    return f"{max(0, int(share * 16**8)):08x}"
