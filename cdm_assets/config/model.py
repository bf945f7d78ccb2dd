"""The shape of `cdm.yaml`, as pydantic models.

Only structure and local rules live here (names, formats, allowed fields).
Rules that span sources (a transaction pointing at an existing customer
source) are checked on the whole document in `CdmConfig`.
"""

from __future__ import annotations

import codecs
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cdm_assets.domain.plan import FileFormat
from cdm_assets.domain.sql import check_column_name
from cdm_assets.domain.vocabulary import (
    BUILT_IN_ENTITIES,
    CANONICAL_FIELDS,
    CUSTOMER,
    DATE_FIELDS,
    GOLDEN_FIELDS,
    MATCH_KEYS,
    MODEL_FIELDS,
    SIMILAR_KEYS,
    default_golden_table,
    default_id_prefix,
    identifier_of,
    is_known_key,
)

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STRFTIME_DIRECTIVE = re.compile(r"%(.)")
KNOWN_DIRECTIVES = set("aAwdbBmyYHIpMSfzZjUWcxX%GuVeT")


ColumnName = Annotated[str, Field(min_length=1)]
# A column name checked on the spot (other models check theirs in their validators).
SafeColumnName = Annotated[str, Field(min_length=1), AfterValidator(check_column_name)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateColumn(StrictModel):
    """A date or timestamp column with its strftime format, e.g. `%d/%m/%Y`."""

    column: SafeColumnName
    format: str

    @field_validator("format")
    @classmethod
    def _strftime_format(cls, value: str) -> str:
        directives = STRFTIME_DIRECTIVE.findall(value)
        unknown = sorted({d for d in directives if d not in KNOWN_DIRECTIVES})
        if unknown:
            raise ValueError(
                f"bad date format {value!r}: unknown directive(s) {', '.join('%' + d for d in unknown)}; "
                "expected a strftime format such as '%Y-%m-%d' or '%d/%m/%Y'"
            )
        if not directives or value.count("%") != len(directives) + value.count("%%"):
            raise ValueError(f"bad date format {value!r}: expected a strftime format such as '%Y-%m-%d' or '%d/%m/%Y'")
        return value


FieldMapping = ColumnName | DateColumn


def column_of(mapping: FieldMapping) -> str:
    """The source column a canonical field reads from."""
    return mapping.column if isinstance(mapping, DateColumn) else mapping


def format_of(mapping: FieldMapping) -> str | None:
    """The configured date format of a field, if it has one."""
    return mapping.format if isinstance(mapping, DateColumn) else None


class CustomerReference(StrictModel):
    """How a transaction or event row points at a customer record.

    Either a fixed customer source (`source`) or a column naming the source
    per row (`source_column`), plus the column holding the record id.
    """

    source: str | None = None
    source_column: ColumnName | None = None
    column: ColumnName

    @field_validator("source_column", "column")
    @classmethod
    def _safe_column(cls, value: str | None) -> str | None:
        return None if value is None else check_column_name(value)

    @model_validator(mode="after")
    def _one_way_to_find_the_source(self) -> CustomerReference:
        if (self.source is None) == (self.source_column is None):
            raise ValueError("expected exactly one of 'source' (a customer source name) or 'source_column'")
        return self


class TransactionTypes(StrictModel):
    order: list[str] = Field(default_factory=lambda: ["order", "sale", "purchase", "payment"])
    return_: list[str] = Field(default_factory=lambda: ["return", "refund", "credit"], alias="return")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RecordReference(StrictModel):
    """A column of a customer-like record holding the id of a record of another source,
    e.g. a contact's account: `{source: crm_accounts, column: company_id}`."""

    source: str
    column: SafeColumnName


class NumberFormat(StrictModel):
    """How a source writes numbers: the decimal mark and an optional thousands
    separator, e.g. `{decimal: ",", thousands: "."}` for 1.234,56. A value that
    does not fit is quarantined, never read another way."""

    decimal: Literal[".", ","] = "."
    thousands: Literal[".", ",", " ", "'", "_"] | None = None

    @model_validator(mode="after")
    def _different_marks(self) -> NumberFormat:
        if self.thousands == self.decimal:
            raise ValueError(f"thousands separator and decimal mark are both {self.decimal!r}")
        return self

    def describe(self) -> str:
        thousands = f"thousands {self.thousands!r}" if self.thousands else "no thousands separator"
        return f"decimal {self.decimal!r}, {thousands}"


class SourceConfig(StrictModel):
    """One landed source: where its files are and how its columns map.

    `entity` is `customer`, `transaction`, `event` or a customer-like entity
    declared under `entities:` (e.g. `account`); customer-like sources are
    matched, clustered and given golden records of their entity.
    """

    entity: str
    path: str = Field(min_length=1)
    format: FileFormat | None = None
    record_id: ColumnName
    precedence: int = 100
    phone_region: str | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    number_format: NumberFormat = Field(default_factory=NumberFormat)
    fields: dict[str, FieldMapping] = Field(default_factory=dict)
    identifiers: dict[str, ColumnName] = Field(default_factory=dict)
    attributes: dict[str, ColumnName] = Field(default_factory=dict)
    customer: CustomerReference | None = None
    # Customer-like sources: records of another entity this record belongs to (entity: reference).
    links: dict[str, RecordReference] = Field(default_factory=dict)
    # When the record last changed in its source: decides "most recent" in
    # survivorship and gives customers their first and last seen.
    updated_at: FieldMapping | None = None
    # Transaction type values meaning an order or a return (case-insensitive).
    type_values: TransactionTypes | None = None

    @field_validator("updated_at")
    @classmethod
    def _safe_updated_at(cls, value: FieldMapping | None) -> FieldMapping | None:
        if isinstance(value, str):
            check_column_name(value)
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; expected one Python knows, such as 'utf-8', 'latin-1' or 'cp1252'"
            ) from None
        return value

    @field_validator("record_id")
    @classmethod
    def _safe_record_id(cls, value: str) -> str:
        return check_column_name(value)

    @field_validator("identifiers", "attributes")
    @classmethod
    def _safe_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, column in value.items():
            if not SOURCE_NAME.match(name):
                raise ValueError(f"name {name!r} must match [a-z][a-z0-9_]*")
            check_column_name(column)
        return value

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}: expected an ISO 3166 alpha-2 code such as 'NL'")
        return region

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError(
                f"bad entity {value!r}: expected customer, transaction, event or an entity declared under 'entities'"
            )
        return value

    @property
    def kind(self) -> str:
        """`transaction`, `event`, or `customer` for every customer-like entity."""
        return self.entity if self.entity in ("transaction", "event") else CUSTOMER

    @model_validator(mode="after")
    def _fields_fit_the_entity(self) -> SourceConfig:
        allowed = CANONICAL_FIELDS[self.kind]
        for name, mapping in self.fields.items():
            if name not in allowed:
                raise FieldError(
                    ("fields", name),
                    f"unknown canonical field {name!r} for a {self.kind} source; expected one of: {', '.join(allowed)}",
                )
            if isinstance(mapping, DateColumn) and name not in DATE_FIELDS:
                raise FieldError(("fields", name), f"{name!r} is not a date field; map it to a column name")
            if isinstance(mapping, str):
                try:
                    check_column_name(mapping)
                except ValueError as error:
                    raise FieldError(("fields", name), str(error)) from None
        if self.kind == CUSTOMER:
            if self.customer is not None:
                raise FieldError(("customer",), "only transaction and event sources point at a customer")
        else:
            for key in ("identifiers", "attributes", "links"):
                if getattr(self, key):
                    raise FieldError((key,), f"only customer-like sources have {key}")
        if self.entity == "transaction":
            missing = [f for f in ("amount", "occurred_at") if f not in self.fields]
            if missing:
                raise FieldError(("fields",), f"a transaction source must map {' and '.join(missing)}")
        return self

    def file_format(self) -> FileFormat:
        """The configured format, or the one the glob's extension implies."""
        if self.format is not None:
            return self.format
        suffix = Path(self.path).suffix.lower()
        by_suffix: dict[str, FileFormat] = {
            ".csv": "csv",
            ".txt": "csv",
            ".tsv": "csv",
            ".parquet": "parquet",
            ".pq": "parquet",
            ".jsonl": "jsonl",
            ".ndjson": "jsonl",
            ".json": "jsonl",
        }
        return by_suffix[suffix]

    def columns_used(self) -> list[str]:
        """Every source column the config reads, record id first."""
        columns = [self.record_id]
        columns += [column_of(m) for m in self.fields.values()]
        columns += list(self.identifiers.values()) + list(self.attributes.values())
        if self.updated_at is not None:
            columns.append(column_of(self.updated_at))
        if self.customer is not None:
            columns += [c for c in (self.customer.source_column, self.customer.column) if c]
        columns += [link.column for link in self.links.values()]
        return list(dict.fromkeys(columns))


