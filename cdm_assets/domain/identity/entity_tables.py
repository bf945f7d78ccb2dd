"""The warehouse tables of a customer-like entity.

`customer` keeps the table names of the design (`identity.source_lookup`,
`identity.identity_graph`, `identity.customer_id_map`,
`identity.customer_id_history`, `marts.customers`). Every other customer-like
entity declared under `entities:` (e.g. `account`) gets the same chain under
names led by the entity: `identity.account_source_lookup`,
`identity.account_identity_graph`, `identity.account_id_map`,
`identity.account_id_history` and `marts.accounts`, with ids in an
`account_id` column.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdm_assets.config.model import CUSTOMER, CdmConfig, default_golden_table, default_id_prefix
from cdm_assets.domain.warehouse import TableName


@dataclass(frozen=True)
class EntityTables:
    entity: str
    id_column: str  # `customer_id`, `account_id`, ...
    id_prefix: str  # opaque ids start with it: `cus_`, `acc_`, ...
    lookup: TableName
    model: TableName
    graph: TableName
    id_map: TableName
    id_history: TableName
    golden: TableName

    @property
    def previous_id_column(self) -> str:
        return f"previous_{self.id_column}"

    @property
    def label(self) -> str:
        """How people call one id of the entity: 'Customer ID', 'Account ID'."""
        return f"{self.entity.replace('_', ' ').capitalize()} ID"


def tables_of(entity: str = CUSTOMER, golden_table: str | None = None, id_prefix: str | None = None) -> EntityTables:
    """The tables of `entity`; `golden_table` and `id_prefix` default as in cdm.yaml."""
    if entity == CUSTOMER:
        lead, id_name = "", "customer"
    else:
        lead, id_name = f"{entity}_", entity
    return EntityTables(
        entity=entity,
        id_column=f"{id_name}_id",
        id_prefix=id_prefix or default_id_prefix(entity),
        lookup=TableName("identity", f"{lead}source_lookup"),
        model=TableName("identity", f"{lead}match_model"),
        graph=TableName("identity", f"{lead}identity_graph"),
        id_map=TableName("identity", f"{id_name}_id_map"),
        id_history=TableName("identity", f"{id_name}_id_history"),
        golden=TableName("marts", golden_table or default_golden_table(entity)),
    )


def entity_tables(config: CdmConfig, entity: str = CUSTOMER) -> EntityTables:
    """The tables of one of the config's customer-like entities."""
    return tables_of(entity, config.golden_table(entity), config.id_prefix(entity))


CUSTOMER_TABLES = tables_of(CUSTOMER)
