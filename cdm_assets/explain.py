"""`python -m cdm_assets.explain <customer_id>`: print why records form a customer.

Ids of other customer-like entities (`acc_...` for accounts) are explained
from their own tables: the entity is the one whose id prefix the id carries.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from cdm_assets.config import ConfigError, duckdb_path, load_config
from cdm_assets.config.model import CdmConfig
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.identity.explain import UnknownCustomer, explain_customer
from cdm_assets.domain.plan import EntityTables
from cdm_assets.domain.vocabulary import CUSTOMER
from cdm_assets.domain.warehouse import WarehouseLocked, connect_warehouse


def tables_for_id(config: CdmConfig, some_id: str) -> EntityTables:
    """The tables of the entity whose ids start like `some_id` (customers by default)."""
    entities = resolve_plan(config).entities
    for entity in entities.values():
        if some_id.startswith(entity.tables.id_prefix):
            return entity.tables
    return entities[CUSTOMER].tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm explain", description=__doc__)
    parser.add_argument("customer_id", help="a Customer ID (cus_...) or the id of another customer-like entity")
    parser.add_argument("--db", help="DuckDB warehouse file (default: from CDM_DUCKDB_PATH or cdm.yaml)")
    args = parser.parse_args(argv)
    try:
        config = load_config()
        path = args.db or str(duckdb_path(config))
        with connect_warehouse(path, read_only=True) as con:
            print(explain_customer(con, args.customer_id, tables_for_id(config, args.customer_id)))
    except (UnknownCustomer, ConfigError, WarehouseLocked, duckdb.Error) as error:
        print(f"cdm explain: {error}".splitlines()[0], file=sys.stderr)  # one line, no traceback
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
