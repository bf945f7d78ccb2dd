"""`python -m cdm_assets.explain <customer_id>`: print why records form a customer."""

from __future__ import annotations

import argparse
import sys

import duckdb

from cdm_assets.config import duckdb_path, load_config
from cdm_assets.domain.identity.explain import UnknownCustomer, explain_customer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm explain", description=__doc__)
    parser.add_argument("customer_id")
    parser.add_argument("--db", help="DuckDB warehouse file (default: from CDM_DUCKDB_PATH or cdm.yaml)")
    args = parser.parse_args(argv)
    path = args.db or str(duckdb_path(load_config()))
    with duckdb.connect(path, read_only=True) as con:
        try:
            print(explain_customer(con, args.customer_id))
        except UnknownCustomer as error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
