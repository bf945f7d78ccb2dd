"""The shape of `cdm.yaml`, as pydantic models: the whole document.

Only structure and local rules live in the part models (`sources`, `identity`,
`checks`); rules that span sources (a transaction pointing at an existing
customer source) are checked on the whole document in `CdmConfig`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cdm_assets.config.base import SOURCE_NAME, FieldError, StrictModel
from cdm_assets.config.checks import ChecksConfig, PrivacyConfig
from cdm_assets.config.identity import CustomersConfig, EntityConfig, IdentityConfig
from cdm_assets.config.sources import SourceConfig
from cdm_assets.domain.vocabulary import (
    BUILT_IN_ENTITIES,
    CUSTOMER,
    GOLDEN_FIELDS,
    default_golden_table,
    default_id_prefix,
    identifier_of,
)

DUCKDB_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


ENGINES = ("duckdb", "spark")


class SparkConfig(StrictModel):
    """Where Spark runs and keeps the warehouse, for `warehouse.engine: spark`."""

    # `local[*]` runs Spark inside the step's process on every core; a cluster's master URL
    # (`spark://host:7077`, `yarn`) runs it there. Spark Connect (`sc://`) is not supported:
    # the tables are swapped through the session's JVM
    master: str = "local[*]"
    # every table a Parquet directory <warehouse_dir>/<schema>/<table>/; any path Hadoop
    # reads (a folder, `hdfs://`, `s3a://`), a relative one taken from the config's folder
    warehouse_dir: str = "data/spark-warehouse"
    # Spark settings for the session (`spark.sql.shuffle.partitions: 200`, ...)
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class WarehouseConfig(StrictModel):
    # which engine runs the steps (`CDM_ENGINE` overrides it): embedded DuckDB, or Spark
    engine: Literal["duckdb", "spark"] = "duckdb"
    duckdb_path: str = "data/cdm.duckdb"
    spark: SparkConfig = Field(default_factory=SparkConfig)
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
            self._check_attribute_types(entity)
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

    def _check_attribute_types(self, entity: str) -> None:
        """An attribute is one golden-record column: every source declaring it reads it as one type."""
        seen: dict[str, tuple[str, str]] = {}  # attribute -> (type, first source declaring it)
        for name, source in self.sources_of(entity).items():
            for attribute, mapping in source.attributes.items():
                kind = getattr(mapping, "type", "text")
                first = seen.setdefault(attribute, (kind, name))
                if first[0] != kind:
                    raise FieldError(
                        ("sources", name, "attributes", attribute),
                        f"type {kind} here but {first[0]} in sources.{first[1]}; "
                        "every source of an attribute must read it as one type",
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
