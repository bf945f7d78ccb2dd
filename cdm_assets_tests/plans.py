"""The plan a test's config resolves to: what the domain's functions take."""

from __future__ import annotations

from cdm_assets.config import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.plan import EntityPlan, EntityTables

CUSTOMER = "customer"


def entity_of(config: CdmConfig, entity: str = CUSTOMER) -> EntityPlan:
    """One customer-like entity of the config (the customer unless named)."""
    return resolve_plan(config).entities[entity]


def customer_tables() -> EntityTables:
    """The customer's tables, as the design names them (identity.source_lookup, marts.customers, ...)."""
    return EntityTables.of(CUSTOMER, "customers", "cus_")
