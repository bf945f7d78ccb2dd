"""Every asset key, name, group and owner of the project, in one place.

A warehouse table `schema.name` is the asset `schema/name`, so the UI's lineage
reads like the warehouse: `raw/crm` → `identity/source_lookup` → `marts/customers`.
Inside another Dagster project (`CdmComponent`) one cdm instance lives under a key
prefix: its keys, step, sensor and job names and its warehouse resource key all carry
it, so two instances (two configs, two warehouses) sit side by side in one project.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cdm_assets.domain.sql import TableName

OWNERS = ["team:data-platform"]
# The landing folders: observed, not built (their data version is the folder's fingerprint).
LANDING_GROUP = "landing"
RAW_GROUP = "raw"
IDENTITY_GROUP = "identity"
MARTS_GROUP = "marts"
# Reports over every layer (raw/quarantine): downstream of the marts, so a group of its own.
QUALITY_GROUP = "quality"
# The warehouse resource of a project with one cdm instance; also the pool that keeps one
# writer at a time on DuckDB files, shared by every instance of a project.
WAREHOUSE = "duckdb"
POOL = "duckdb"


@dataclass(frozen=True)
class Namespace:
    """Where one cdm instance lives in a Dagster project. The empty prefix is cdm's own
    code location: keys `raw/crm`, names `landing_files`, resource `duckdb`."""

    prefix: tuple[str, ...] = ()

    def table_key(self, table: TableName) -> dg.AssetKey:
        """The asset key of a warehouse table: `identity.source_lookup` → [prefix/]identity/source_lookup."""
        return dg.AssetKey([*self.prefix, table.schema, table.name])

    def raw_asset_key(self, source_name: str) -> dg.AssetKey:
        """The asset of one configured source: [prefix/]raw/<source>."""
        return self.table_key(TableName("raw", source_name))

    def landing_key(self, source_name: str) -> dg.AssetKey:
        """The landing folder (files matching `path`) of one configured source: [prefix/]landing/<source>."""
        return dg.AssetKey([*self.prefix, "landing", source_name])

    def table_of(self, key: dg.AssetKey) -> TableName | None:
        """The warehouse table of one of this instance's asset keys; None for another key."""
        path = key.path
        if tuple(path[: len(self.prefix)]) != self.prefix or len(path) != len(self.prefix) + 2:
            return None
        return TableName(path[-2], path[-1])

    def name(self, base: str) -> str:
        """A step, sensor, schedule or job name: `landing_files` or `<prefix>__landing_files`."""
        return "__".join([*self.prefix, base])

    @property
    def warehouse(self) -> str:
        """The resource key of this instance's DuckDB warehouse: `duckdb` or `duckdb_<prefix>`."""
        return "_".join([WAREHOUSE, *self.prefix])

    @property
    def on_warehouse(self) -> dict:
        """What every step or check that opens this instance's warehouse declares: the
        one-writer pool and the warehouse resource."""
        return {"pool": POOL, "required_resource_keys": {self.warehouse}}

    def warehouse_of(self, context):
        """This instance's warehouse resource in a step or check's context."""
        return getattr(context.resources, self.warehouse)


DEFAULT = Namespace()