class FieldError(ValueError):
    """A validation error that knows the key path below the model it came from."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path
        self.message = message


DUCKDB_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


class WarehouseConfig(StrictModel):
    duckdb_path: str = "data/cdm.duckdb"
    # DuckDB's limits for every step: it spills to disk beyond `memory_limit`
    # (default: DuckDB's own, 80% of RAM) and uses `threads` cores (default: all).
    memory_limit: str | None = None
    threads: int | None = Field(default=None, ge=1)

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not DUCKDB_SIZE.match(value):
            raise ValueError(f"bad memory limit {value!r}: expected a size such as '4GB' or '512MB'")
        return value


class MatchRule(StrictModel):
    """Two records are linked when every `exact` key is equal (and not empty),
    every `similar` key reaches its Jaro-Winkler threshold, every `max_edits`
    key is at most that many edits apart (for phones, addresses, postcodes and
    identifiers: and not neighbours in a sequence), and none of the
    `must_not_differ` keys holds two different values."""

    name: str
    exact: list[str] = Field(min_length=1)
    similar: dict[str, float] = Field(default_factory=dict)
    max_edits: dict[str, int] = Field(default_factory=dict)  # key -> Damerau-Levenshtein distance
    must_not_differ: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError(f"rule name {value!r} must match [a-z][a-z0-9_]*")
        return value

    @field_validator("exact", "must_not_differ")
    @classmethod
    def _known_keys(cls, value: list[str]) -> list[str]:
        return _known_keys_in(value, "match")

    @field_validator("max_edits")
    @classmethod
    def _known_max_edits(cls, value: dict[str, int]) -> dict[str, int]:
        _known_keys_in(list(value), "max_edits")
        for key, edits in value.items():
            if not 1 <= edits <= 3:
                raise ValueError(f"max_edits for {key!r} must be 1, 2 or 3, got {edits}")
        return value

    @field_validator("similar")
    @classmethod
    def _known_similar(cls, value: dict[str, float]) -> dict[str, float]:
        for key, threshold in value.items():
            if key not in SIMILAR_KEYS:
                raise ValueError(f"unknown similar key {key!r}; expected one of: {', '.join(SIMILAR_KEYS)}")
            if not 0 < threshold <= 1:
                raise ValueError(f"similarity threshold for {key!r} must be in (0, 1], got {threshold}")
        return value


# Before any birth a customer or a historical record (parish registers, archives)
# holds, after the year-1 dates some systems write for "unknown" (0001-01-01).
EARLIEST_BIRTH_DATE = date(1000, 1, 1)


class BirthDateWindow(StrictModel):
    """The plausible birth dates; a parsed date outside them is NULL in the source lookup
    (and counted). `latest: today` is the day the lookup is built: no one is born in the future."""

    earliest: date | None = EARLIEST_BIRTH_DATE  # null: no lower bound
    latest: date | Literal["today"] = "today"

    @model_validator(mode="after")
    def _earliest_before_latest(self) -> BirthDateWindow:
        if self.earliest is not None and isinstance(self.latest, date) and self.earliest > self.latest:
            raise ValueError(f"earliest birth date {self.earliest} is after the latest, {self.latest}")
        return self


def _known_keys_in(value: list[str], what: str) -> list[str]:
    for key in value:
        if not is_known_key(key):
            raise ValueError(f"unknown {what} key {key!r}; expected one of: {', '.join(MATCH_KEYS)}, identifier:<name>")
    return value


class MatchModelConfig(StrictModel):
    """The Fellegi-Sunter match model: which record pairs it compares (`blocking`,
    lists of exact keys), the match probability a link needs, and which fields
    may veto a link when they clearly differ (`cannot_link`). Its m and u
    probabilities are estimated from the data, never configured."""

    enabled: bool = True
    threshold: float = Field(default=0.9, gt=0, lt=1)
    blocking: list[list[str]] | None = None  # null: the default blocking rules
    cannot_link: list[str] = Field(default_factory=lambda: ["first_name", "birth_date"])
    # random record pairs sampled to estimate u (how often non-matches agree by chance)
    u_sample_pairs: int = Field(default=250_000, ge=10_000)
    # candidate pairs per blocking rule used to estimate m by EM (a deterministic sample)
    em_max_pairs: int = Field(default=100_000, ge=1_000)

    @field_validator("blocking")
    @classmethod
    def _known_blocking_keys(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        for keys in value or []:
            if not keys:
                raise ValueError("a blocking rule needs at least one key")
            _known_keys_in(keys, "blocking")
        return value

    @field_validator("cannot_link")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in MODEL_FIELDS and identifier_of(name) is None:
                raise ValueError(
                    f"unknown field {name!r}; expected one of: {', '.join(MODEL_FIELDS)}, identifier:<name>"
                )
        return value


class IdentityConfig(StrictModel):
    """Identity resolution settings.

    By default records are linked by the match model plus one hard rule per
    source identifier (`same_<identifier>`). Configured `rules:` replace the
    hard rules; the model then runs only when `match_model:` is configured too,
    so a rule set written before the model keeps its meaning.
    """

    rules: list[MatchRule] | None = None
    birth_dates: BirthDateWindow = Field(default_factory=BirthDateWindow)
    match_model: MatchModelConfig | None = None
    max_records_per_key: int = Field(default=50, ge=2)
    max_cluster_size: int = Field(default=25, ge=2)


SURVIVORSHIP_RULES = ("precedence", "most_recent", "most_frequent")
SurvivorshipRule = Literal["precedence", "most_recent", "most_frequent"]


class CustomersConfig(StrictModel):
    """The golden record: which value survives per field.

    Every rule falls back on the others: `precedence` (default) takes the
    best-precedence source, then the most recent, then the most frequent
    value; `most_recent` and `most_frequent` lead with their own criterion.
    """

    survivorship: dict[str, SurvivorshipRule] = Field(default_factory=dict)


class EntityConfig(StrictModel):
    """A customer-like entity besides `customer`, such as B2B accounts or marketplace
    sellers: its sources get a lookup, identity graph, stable ids and golden records
    of their own (`identity.<name>_source_lookup` ... `marts.<table>`)."""

    table: str | None = None  # the golden-record table in `marts`; default: the name + "s"
    id_prefix: str | None = None  # prefix of the entity's ids; default: its first three letters + "_"
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    survivorship: dict[str, SurvivorshipRule] = Field(default_factory=dict)

    @field_validator("table")
    @classmethod
    def _safe_table(cls, value: str | None) -> str | None:
        if value is not None and (not SOURCE_NAME.match(value) or len(value) > 63):
            raise ValueError(f"unsafe table name {value!r}: expected lower-case [a-z][a-z0-9_]*")
        return value

    @field_validator("id_prefix")
    @classmethod
    def _safe_prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z][a-z0-9]{0,7}_$", value):
            raise ValueError(f"bad id prefix {value!r}: expected 1-8 lower-case letters or digits and '_', e.g. 'acc_'")
        return value


class FreshnessConfig(StrictModel):
    """How old the marts may get before Dagster shows them late (warn) or stale (fail)."""

    warn_after_hours: float | None = Field(default=None, gt=0)
    fail_after_hours: float = Field(default=48, gt=0)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> FreshnessConfig:
        if self.warn_after_hours is not None and self.warn_after_hours >= self.fail_after_hours:
            raise FieldError(("warn_after_hours",), "must be less than fail_after_hours")
        return self


ASSET_KEY = re.compile(r"^(raw|identity|marts)/[a-z][a-z0-9_]*$")


class CustomCheck(StrictModel):
    """A data test of the user's own: SQL that returns the failing rows of one asset."""

    name: str
    asset: str  # the asset key it checks, e.g. marts/customers
    sql: str
    blocking: bool = False  # a failing blocking check stops the assets downstream in the run
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError(f"bad check name {value!r}: expected lower-case [a-z][a-z0-9_]*")
        return value

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        if not ASSET_KEY.match(value):
            raise ValueError(f"bad asset key {value!r}: expected raw/<source>, identity/<table> or marts/<table>")
        return value

    @field_validator("sql")
    @classmethod
    def _sql(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty SQL: expected a query returning the failing rows")
        return value.strip().rstrip(";")


class ChecksConfig(StrictModel):
    """Thresholds of the advisory data tests, freshness of the marts and the user's own checks."""

    max_unattributed_share: float = Field(default=0.10, ge=0, le=1)
    max_quarantine_share: float = Field(default=0.01, ge=0, le=1)
    max_row_count_drop: float = Field(default=0.5, ge=0, le=1)
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig)
    custom: list[CustomCheck] = Field(default_factory=list)

    @field_validator("custom")
    @classmethod
    def _unique(cls, value: list[CustomCheck]) -> list[CustomCheck]:
        seen: set[tuple[str, str]] = set()
        for index, check in enumerate(value):
            if (check.asset, check.name) in seen:
                raise FieldError((str(index), "name"), f"a second check {check.name!r} on {check.asset}")
            seen.add((check.asset, check.name))
        return value


