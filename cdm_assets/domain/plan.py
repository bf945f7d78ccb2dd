"""The plan: what the domain is asked to build, resolved from a validated `cdm.yaml`.

`cdm_assets.config` parses and validates the document and resolves it into a
`Plan` (`config.plan.resolve_plan`): sources with their formats and paths
settled, and per customer-like entity its tables, sources, rules, match model
settings, survivorship and links. The domain reads only this, so it never
asks the config a question, and a second entity is a value, never a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from cdm_assets.domain.vocabulary import CUSTOMER, EVENT, TRANSACTION
from cdm_assets.domain.warehouse import TableName

FileFormat = Literal["csv", "parquet", "jsonl"]


@dataclass(frozen=True)
class SourceColumn:
    """The source column a canonical field reads from, with its strftime format for dates."""

    column: str
    format: str | None = None


@dataclass(frozen=True)
class NumberFormat:
    """How a source writes numbers: the decimal mark and an optional thousands separator."""

    decimal: str = "."
    thousands: str | None = None

    def describe(self) -> str:
        thousands = f"thousands {self.thousands!r}" if self.thousands else "no thousands separator"
        return f"decimal {self.decimal!r}, {thousands}"


@dataclass(frozen=True)
class TransactionTypes:
    """Transaction type values meaning an order or a return (case-insensitive)."""

    order: tuple[str, ...]
    return_: tuple[str, ...]


@dataclass(frozen=True)
class CustomerReference:
    """How a transaction or event row points at a customer record: a fixed customer
    source or a column naming the source per row, and the column with the record id."""

    column: str
    source: str | None = None
    source_column: str | None = None


@dataclass(frozen=True)
class RecordReference:
    """A column holding the id of a record of another source, e.g. a contact's account."""

    source: str
    column: str


@dataclass(frozen=True)
class AttributeType:
    """The type an attribute is read as (`text` when none is given), with its strftime format."""

    kind: str = "text"  # text | timestamp | date | boolean | integer | decimal
    format: str | None = None

    @property
    def sql_type(self) -> str:
        return {
            "text": "VARCHAR", "timestamp": "TIMESTAMP", "date": "DATE", "boolean": "BOOLEAN",
            "integer": "BIGINT", "decimal": "DECIMAL(18, 6)",
        }[self.kind]  # fmt: skip


TEXT = AttributeType()


@dataclass(frozen=True)
class Source:
    """One landed source, resolved: `path` is an absolute glob, `file_format` settled."""

    name: str
    entity: str
    path: str
    file_format: FileFormat
    record_id: str
    precedence: int = 100
    phone_region: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    number_format: NumberFormat = NumberFormat()
    fields: Mapping[str, SourceColumn] = field(default_factory=dict)
    identifiers: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)  # attribute -> column
    attribute_types: Mapping[str, AttributeType] = field(default_factory=dict)  # those not read as text
    customer: CustomerReference | None = None
    links: Mapping[str, RecordReference] = field(default_factory=dict)
    updated_at: SourceColumn | None = None
    type_values: TransactionTypes | None = None

    @property
    def kind(self) -> str:
        """`transaction`, `event`, or `customer` for every customer-like entity."""
        return self.entity if self.entity in (TRANSACTION, EVENT) else CUSTOMER

    def columns_used(self) -> list[str]:
        """Every source column the config reads, record id first."""
        columns = [self.record_id]
        columns += [mapping.column for mapping in self.fields.values()]
        columns += list(self.identifiers.values()) + list(self.attributes.values())
        if self.updated_at is not None:
            columns.append(self.updated_at.column)
        if self.customer is not None:
            columns += [c for c in (self.customer.source_column, self.customer.column) if c]
        columns += [link.column for link in self.links.values()]
        return list(dict.fromkeys(columns))


@dataclass(frozen=True)
class MatchRule:
    """Two records are linked when every `exact` key is equal (and not empty),
    every `similar` key reaches its Jaro-Winkler threshold, every `max_edits`
    key is at most that many edits apart (for phones, addresses, postcodes and
    identifiers: and not neighbours in a sequence), and none of the
    `must_not_differ` keys holds two different values."""

    name: str
    exact: tuple[str, ...]
    similar: Mapping[str, float] = field(default_factory=dict)
    max_edits: Mapping[str, int] = field(default_factory=dict)
    must_not_differ: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatchModelOptions:
    """The configured side of the match model; its m and u come from the data."""

    threshold: float
    blocking: tuple[tuple[str, ...], ...] | None  # None: the default blocking rules
    cannot_link: tuple[str, ...]
    u_sample_pairs: int
    em_max_pairs: int


