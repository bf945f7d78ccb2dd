"""Every asset key, group and owner of the project, in one place.

A warehouse table `schema.name` is the asset `schema/name`, so the UI's lineage
reads like the warehouse: `raw/crm` → `identity/source_lookup` → `marts/customers`.
"""

import dagster as dg

from cdm_assets.domain.marts.customer_metrics import CUSTOMER_METRICS
from cdm_assets.domain.marts.events import EVENTS
from cdm_assets.domain.marts.transactions import TRANSACTIONS
from cdm_assets.domain.sql import TableName

OWNERS = ["team:data-platform"]
RAW_GROUP = "raw"
IDENTITY_GROUP = "identity"
MARTS_GROUP = "marts"
# Reports over every layer (raw/quarantine): downstream of the marts, so a group of its own.
QUALITY_GROUP = "quality"


def table_key(table: TableName) -> dg.AssetKey:
    """The asset key of a warehouse table: `identity.source_lookup` → identity/source_lookup."""
    return dg.AssetKey([table.schema, table.name])


def raw_asset_key(source_name: str) -> dg.AssetKey:
    """The asset of one configured source: raw/<source>."""
    return table_key(TableName("raw", source_name))


TRANSACTIONS_KEY = table_key(TRANSACTIONS)
EVENTS_KEY = table_key(EVENTS)
CUSTOMER_METRICS_KEY = table_key(CUSTOMER_METRICS)