class PrivacyConfig(StrictModel):
    """What personal data may leave the warehouse as Dagster metadata."""

    # previews of tables and samples of failing rows: masked values, none at all, or as they are
    previews: Literal["masked", "off", "full"] = "masked"


def resolve_path(path: str, base_dir: Path) -> Path:
    """A path from the config: `~` expanded, a relative one taken from `base_dir`."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (base_dir / candidate)


class CdmConfig(StrictModel):
    """A whole `cdm.yaml` document, with paths resolved against its folder."""

    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    sources: dict[str, SourceConfig]
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    customers: CustomersConfig = Field(default_factory=CustomersConfig)
    entities: dict[str, EntityConfig] = Field(default_factory=dict)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    config_path: Path | None = Field(default=None, exclude=True)
    # the stage whose overlay was applied (`CDM_ENV`, default `dev`); set by the loader
    environment: str = Field(default="dev", exclude=True)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        if not value:
            raise ValueError("at least one source is required")
        for name in value:
            if not SOURCE_NAME.match(name) or len(name) > 63:
                raise FieldError(
                    (name,), f"unsafe source name {name!r}: expected lower-case [a-z][a-z0-9_]* (at most 63 characters)"
                )
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> CdmConfig:
        self._check_entities()
        customer_sources = sorted(self.sources_of(CUSTOMER))
        for name, source in self.sources.items():
            if source.format is None:
                try:
                    source.file_format()
                except KeyError:
                    raise FieldError(
                        ("sources", name, "format"),
                        f"cannot tell the format from {source.path!r}; expected one of: csv, parquet, jsonl",
                    ) from None
            if source.kind != CUSTOMER and source.customer is not None and source.customer.source is not None:
                target = source.customer.source
                if target not in self.sources:
                    raise FieldError(
                        ("sources", name, "customer", "source"),
                        f"source {target!r} does not exist; customer sources are: {', '.join(customer_sources) or 'none'}",
                    )
                if self.sources[target].entity != CUSTOMER:
                    raise FieldError(
                        ("sources", name, "customer", "source"),
                        f"source {target!r} is a {self.sources[target].entity} source; expected a customer source "
                        f"({', '.join(customer_sources) or 'none'})",
                    )
            self._check_links(name, source)
        if not customer_sources:
            raise FieldError(("sources",), "at least one source with entity: customer is required")
        for entity in self.customer_entities():
            key = ("customers",) if entity == CUSTOMER else ("entities", entity)
            self._check_survivorship(entity, key)
            self._check_rule_identifiers(entity, (*key[:-1], "identity") if entity == CUSTOMER else (*key, "identity"))
        return self

    def _check_entities(self) -> None:
        tables = {default_golden_table(CUSTOMER), "transactions", "events", "customer_metrics"}
        prefixes = {default_id_prefix(CUSTOMER)}
        for entity in self.entities:
            if not SOURCE_NAME.match(entity) or len(entity) > 40 or entity in BUILT_IN_ENTITIES:
                raise FieldError(
                    ("entities", entity),
                    f"bad entity name {entity!r}: expected [a-z][a-z0-9_]* other than {', '.join(BUILT_IN_ENTITIES)} "
                    "(the customer entity is configured under 'identity' and 'customers')",
                )
            table, prefix = self.golden_table(entity), self.id_prefix(entity)
            if table in tables:
                raise FieldError(("entities", entity, "table"), f"table marts.{table} is taken; set another 'table'")
            if prefix in prefixes:
                raise FieldError(("entities", entity, "id_prefix"), f"id prefix {prefix!r} is taken; set another")
            tables.add(table)
            prefixes.add(prefix)
        known = [*BUILT_IN_ENTITIES, *self.entities]
        for name, source in self.sources.items():
            if source.entity not in known:
                raise FieldError(
                    ("sources", name, "entity"),
                    f"unknown entity {source.entity!r}; expected one of: {', '.join(known)} "
                    "(declare other customer-like entities under 'entities')",
                )
        for entity in self.entities:
            if not self.sources_of(entity):
                raise FieldError(("entities", entity), f"no source has entity: {entity}")

    def _check_links(self, name: str, source: SourceConfig) -> None:
        for entity, link in source.links.items():
            where = ("sources", name, "links", entity)
            if entity not in self.entities:
                raise FieldError(
                    where,
                    f"unknown entity {entity!r}; links point at an entity declared under 'entities' "
                    f"({', '.join(self.entities) or 'none declared'})",
                )
            if entity == source.entity:
                raise FieldError(where, f"a {entity} record cannot link to another {entity}")
            targets = sorted(self.sources_of(entity))
            if link.source not in targets:
                raise FieldError(
                    (*where, "source"),
                    f"source {link.source!r} is not a {entity} source; expected one of: {', '.join(targets)}",
                )

    def _check_survivorship(self, entity: str, key: tuple[str, ...]) -> None:
        golden = {*GOLDEN_FIELDS, *self.attribute_names(entity), *(f"{e}_id" for e in self.linked_entities(entity))}
        for field_name in self.survivorship(entity):
            if field_name not in golden:
                raise FieldError(
                    (*key, "survivorship", field_name),
                    f"unknown golden-record field {field_name!r}; expected a canonical field or a declared attribute: "
                    f"{', '.join(sorted(golden))}",
                )

    def _check_rule_identifiers(self, entity: str, key: tuple[str, ...]) -> None:
        declared = self.identifier_names(entity)
        for index, rule in enumerate(self.identity_settings(entity).rules or []):
            for field_name in ("exact", "max_edits", "must_not_differ"):
                for match_key in getattr(rule, field_name):
                    identifier = identifier_of(match_key)
                    if identifier is not None and identifier not in declared:
                        raise FieldError(
                            (*key, "rules", str(index), field_name),
                            f"{match_key!r} names no identifier declared by a {entity} source "
                            f"(declared: {', '.join(declared) or 'none'})",
                        )

    def customer_entities(self) -> list[str]:
        """`customer` and the declared customer-like entities, in config order."""
        return [CUSTOMER, *self.entities]

    def identity_settings(self, entity: str = CUSTOMER) -> IdentityConfig:
        return self.identity if entity == CUSTOMER else self.entities[entity].identity

    def survivorship(self, entity: str = CUSTOMER) -> dict[str, str]:
        return self.customers.survivorship if entity == CUSTOMER else self.entities[entity].survivorship

    def golden_table(self, entity: str = CUSTOMER) -> str:
        """The name of the entity's golden-record table in `marts`."""
        configured = None if entity == CUSTOMER else self.entities[entity].table
        return configured or default_golden_table(entity)

    def id_prefix(self, entity: str = CUSTOMER) -> str:
        configured = None if entity == CUSTOMER else self.entities[entity].id_prefix
        return configured or default_id_prefix(entity)

    def identifier_names(self, entity: str = CUSTOMER) -> list[str]:
        """Identifier names declared by the entity's sources, sorted."""
        return sorted({i for s in self.sources_of(entity).values() for i in s.identifiers})

    def attribute_names(self, entity: str = CUSTOMER) -> list[str]:
        """Attribute names declared by the entity's sources, sorted."""
        return sorted({a for s in self.sources_of(entity).values() for a in s.attributes})

    def linked_entities(self, entity: str = CUSTOMER) -> list[str]:
        """Entities that the entity's records link to (e.g. a contact's account), sorted."""
        return sorted({e for s in self.sources_of(entity).values() for e in s.links})

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        return resolve_path(path, self.base_dir)

    def sources_of(self, entity: str) -> dict[str, SourceConfig]:
        return {name: s for name, s in self.sources.items() if s.entity == entity}
