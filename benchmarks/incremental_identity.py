"""Following a batch by its changes against rebuilding the identity layer in full.

    python benchmarks/incremental_identity.py --persons 100000 1000000

For each size it generates sample data (fixed seed), loads the customer
sources into a DuckDB file and resolves identity in full once (lookup, match
model, graph, Customer IDs). Then a batch lands in the raw tables: new
records (`--added`, a share of the records: copies of existing records under
new ids, half of them with the email emptied, as the same person again from
another channel), changed records (`--changed`: a value emptied or copied
from another record) and removed ones (`--removed`). The warehouse file is
copied; one copy follows the batch by its changes, the other rebuilds the
lookup and the graph in full, each step timed, and their tables must come out identical.
Printed: per step the seconds of both, the total and its ratio, what the
lookup saw change, and how many pairs each scored.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.identity_quality import SEED, sample_config  # noqa: E402
from cdm_assets.config import load_config  # noqa: E402
from cdm_assets.config.plan import resolve_plan  # noqa: E402
from cdm_assets.domain.identity.graph_changes import GraphState  # noqa: E402
from cdm_assets.domain.identity.resolution import assign_ids_from_graph, build_graph  # noqa: E402
from cdm_assets.domain.identity.source_lookup import build_source_lookup_counting_nulls  # noqa: E402
from cdm_assets.domain.raw.load import landed_files, load_raw_source  # noqa: E402
from cdm_assets.domain.sql import TableName, quote_ident  # noqa: E402
from cdm_assets.domain.table_versions import TableVersion, ensure_state, record_statements  # noqa: E402
from cdm_assets.sample import generate  # noqa: E402


def land_batch(con: duckdb.DuckDBPyConnection, entity, added: float, changed: float, removed: float) -> None:
    """Add, change and remove shares of every customer source's records, in SQL, repeatably."""
    for index, (name, source) in enumerate(sorted(entity.sources.items())):
        table, record_id = f"raw.{quote_ident(name)}", quote_ident(source.record_id)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        email = source.fields.get("email")
        emptied = quote_ident(email.column) if email else None
        sample = f"USING SAMPLE reservoir({{n}} ROWS) REPEATABLE ({SEED + index})"
        copies = f"SELECT * FROM {table} {sample.format(n=max(1, int(rows * added)))}"
        con.execute(
            f"INSERT INTO {table} SELECT * REPLACE ('batch_' || CAST({record_id} AS VARCHAR) AS {record_id}) "
            f"FROM ({copies})"
        )
        if emptied:
            con.execute(
                f"UPDATE {table} SET {emptied} = NULL WHERE CAST({record_id} AS VARCHAR) LIKE 'batch_%' "
                f"AND hash({record_id}) % 2 = 0"
            )
        picked = f"SELECT {record_id} FROM {table} WHERE NOT CAST({record_id} AS VARCHAR) LIKE 'batch_%' {{sample}}"
        changed_ids = picked.format(sample=sample.format(n=max(1, int(rows * changed))))
        column = emptied or quote_ident(next(iter(source.fields.values())).column)
        con.execute(f"UPDATE {table} SET {column} = NULL WHERE {record_id} IN ({changed_ids})")
        removed_ids = picked.format(sample=sample.replace(str(SEED + index), str(SEED + 100 + index)).format(
            n=max(1, int(rows * removed))
        ))  # fmt: skip
        con.execute(f"DELETE FROM {table} WHERE {record_id} IN ({removed_ids})")
        # a new version of the raw table, its changes not recorded (as after a load that read
        # every file): the lookup compares every record's input hash to find them
        ensure_state(con)
        for statement, parameters in record_statements([TableVersion.new(TableName("raw", name))], []):
            con.execute(statement, parameters)


