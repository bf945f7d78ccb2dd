"""`python -m cdm_assets.sample --persons N --seed S --out DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdm_assets.sample.b2b import generate_b2b
from cdm_assets.sample.generator import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm sample", description="Generate sample landing files and ground truth.")
    parser.add_argument("--persons", type=int, default=10_000, help="number of true persons (default 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed: same seed, same files (default 42)")
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder (default ./data)")
    parser.add_argument(
        "--b2b", action="store_true", help="write the B2B example's accounts and contacts (examples/b2b) instead"
    )
    parser.add_argument("--accounts", type=int, default=500, help="with --b2b: number of true companies (default 500)")
    args = parser.parse_args(argv)
    if args.persons < 1:
        parser.error("--persons must be at least 1")
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    if args.b2b:
        print(generate_b2b(args.accounts, args.seed, args.out))
    else:
        print(generate(args.persons, args.seed, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
