"""Does a change keep the pipeline's output? Build the whole graph, then compare warehouses.

    python benchmarks/same_output.py build --data /tmp/s100k --out /tmp/before.duckdb
    python benchmarks/same_output.py build --data /tmp/s100k --out /tmp/after.duckdb
    python benchmarks/same_output.py compare /tmp/before.duckdb /tmp/after.duckdb

`build` materialises every asset and check of the config in `--data` (made by
`cdm sample --out DIR`) in-process into a new DuckDB file and prints the seconds it
took; run it from the checkout to measure (`PYTHONPATH=<checkout>` picks another).
`compare` checks that both files hold the same tables with the same columns and the
same rows, as multisets (`EXCEPT ALL` both ways), and exits 1 on any difference.
Columns that hold the wall-clock time of the run differ between any two runs, so they
are left out of the row comparison and named in the output. Floating-point columns are
compared to 12 decimals: DuckDB sums doubles in parallel, so two runs of the same code
can differ in the last bits of an estimated probability.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Columns stamped with the time of the run (id changes, model training, quarantining):
# equal only by chance between two builds of the same input.
RUN_CLOCK_COLUMNS = ("changed_at", "trained_at", "quarantined_at")
FLOAT_DECIMALS = 12


def build(data: Path, out: Path) -> float:
    """A new warehouse `out` from the sample folder `data`; the seconds the build took."""
    if out.exists():
        out.unlink()
    return materialize_config(data / "cdm.yaml", out)


def materialize_config(config_path: Path, out: Path, log_level: str = "WARNING") -> float:
    """Materialise every asset and check of a config into the warehouse `out` (new or not),
    in-process; the seconds it took."""
    import dagster as dg

    os.environ["CDM_DUCKDB_PATH"] = str(out)
    from cdm_assets.config import load_config
    from cdm_assets.definitions import build_definitions

    defs = build_definitions(load_config(config_path))
    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            resources=defs.resources,
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        )
    seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit("the run failed; see the log above")
    return seconds


def tables(con) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(schema, table) -> [(column, type)] of the current database."""
    rows = con.execute(
        """
        SELECT table_schema, table_name, list((column_name, data_type) ORDER BY ordinal_position)
        FROM information_schema.columns
        WHERE table_catalog = current_database() AND table_schema NOT IN ('information_schema', 'pg_catalog')
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    return {(schema, name): [tuple(c) for c in columns] for schema, name, columns in rows}


def compared(column: str, data_type: str) -> str:
    quoted = f'"{column}"'
    return f"round({quoted}, {FLOAT_DECIMALS})" if data_type in ("DOUBLE", "FLOAT") else quoted


def compare(before: Path, after: Path) -> int:
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{before}' AS before (READ_ONLY)")
    con.execute(f"ATTACH '{after}' AS after (READ_ONLY)")
    con.execute("USE before")
    old = tables(con)
    con.execute("USE after")
    new = tables(con)
    differences = 0
    for key in sorted(old.keys() | new.keys()):
        name = ".".join(key)
        if key not in old or key not in new:
            print(f"{name:<45} only {'before' if key in old else 'after'}")
            differences += 1
            continue
        if old[key] != new[key]:
            print(f"{name:<45} columns differ: {old[key]} vs {new[key]}")
            differences += 1
            continue
        skipped = [c for c, _ in old[key] if c in RUN_CLOCK_COLUMNS]
        columns = ", ".join(compared(c, t) for c, t in old[key] if c not in skipped)
        table = f'"{key[0]}"."{key[1]}"'
        only_before, only_after, rows = con.execute(
            f"""
            SELECT
                (SELECT count(*) FROM (SELECT {columns} FROM before.{table} EXCEPT ALL SELECT {columns} FROM after.{table})),
                (SELECT count(*) FROM (SELECT {columns} FROM after.{table} EXCEPT ALL SELECT {columns} FROM before.{table})),
                (SELECT count(*) FROM before.{table})
            """
        ).fetchone()
        verdict = (
            "same"
            if only_before == only_after == 0
            else f"DIFFERENT: {only_before} rows only before, {only_after} only after"
        )
        note = f" (not compared: {', '.join(skipped)})" if skipped else ""
        print(f"{name:<45} {rows:>10} rows  {verdict}{note}")
        differences += verdict != "same"
    print("identical" if differences == 0 else f"{differences} table(s) differ")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="materialise the whole graph into a new DuckDB file")
    build_command.add_argument("--data", type=Path, required=True, help="a folder made by `cdm sample --out`")
    build_command.add_argument("--out", type=Path, required=True, help="the DuckDB file to build")
    compare_command = commands.add_parser("compare", help="compare two warehouses table by table")
    compare_command.add_argument("before", type=Path)
    compare_command.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        seconds = build(args.data.resolve(), args.out.resolve())
        import cdm_assets

        print(f"built {args.out} from {args.data} in {seconds:.2f} s (code: {Path(cdm_assets.__file__).parent})")
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