def timed_identity(path: Path, entity, full: bool) -> dict:
    con = duckdb.connect(str(path))
    con.execute("SET preserve_insertion_order = false")
    seconds = {}
    start = time.perf_counter()
    lookup = build_source_lookup_counting_nulls(con, entity, full=full)
    seconds["source lookup"] = time.perf_counter() - start
    start = time.perf_counter()
    graph = build_graph(con, entity, full=full)
    seconds["identity graph"] = time.perf_counter() - start
    start = time.perf_counter()
    ids = assign_ids_from_graph(con, entity.tables, now=datetime(2026, 12, 4))
    seconds["customer ids"] = time.perf_counter() - start
    state = {}
    tables = entity.tables
    for table in (tables.lookup, tables.graph, tables.id_map, GraphState.of(tables.graph).model_links):
        state[str(table)] = con.execute(f"SELECT * FROM {table.sql} ORDER BY ALL").fetchall()
    con.close()
    return {
        "seconds": seconds, "lookup": lookup.build, "standardised": lookup.standardised, "graph": graph, "ids": ids,
        "state": state,
    }  # fmt: skip


def run_size(persons: int, work: Path, added: float, changed: float, removed: float) -> None:
    generate(persons=persons, seed=SEED, out=work)
    entity = resolve_plan(load_config(sample_config(work))).entities["customer"]
    base = work / "base.duckdb"
    con = duckdb.connect(str(base))
    for name, source in entity.sources.items():
        load_raw_source(con, name, source, landed_files(Path(source.path)))
    con.close()
    first = timed_identity(base, entity, full=True)
    con = duckdb.connect(str(base))
    land_batch(con, entity, added, changed, removed)
    con.close()
    following, rebuilding = work / "following.duckdb", work / "rebuilding.duckdb"
    shutil.copyfile(base, following)
    shutil.copyfile(base, rebuilding)
    result = {"following": timed_identity(following, entity, full=False)}
    result["rebuilding"] = timed_identity(rebuilding, entity, full=True)
    build = result["following"]["lookup"]
    print(f"\n## {persons:,} persons: a batch of {build.added:,} added, {build.changed:,} changed, "
          f"{build.removed:,} removed records")  # fmt: skip
    print(
        f"(first full run: {sum(first['seconds'].values()):.2f} s; the lookup standardised "
        f"{result['following']['standardised']:,} records following, "
        f"{result['rebuilding']['standardised']:,} rebuilding)\n"
    )
    print("| step | rebuilding (s) | following (s) | following / rebuilding |")
    print("|---|---:|---:|---:|")
    for step in result["rebuilding"]["seconds"]:
        full_s, follow_s = result["rebuilding"]["seconds"][step], result["following"]["seconds"][step]
        print(f"| {step} | {full_s:.2f} | {follow_s:.2f} | {follow_s / full_s:.2f} |")
    full_total = sum(result["rebuilding"]["seconds"].values())
    follow_total = sum(result["following"]["seconds"].values())
    print(f"| total | {full_total:.2f} | {follow_total:.2f} | {follow_total / full_total:.2f} |")
    graphs = {kind: result[kind]["graph"] for kind in result}
    print(
        f"\nfollowed the changes: {graphs['following'].followed_changes}; model pairs scored: "
        f"{graphs['following'].model_pairs['candidate_pairs']:,} following, "
        f"{graphs['rebuilding'].model_pairs['candidate_pairs']:,} rebuilding; "
        f"rule blocks rebuilt: {graphs['following'].rule_blocks_rebuilt:,}"
    )
    same = result["following"]["state"] == result["rebuilding"]["state"]
    print(f"lookup, identity graph, Customer IDs and model links identical: {same}")
    if not same:
        raise SystemExit("following the batch did not end where the full rebuild did")


def batch_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments of a batch benchmark: sizes, and the shares of records added, changed, removed."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000])
    parser.add_argument("--added", type=float, default=0.01)
    parser.add_argument("--changed", type=float, default=0.001)
    parser.add_argument("--removed", type=float, default=0.001)
    return parser


def main() -> None:
    parser = batch_arguments(__doc__)
    parser.add_argument("--data", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    for persons in args.persons:
        with tempfile.TemporaryDirectory() as temporary:
            work = (args.data or Path(temporary)) / f"p{persons}"
            work.mkdir(parents=True, exist_ok=True)
            run_size(persons, work, args.added, args.changed, args.removed)


if __name__ == "__main__":
    main()
