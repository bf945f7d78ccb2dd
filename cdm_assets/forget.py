"""`cdm forget`: erase a person from the warehouse and keep them out of later loads.

    cdm forget --email jan@example.com
    cdm forget --phone "+31 6 12345678"        (or a national number with --region NL)
    cdm forget --customer cus_0123456789abcdef
    cdm forget --record crm:C1042

Every row carrying one of the person's identifiers is deleted from every table,
their identifiers are kept as salted hashes in `privacy.suppressions`, the
erasure is recorded without values in `privacy.erasures`, and the warehouse
file is rewritten so no byte of the deleted rows remains. Nothing personal is
printed. Run it while no run holds the warehouse.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from cdm_assets.config import ConfigError, duckdb_path, load_config
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.privacy.erasure import ErasureRequest, UnknownPerson, forget, rewrite_warehouse
from cdm_assets.domain.warehouse import WarehouseLocked, connect_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cdm forget", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--customer", help="a Customer ID (cus_...)")
    key.add_argument("--email", help="an email address")
    key.add_argument("--phone", help="a phone number, best with its calling code (+31 ...)")
    key.add_argument("--record", help="one of the person's records, as source:id")
    parser.add_argument("--region", help="region of a phone number written without calling code, e.g. NL")
    parser.add_argument("--db", help="DuckDB warehouse file (default: from CDM_DUCKDB_PATH or cdm.yaml)")
    args = parser.parse_args(argv)
    kind = next(k for k in ("customer", "email", "phone", "record") if getattr(args, k) is not None)
    try:
        request = ErasureRequest(kind, getattr(args, kind), args.region)
        config = load_config()
        path = args.db or str(duckdb_path(config))
        with connect_warehouse(path) as con:
            report = forget(con, resolve_plan(config), request)
        rewrite_warehouse(path)
    except (UnknownPerson, ValueError, ConfigError, WarehouseLocked, duckdb.Error) as error:
        print(f"cdm forget: {error}".splitlines()[0], file=sys.stderr)
        return 1
    print(report.summary() + "; the warehouse file was rewritten")
    if config.privacy.previews == "full":
        print(
            "cdm forget: privacy.previews is 'full', so Dagster's event log under DAGSTER_HOME may hold the "
            "person's values in earlier previews; wipe those materialisations (dagster asset wipe)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
