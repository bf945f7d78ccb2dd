"""The `cdm` command: `cdm sample ...` generates demo data, `cdm explain <id>` explains a customer."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm", description="cdm customer data platform tools")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sample", help="generate sample landing files and ground truth", add_help=False)
    commands.add_parser("explain", help="show the records and links behind a Customer ID", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "sample":
        from cdm_assets.sample.__main__ import main as sample_main

        return sample_main(rest) or 0
    if args.command == "explain":
        from cdm_assets.explain import main as explain_main

        return explain_main(rest)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
