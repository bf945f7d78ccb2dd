"""Resolve a validated `cdm.yaml` into the domain's plan.

Defaults that depend on the whole document are settled here once: each
source's format and absolute path, each entity's tables, id prefix, match
rules and whether its match model runs.
"""

from __future__ import annotations

from pathlib import Path

from cdm_assets.config.identity import BirthDateWindow, IdentityConfig, MatchModelConfig, MatchRule
from cdm_assets.config.model import CdmConfig, resolve_path
from cdm_assets.config.sources import DateColumn, FieldMapping, SourceConfig, TransactionTypes, TypedAttribute
from cdm_assets.domain import plan
from cdm_assets.domain.vocabulary import TRANSACTION


def resolve_plan(config: CdmConfig) -> plan.Plan:
    """The plan of a validated config: its sources and its customer-like entities, `customer` first."""
    sources = {name: resolve_source(name, source, config.base_dir) for name, source in config.sources.items()}
    tables = {
        entity: plan.EntityTables.of(entity, config.golden_table(entity), config.id_prefix(entity))
        for entity in config.customer_entities()
    }
    entities = {}
    for entity in config.customer_entities():
        identity = config.identity_settings(entity)
        entities[entity] = plan.EntityPlan(
            name=entity,
            tables=tables[entity],
            sources={name: s for name, s in sources.items() if s.entity == entity},
            rules=None if identity.rules is None else tuple(_rule(r) for r in identity.rules),
            match_model=_match_model(identity),
            birth_dates=_birth_dates(identity.birth_dates),
            max_records_per_key=identity.max_records_per_key,
            max_cluster_size=identity.max_cluster_size,
            survivorship=dict(config.survivorship(entity)),
            linked=tuple(tables[linked] for linked in config.linked_entities(entity)),
            overrides=None if identity.overrides is None else str(resolve_path(identity.overrides, config.base_dir)),
        )
    return plan.Plan(sources=sources, entities=entities)


def entity_plan(config: CdmConfig, entity: str) -> plan.EntityPlan:
    """One customer-like entity of the config's plan."""
    return resolve_plan(config).entities[entity]


def _column(mapping: FieldMapping) -> plan.SourceColumn:
    if isinstance(mapping, DateColumn):
        return plan.SourceColumn(mapping.column, mapping.format)
    return plan.SourceColumn(mapping)


def resolve_source(name: str, source: SourceConfig, base_dir: Path) -> plan.Source:
    """One source of the plan; its path taken relative to `base_dir` (the config file's folder)."""
    customer = source.customer
    return plan.Source(
        name=name,
        entity=source.entity,
        path=str(resolve_path(source.path, base_dir)),
        file_format=source.file_format(),
        record_id=source.record_id,
        precedence=source.precedence,
        phone_region=source.phone_region,
        delimiter=source.delimiter,
        encoding=source.encoding,
        number_format=plan.NumberFormat(source.number_format.decimal, source.number_format.thousands),
        fields={field: _column(mapping) for field, mapping in source.fields.items()},
        identifiers=dict(source.identifiers),
        attributes=source.attribute_columns(),
        attribute_types={
            name: plan.AttributeType(mapping.type, mapping.format)
            for name, mapping in source.attributes.items()
            if isinstance(mapping, TypedAttribute) and mapping.type != "text"
        },
        customer=None
        if customer is None
        else plan.CustomerReference(customer.column, customer.source, customer.source_column),
        links={entity: plan.RecordReference(link.source, link.column) for entity, link in source.links.items()},
        updated_at=None if source.updated_at is None else _column(source.updated_at),
        type_values=_transaction_types(source),
    )


def _transaction_types(source: SourceConfig) -> plan.TransactionTypes | None:
    """The configured type values of a transaction source, else the defaults."""
    if source.entity != TRANSACTION:
        return None
    types = source.type_values or TransactionTypes()
    return plan.TransactionTypes(tuple(types.order), tuple(types.return_))


def _rule(rule: MatchRule) -> plan.MatchRule:
    return plan.MatchRule(
        name=rule.name,
        exact=tuple(rule.exact),
        similar=dict(rule.similar),
        max_edits=dict(rule.max_edits),
        must_not_differ=tuple(rule.must_not_differ),
    )


def _match_model(identity: IdentityConfig) -> plan.MatchModelOptions | None:
    """The model's options, or None when the entity links by rules alone: the model is
    switched off, or rules are configured without it (a rule set written before the
    model keeps its meaning)."""
    configured = identity.match_model
    if configured is None and identity.rules is not None:
        return None
    if configured is None:
        configured = MatchModelConfig()
    if not configured.enabled:
        return None
    return plan.MatchModelOptions(
        threshold=configured.threshold,
        blocking=None if configured.blocking is None else tuple(tuple(keys) for keys in configured.blocking),
        cannot_link=tuple(configured.cannot_link),
        u_sample_pairs=configured.u_sample_pairs,
        em_max_pairs=configured.em_max_pairs,
    )


def _birth_dates(window: BirthDateWindow) -> plan.BirthDateWindow:
    return plan.BirthDateWindow(window.earliest, None if window.latest == "today" else window.latest)