@dataclass(frozen=True)
class BirthDateWindow:
    """The plausible birth dates; `latest` None means the day the lookup is built."""

    earliest: date | None
    latest: date | None

    def bounds(self, today: date | None = None) -> tuple[date | None, date]:
        """(earliest or None, latest) with `today` (default: the local date) for an open `latest`."""
        return self.earliest, self.latest or today or date.today()


@dataclass(frozen=True)
class EntityTables:
    """The warehouse tables of a customer-like entity.

    `customer` keeps the table names of the design (`identity.source_lookup`,
    `identity.identity_graph`, `identity.customer_id_map`,
    `identity.customer_id_history`, `marts.customers`; the steward's
    `identity.steward_overrides` and `identity.cut_links`). Every other entity
    (e.g. `account`) gets the same chain under names led by the entity:
    `identity.account_source_lookup`, `identity.account_identity_graph`,
    `identity.account_id_map`, `identity.account_id_history` and `marts.accounts`,
    with ids in an `account_id` column.
    """

    entity: str
    id_column: str  # `customer_id`, `account_id`, ...
    id_prefix: str  # opaque ids start with it: `cus_`, `acc_`, ...
    lookup: TableName
    model: TableName
    graph: TableName
    overrides: TableName  # each line of the steward's overrides file with what it did
    cut_links: TableName  # links a steward's unlink cut out of the graph
    id_map: TableName
    id_history: TableName
    golden: TableName

    @classmethod
    def of(cls, entity: str, golden_table: str, id_prefix: str) -> EntityTables:
        lead, id_name = ("", CUSTOMER) if entity == CUSTOMER else (f"{entity}_", entity)
        return cls(
            entity=entity,
            id_column=f"{id_name}_id",
            id_prefix=id_prefix,
            lookup=TableName("identity", f"{lead}source_lookup"),
            model=TableName("identity", f"{lead}match_model"),
            graph=TableName("identity", f"{lead}identity_graph"),
            overrides=TableName("identity", f"{lead}steward_overrides"),
            cut_links=TableName("identity", f"{lead}cut_links"),
            id_map=TableName("identity", f"{id_name}_id_map"),
            id_history=TableName("identity", f"{id_name}_id_history"),
            golden=TableName("marts", golden_table),
        )

    @property
    def previous_id_column(self) -> str:
        return f"previous_{self.id_column}"

    @property
    def label(self) -> str:
        """How people call one id of the entity: 'Customer ID', 'Account ID'."""
        return f"{self.entity.replace('_', ' ').capitalize()} ID"


@dataclass(frozen=True)
class EntityPlan:
    """A customer-like entity: its sources, how its records are matched and its golden record."""

    name: str
    tables: EntityTables
    sources: Mapping[str, Source]  # in config order
    rules: tuple[MatchRule, ...] | None  # the configured hard rules; None: the defaults
    match_model: MatchModelOptions | None  # None: linked by rules alone
    birth_dates: BirthDateWindow
    max_records_per_key: int
    max_cluster_size: int
    survivorship: Mapping[str, str]
    linked: tuple[EntityTables, ...] = ()  # entities its records link to, sorted by name
    overrides: str | None = None  # the steward's overrides file (absolute path), if configured

    @property
    def identifier_names(self) -> list[str]:
        """Identifier names declared by the entity's sources, sorted."""
        return sorted({i for s in self.sources.values() for i in s.identifiers})

    @property
    def attribute_names(self) -> list[str]:
        """Attribute names declared by the entity's sources, sorted."""
        return sorted({a for s in self.sources.values() for a in s.attributes})

    def attribute_type(self, name: str) -> AttributeType:
        """The type of an attribute (the config makes every source that declares it agree)."""
        for source in self.sources.values():
            if name in source.attribute_types:
                return source.attribute_types[name]
        return TEXT


@dataclass(frozen=True)
class Plan:
    """Every source, and every customer-like entity (`customer` first)."""

    sources: Mapping[str, Source]
    entities: Mapping[str, EntityPlan]

    def sources_of(self, entity: str) -> dict[str, Source]:
        return {name: s for name, s in self.sources.items() if s.entity == entity}
