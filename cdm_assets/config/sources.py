"""The `sources:` of `cdm.yaml`: where each source's files are and how its columns map."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from cdm_assets.config.base import SOURCE_NAME, FieldError, StrictModel
from cdm_assets.domain.plan import FileFormat
from cdm_assets.domain.sql import check_column_name
from cdm_assets.domain.vocabulary import (
    CANONICAL_FIELDS,
    CUSTOMER,
    DATE_FIELDS,
)

STRFTIME_DIRECTIVE = re.compile(r"%(.)")
KNOWN_DIRECTIVES = set("aAwdbBmyYHIpMSfzZjUWcxX%GuVeT")


ColumnName = Annotated[str, Field(min_length=1)]
# A column name checked on the spot (other models check theirs in their validators).
SafeColumnName = Annotated[str, Field(min_length=1), AfterValidator(check_column_name)]


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

AttributeKind = Literal["text", "timestamp", "date", "boolean", "integer", "decimal"]


class TypedAttribute(StrictModel):
    """An attribute column with its type: `timestamp` and `date` read with `format` (strftime;
    ISO 8601 without one), `boolean` from yes/no words, `integer`, `decimal` with the
    source's number format. A value that does not read as its type is quarantined."""

    column: SafeColumnName
    type: AttributeKind = "text"
    format: str | None = None

    @model_validator(mode="after")
    def _format_for_dates(self) -> TypedAttribute:
        if self.format is not None:
            if self.type not in ("timestamp", "date"):
                raise ValueError(f"a format is for timestamp and date attributes, not {self.type}")
            DateColumn._strftime_format(self.format)
        return self


AttributeMapping = ColumnName | TypedAttribute


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
    attributes: dict[str, AttributeMapping] = Field(default_factory=dict)
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
    def _safe_names(cls, value: dict[str, AttributeMapping]) -> dict[str, AttributeMapping]:
        for name, column in value.items():
            if not SOURCE_NAME.match(name):
                raise ValueError(f"name {name!r} must match [a-z][a-z0-9_]*")
            if isinstance(column, str):
                check_column_name(column)
        return value

    def attribute_columns(self) -> dict[str, str]:
        """Each attribute's source column."""
        return {name: m.column if isinstance(m, TypedAttribute) else m for name, m in self.attributes.items()}

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
        columns += list(self.identifiers.values()) + list(self.attribute_columns().values())
        if self.updated_at is not None:
            columns.append(column_of(self.updated_at))
        if self.customer is not None:
            columns += [c for c in (self.customer.source_column, self.customer.column) if c]
        columns += [link.column for link in self.links.values()]
        return list(dict.fromkeys(columns))
