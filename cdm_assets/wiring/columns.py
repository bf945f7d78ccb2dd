"""The column schemas of the identity and mart tables, known before any run.

Dagster's Columns tab shows an asset's `dagster/column_schema`: from its
latest materialisation, or from its definition before the first. These are
the definitions' schemas, with a description per column; the columns that
depend on the config (source identifiers, golden attributes, the model's
weights) come from the config. A test materialises the graph and compares
them with the tables DuckDB holds, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.identity.match_model import model_settings
from cdm_assets.domain.identity.match_model.scoring import weight_column
from cdm_assets.domain.identity.source_lookup import KEY_COLUMNS
from cdm_assets.domain.marts.customers import ADDRESS_FIELDS, PERSON_FIELDS
from cdm_assets.domain.plan import EntityPlan
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.vocabulary import CUSTOMER

TEXT, KEY, DATE, TIME, FLOAT = "VARCHAR", "BIGINT", "DATE", "TIMESTAMP", "DOUBLE"

DESCRIPTIONS = {
    "record_key": "the record's number in this build of the source lookup (joins the identity tables)",
    "source": "the source the record came from, by its name in cdm.yaml",
    "source_record_id": "the record's id in its source (the source's record_id column)",
    "precedence": "the source's precedence in cdm.yaml: lower wins when golden records are built",
    "first_name": "first name, standardised (titles and extra spaces removed, capitalised)",
    "last_name": "last name, standardised (particles such as 'van der' kept in front)",
    "email": "email address, trimmed and lower-cased; placeholders and invalid addresses are NULL",
    "phone": (
        "phone number in E.164 (+, country code, number; no spaces); "
        "NULL when it has no country code and the source no phone_region"
    ),
    "birth_date": "birth date; NULL when unparseable or outside identity.birth_dates",
    "street": "street and house number as written",
    "house_number": "house number with its addition (12A, 12-3)",
    "postcode": "postcode in its country's format",
    "city": "city as written",
    "country": "ISO 3166-1 alpha-2 country code",
    "first_name_key": "match key: the first name folded to lower-case ASCII",
    "first_name_root": "match key: the first name's nickname root (Bill and William share one)",
    "last_name_key": "match key: the last name folded to lower-case ASCII",
    "last_name_core": "match key: the last name without particles",
    "name_initials": "match key: the initials of first and last name in alphabetical order (a swapped name keeps them)",
    "birth_date_key": "match key: the birth date's digits YYYYMMDD, also for a typo that is no calendar date",
    "email_key": "match key: the email, gmail dots and +tags removed",
    "phone_key": "match key: the phone's national significant number",
    "postcode_key": "match key: the postcode's letters and digits",
    "address_key": "match key: postcode and house number",
    "source_a": "the first record's source",
    "record_id_a": "the first record's id in its source",
    "source_b": "the second record's source",
    "record_id_b": "the second record's id in its source",
    "rule": "what linked the pair: a hard rule's name, or match_model",
    "score": "the link's strength, 0..1 (the match probability for model links)",
    "match_probability": "the match model's probability that the two records are one person",
    "match_weight": "the match model's evidence in bits: the prior plus every field's weight",
    "key_a": "record_key of the first record",
    "key_b": "record_key of the second record",
    "customer_id": "the stable Customer ID: kept across runs, merges keep the older id",
    "cluster": "the record's connected group in the identity graph, named by its smallest record_key",
    "previous_customer_id": "the id the records had before (merged, split, moved)",
    "change": "created, merged, split, moved or retired",
    "changed_at": "when the change was recorded",
    "records": "records the change concerned",
    "sources": "the sources holding the customer's records",
    "record_count": "the customer's records",
    "first_seen": "earliest updated_at among the customer's records",
    "last_seen": "latest updated_at among the customer's records",
    "email_sha256": "SHA-256 (hex) of the email trimmed and lower-cased, for activation",
    "phone_sha256": "SHA-256 (hex) of the phone in E.164, for activation",
}


def _weight_description(column: str) -> str:
    return f"the match model's weight in bits for {column.removeprefix('weight_')}: + for one person, - against"


def column_description(name: str) -> str | None:
    """The description of a column of the warehouse's tables, by its name (None when unknown)."""
    if name.startswith("weight_"):
        return _weight_description(name)
    if name.startswith("id_"):
        return f"the source identifier {name.removeprefix('id_')}"
    return DESCRIPTIONS.get(name)


