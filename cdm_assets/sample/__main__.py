"""`python -m cdm_assets.sample --persons N --seed S --out DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdm_assets.sample.b2b import generate_b2b
from cdm_assets.sample.corruption import PROFILES, CorruptionRates, with_overrides
from cdm_assets.sample.generator import generate


def _rate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm sample", description="Generate sample landing files and ground truth.")
    parser.add_argument("--persons", type=int, default=10_000, help="number of true persons (default 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed: same seed, same files (default 42)")
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder (default ./data)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="how far records stray from their person: default (as always) or hard (rates from the record-linkage "
        "literature: several phones, moves, marriage names, date typos, ...; see cdm_assets/sample/corruption.py)",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one corruption rate of the profile (repeatable); names: " + ", ".join(CorruptionRates.names()),
    )
    parser.add_argument(
        "--b2b", action="store_true", help="write the B2B example's accounts and contacts (examples/b2b) instead"
    )
    parser.add_argument("--accounts", type=int, default=500, help="with --b2b: number of true companies (default 500)")
    args = parser.parse_args(argv)
    if args.persons < 1:
        parser.error("--persons must be at least 1")
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    try:
        rates = with_overrides(PROFILES[args.profile], dict(args.rate))
    except ValueError as error:
        parser.error(str(error))
    if args.b2b:
        print(generate_b2b(args.accounts, args.seed, args.out))
    else:
        print(generate(args.persons, args.seed, args.out, rates=rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
