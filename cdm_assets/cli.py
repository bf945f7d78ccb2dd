"""The `cdm` command: `cdm sample ...` generates demo data."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm", description="cdm customer data platform tools")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sample", help="generate sample landing files and ground truth", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "sample":
        from cdm_assets.sample.__main__ import main as sample_main

        return sample_main(rest) or 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
