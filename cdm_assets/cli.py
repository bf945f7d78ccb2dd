"""The `cdm` command: `cdm sample ...` generates demo data, `cdm explain <id>` explains a
customer, `cdm forget ...` erases a person, `cdm validate` checks a cdm.yaml, `cdm schema`
prints its JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("cdm")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdm", description="cdm customer data platform tools")
    parser.add_argument("--version", action="version", version=f"cdm {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sample", help="generate sample landing files and ground truth", add_help=False)
    commands.add_parser("explain", help="show the records and links behind a Customer ID", add_help=False)
    commands.add_parser("forget", help="erase a person and suppress them in later loads", add_help=False)
    validate = commands.add_parser(
        "validate", help="check a cdm.yaml (default: CDM_CONFIG, else the bundled demo) for the stage in CDM_ENV"
    )
    validate.add_argument("config", nargs="?", help="path of the cdm.yaml to check")
    commands.add_parser("schema", help="print the JSON Schema of cdm.yaml (for editor completion)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "sample":
        from cdm_assets.sample.__main__ import main as sample_main

        return sample_main(rest) or 0
    if args.command == "explain":
        from cdm_assets.explain import main as explain_main

        return explain_main(rest)
    if args.command == "forget":
        from cdm_assets.forget import main as forget_main

        return forget_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "validate":
        return _validate(args.config)
    if args.command == "schema":
        from cdm_assets.config.schema import config_json_schema

        print(json.dumps(config_json_schema(), indent=2))
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def _validate(path: str | None) -> int:
    from cdm_assets.config import ConfigError, duckdb_path, load_config
    from cdm_assets.config.plan import resolve_plan
    from cdm_assets.domain.identity.override_file import OverrideFileError
    from cdm_assets.domain.identity.resolution import steward_overrides

    try:
        config = load_config(path)
        warehouse = duckdb_path(config)
        overrides = {name: steward_overrides(e) for name, e in resolve_plan(config).entities.items() if e.overrides}
    except (ConfigError, OverrideFileError) as error:
        print(error, file=sys.stderr)
        return 1
    by_entity: dict[str, int] = {}
    for source in config.sources.values():
        by_entity[source.entity] = by_entity.get(source.entity, 0) + 1
    sources = ", ".join(f"{count} {entity}" for entity, count in sorted(by_entity.items()))
    print(
        f"{config.config_path}: valid for environment {config.environment!r}: sources {sources}; warehouse {warehouse}"
    )
    for entity, lines in overrides.items():
        print(f"{entity} overrides: {len(lines)} line(s) read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
