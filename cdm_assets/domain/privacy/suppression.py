"""Suppressions: the identifiers of erased people, kept only as salted hashes.

`privacy.suppressions` holds one row per identifier: its kind and
`sha256(salt || kind || ':' || value)`, never the value. The salt is drawn once
per warehouse (`privacy.salt`), so the hashes of two warehouses differ and a
hash cannot be looked up in a table of known emails made elsewhere. Kinds and
the value that is hashed:

- `record`: a customer record, `<source> \\x1f <record id>` (a transaction or event
  pointing at it is that record's too);
- `email`: the address trimmed and lower-cased;
- `phone`: the digits of every usual way to write the number: the national
  significant number, with the trunk prefix, with the calling code, with `00`
  and the calling code (`612345678`, `0612345678`, `31612345678`, `0031612345678`),
  and with both the calling code and the trunk prefix (`+31 (0)6 ...`);
- `anonymous_id`: a tracking id stitched to the person.

A landed row is suppressed when any of its values hashes to a suppression;
raw text (a quarantined row) when any of its words does.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Iterable

import duckdb
import phonenumbers

from cdm_assets.domain.plan import Source
from cdm_assets.domain.sql import TableName, quote_ident, sql_string
from cdm_assets.domain.vocabulary import EVENT, TRANSACTION
from cdm_assets.domain.warehouse import ensure_schemas, table_exists

SALT = TableName("privacy", "salt")
SUPPRESSIONS = TableName("privacy", "suppressions")
RECORD, EMAIL, PHONE, ANONYMOUS_ID = "record", "email", "phone", "anonymous_id"
_UNIT = chr(31)  # between a source and a record id, as the stable ids hash them


def ensure_salt(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse's salt, drawn at the first erasure; creates the privacy tables."""
    ensure_schemas(con, "privacy")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SALT.sql} (salt VARCHAR NOT NULL)")
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {SUPPRESSIONS.sql} (
            kind VARCHAR NOT NULL,            -- record | email | phone | anonymous_id
            hash VARCHAR NOT NULL,            -- sha256(salt || kind || ':' || value), hex
            erasure_id VARCHAR NOT NULL,      -- the erasure that added it (privacy.erasures)
            suppressed_at TIMESTAMP NOT NULL
        )
        """
    )
    found = con.execute(f"SELECT salt FROM {SALT.sql}").fetchall()
    if found:
        return found[0][0]
    salt = secrets.token_hex(16)
    con.execute(f"INSERT INTO {SALT.sql} VALUES (?)", [salt])
    return salt


def active_salt(con: duckdb.DuckDBPyConnection) -> str | None:
    """The salt when the warehouse holds suppressions, else None: nothing to filter."""
    if not table_exists(con, SUPPRESSIONS) or not table_exists(con, SALT):
        return None
    held = con.execute(f"SELECT EXISTS (SELECT 1 FROM {SUPPRESSIONS.sql})").fetchall()[0][0]
    if not held:
        return None
    return con.execute(f"SELECT salt FROM {SALT.sql}").fetchall()[0][0]


def identifier_hash(salt: str, kind: str, value: str) -> str:
    """The hash of one identifier, as `hash_sql` computes it in the warehouse."""
    return hashlib.sha256(f"{salt}{kind}:{value}".encode()).hexdigest()


def record_value(source: str, record_id: str) -> str:
    return f"{source}{_UNIT}{record_id.strip()}"


def email_value(email: str) -> str:
    return email.strip().lower()


def phone_values(number: str, region: str | None = None) -> list[str]:
    """The digit strings a phone number is written as (see the module's doc); [] when it
    cannot be read. A number without its calling code needs `region`; without one, only
    its digits as written count."""
    digits = "".join(c for c in number if c.isdigit())
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return [digits] if digits else []
    national = phonenumbers.national_significant_number(parsed)
    code = str(parsed.country_code)
    region_of_number = phonenumbers.region_code_for_country_code(parsed.country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region_of_number)
    trunk = (metadata.national_prefix if metadata is not None else None) or ""
    forms = [national, f"{trunk}{national}", f"{code}{national}", f"00{code}{national}", digits]
    forms += [f"{code}{trunk}{national}", f"00{code}{trunk}{national}"]  # +31 (0)6 ...
    return list(dict.fromkeys(f for f in forms if f))


def hash_sql(kind: str, value_sql: str, salt: str) -> str:
    """SQL for the hash of an identifier whose (already normalised) text is `value_sql`."""
    return f"sha256({sql_string(salt)} || {sql_string(kind + ':')} || {value_sql})"


def _text(column: str) -> str:
    return f"CAST({quote_ident(column)} AS VARCHAR)"


class Suppressed:
    """Matches identifiers against the stored hashes: what a load uses."""

    def __init__(self, salt: str):
        self.salt = salt

    def holds(self, kind: str, value_sql: str) -> str:
        """SQL: the identifier of `kind` whose normalised text is `value_sql` is suppressed."""
        return f"{hash_sql(kind, value_sql, self.salt)} IN (SELECT hash FROM {SUPPRESSIONS.sql})"

    def any_of(self, kind: str, values_sql: str) -> str:
        """SQL: some element of the list `values_sql` is a suppressed identifier of `kind`."""
        hashed = f"list_transform({values_sql}, lambda v: {hash_sql(kind, 'v', self.salt)})"
        return f"list_has_any({hashed}, (SELECT list(hash) FROM {SUPPRESSIONS.sql}))"


class Listed:
    """Matches identifiers against plain values held in a scratch table (kind, value): what an
    erasure uses for its own person, whose values it has in hand and never writes to the file."""

    def __init__(self, table: TableName):
        self.table = table

    def _values(self, kind: str) -> str:
        return f"SELECT value FROM {self.table.sql} WHERE kind = {sql_string(kind)}"

    def holds(self, kind: str, value_sql: str) -> str:
        return f"{value_sql} IN ({self._values(kind)})"

    def any_of(self, kind: str, values_sql: str) -> str:
        return f"list_has_any({values_sql}, (SELECT list(value) FROM ({self._values(kind)})))"


Matcher = Suppressed | Listed


def row_identifiers_sql(source: Source, present: Collection[str] | None = None) -> list[tuple[str, str]]:
    """(kind, SQL of the normalised value) of each identifier a landed row of `source`
    carries (of the columns `present` in its file, when given: a JSON lines file may lack one)."""
    found = []

    def has(*columns: str | None) -> bool:
        return present is None or all(c in present for c in columns if c)

    if source.entity not in (TRANSACTION, EVENT) and has(source.record_id):
        found.append((RECORD, f"{sql_string(source.name + _UNIT)} || trim({_text(source.record_id)})"))
    reference = source.customer
    if reference is not None and has(reference.column, reference.source_column):
        ref_source = (
            sql_string(reference.source) if reference.source else f"trim({_text(reference.source_column or '')})"
        )
        found.append((RECORD, f"{ref_source} || chr(31) || trim({_text(reference.column)})"))
    fields = {name: mapping for name, mapping in source.fields.items() if has(mapping.column)}
    if "email" in fields:
        found.append((EMAIL, f"lower(trim({_text(fields['email'].column)}))"))
    if "phone" in fields:
        found.append((PHONE, f"regexp_replace({_text(fields['phone'].column)}, '[^0-9]', '', 'g')"))
    if "anonymous_id" in fields:
        found.append((ANONYMOUS_ID, f"trim({_text(fields['anonymous_id'].column)})"))
    return found


def row_suppressed_sql(source: Source, match: Matcher, present: Collection[str] | None = None) -> str:
    """A condition true for a landed row of `source` that carries a matching identifier."""
    identifiers = row_identifiers_sql(source, present)
    if not identifiers:
        return "false"
    return f"coalesce({' OR '.join(match.holds(kind, value) for kind, value in identifiers)}, false)"


def text_suppressed_sql(text_sql: str, source_sql: str, match: Matcher) -> str:
    """A condition true when raw text (a quarantined row as it arrived) holds a matching
    email, anonymous id or record id of the row's source as a word, or a matching phone."""
    # words end at blanks, separators, quotes and brackets: "Jan <jan@x.nl>" holds jan@x.nl
    words = f"regexp_split_to_array({text_sql}, '[\\s,;|\t\"''{{}}\\[\\]()<>:]+')"
    phones = f"regexp_extract_all({text_sql}, '[+(]?[0-9][0-9 ()./-]{{4,}}[0-9]')"
    conditions = [
        match.any_of(EMAIL, f"list_transform({words}, lambda w: lower(w))"),
        match.any_of(ANONYMOUS_ID, words),
        match.any_of(RECORD, f"list_transform({words}, lambda w: {source_sql} || chr(31) || w)"),
        match.any_of(PHONE, f"list_transform({phones}, lambda p: regexp_replace(p, '[^0-9]', '', 'g'))"),
    ]
    return f"coalesce({' OR '.join(conditions)}, false)"


def add_suppressions(
    con: duckdb.DuckDBPyConnection, salt: str, identifiers: Iterable[tuple[str, str]], erasure_id: str
) -> int:
    """Store the hashes of `identifiers` (kind, normalised value) not suppressed yet; returns how many were new."""
    hashes = sorted({(kind, identifier_hash(salt, kind, value)) for kind, value in identifiers if value})
    if not hashes:
        return 0
    before = con.execute(f"SELECT count(*) FROM {SUPPRESSIONS.sql}").fetchall()[0][0]
    con.executemany(
        f"""
        INSERT INTO {SUPPRESSIONS.sql}
        SELECT $kind, $hash, $erasure, current_timestamp
        WHERE NOT EXISTS (SELECT 1 FROM {SUPPRESSIONS.sql} WHERE hash = $hash)
        """,
        [{"kind": kind, "hash": value, "erasure": erasure_id} for kind, value in hashes],
    )
    return con.execute(f"SELECT count(*) FROM {SUPPRESSIONS.sql}").fetchall()[0][0] - before