def column_schema(columns: list[tuple[str, str]], extra: dict[str, str] | None = None) -> dg.TableSchema:
    extra = extra or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, data_type, description=extra.get(name) or column_description(name))
            for name, data_type in columns
        ]
    )


def lookup_columns(entity: EntityPlan) -> list[tuple[str, str]]:
    person = [("first_name", TEXT), ("last_name", TEXT), ("email", TEXT), ("phone", TEXT), ("birth_date", DATE)]
    address = [(field, TEXT) for field in ADDRESS_FIELDS]
    identifiers = [(f"id_{name}", TEXT) for name in entity.identifier_names]
    return [
        ("record_key", KEY), ("source", TEXT), ("source_record_id", TEXT), ("precedence", "INTEGER"),
        *person, *address, *identifiers, *((k, TEXT) for k in KEY_COLUMNS),
    ]  # fmt: skip


def graph_columns(entity: EntityPlan) -> list[tuple[str, str]]:
    settings = model_settings(entity)
    model = []
    if settings is not None:
        model = [("match_probability", FLOAT), ("match_weight", FLOAT)]
        model += [(weight_column(c), FLOAT) for c in settings.comparisons]
    pair = [("source_a", TEXT), ("record_id_a", TEXT), ("source_b", TEXT), ("record_id_b", TEXT)]
    return [*pair, ("rule", TEXT), ("score", FLOAT), *model, ("key_a", KEY), ("key_b", KEY)]


def customers_columns(entity: EntityPlan) -> list[tuple[str, str]]:
    person = [(field, DATE if field == "birth_date" else TEXT) for field in PERSON_FIELDS]
    links = [(linked.id_column, TEXT) for linked in entity.linked]
    attributes = [*links, *((name, entity.attribute_type(name).sql_type) for name in entity.attribute_names)]
    return [
        ("customer_id", TEXT), *person, *((f, TEXT) for f in ADDRESS_FIELDS), *attributes,
        ("sources", "VARCHAR[]"), ("record_count", KEY), ("first_seen", TIME), ("last_seen", TIME),
        ("email_sha256", TEXT), ("phone_sha256", TEXT),
    ]  # fmt: skip


def definition_schemas(config: CdmConfig) -> dict[TableName, dg.TableSchema]:
    """The customer entity's identity tables and its golden table, by table."""
    customer = resolve_plan(config).entities[CUSTOMER]
    tables = customer.tables
    return {
        tables.lookup: column_schema(lookup_columns(customer)),
        tables.graph: column_schema(graph_columns(customer)),
        tables.id_map: column_schema(
            [("source", TEXT), ("source_record_id", TEXT), ("customer_id", TEXT), ("record_key", KEY), ("cluster", KEY)]
        ),
        tables.id_history: column_schema(
            [
                ("customer_id", TEXT),
                ("previous_customer_id", TEXT),
                ("change", TEXT),
                ("changed_at", TIME),
                ("records", KEY),
            ]
        ),
        tables.golden: column_schema(
            customers_columns(customer),
            {name: "an attribute from cdm.yaml (attributes:)" for name in customer.attribute_names},
        ),
    }


def with_column_schema(
    config: CdmConfig, table_key: Callable[[TableName], dg.AssetKey]
) -> Callable[[dg.AssetSpec], dg.AssetSpec]:
    """A spec mapper giving the customer's identity and golden assets their column schema."""
    schemas = {table_key(table): schema for table, schema in definition_schemas(config).items()}

    def add(spec: dg.AssetSpec) -> dg.AssetSpec:
        schema = schemas.get(spec.key)
        return spec if schema is None else spec.merge_attributes(metadata={"dagster/column_schema": schema})

    return add
