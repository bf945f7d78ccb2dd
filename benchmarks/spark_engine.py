"""The whole chain on both engines: the same sample through Dagster on DuckDB and on Spark.

    python benchmarks/spark_engine.py --persons 1000              # pip install '.[spark]'; Java 17
    python benchmarks/spark_engine.py --persons 1000 --master 'local[2]'

Generates sample data (fixed seed), then materialises every asset and check
in-process twice, with `CDM_ENGINE=duckdb` and with `CDM_ENGINE=spark`
(`--master`, default `local[2]`), and prints per engine the run's seconds, the
slowest steps and the checks that failed. DuckDB then reads each of Spark's
Parquet directories and compares it with its own table of that name, row by
row (columns holding the time of the run aside, doubles to 9 decimals):
SAME, or DIFF with both row counts. State tables that hold DuckDB's or Spark's
own hash values (blocks, input hashes) are expected to differ. Last, the
pairwise precision, recall and F1 of Spark's Customer IDs against DuckDB's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# columns that hold the moment of a run, not a result
RUN_TIME_COLUMNS = {"trained_at", "quarantined_at", "changed_at", "days_since_last_order", "built_at", "loaded_at"}


def run(config_path: Path, engine: str) -> dict:
    import dagster as dg

    from benchmarks.run import step_times
    from cdm_assets.config import load_config
    from cdm_assets.definitions import build_definitions

    os.environ["CDM_ENGINE"] = engine
    defs = build_definitions(load_config(config_path))
    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            resources=defs.resources,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        events = instance.all_logs(result.run_id)
    seconds = time.perf_counter() - started
    steps = {key: s["end"] - s["start"] for key, s in step_times(events).items() if "start" in s and "end" in s}
    failed = sorted(str(e.asset_check_key) for e in result.get_asset_check_evaluations() if not e.passed)
    return {"success": result.success, "seconds": seconds, "steps": steps, "failed_checks": failed}


def rows_on_both(con, schema: str, name: str, directory: Path, skipped: set[str]) -> tuple[list, list]:
    """The rows of DuckDB's table `schema.name` and of Spark's Parquet `directory`, both
    sorted, without the `skipped` columns and with doubles to 9 decimals (the JVM and
    DuckDB may round a logarithm apart in its last bit)."""
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
        "ORDER BY column_index",
        [schema, name],
    ).fetchall()
    chosen = ", ".join(
        f'round("{c}", 9)' if dtype == "DOUBLE" else f'"{c}"' for c, dtype in columns if c not in skipped
    )
    mine = con.execute(f'SELECT {chosen} FROM "{schema}"."{name}" ORDER BY ALL').fetchall()
    theirs = con.execute(
        f"SELECT {chosen} FROM read_parquet('{directory}/*.parquet', union_by_name = true) ORDER BY ALL"
    ).fetchall()
    return mine, theirs


def compare(out: Path) -> list[tuple[str, str, int, int]]:
    import duckdb

    con = duckdb.connect(str(out / "cdm.duckdb"), read_only=True)
    rows = []
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        for schema, name in tables:
            directory = out / "spark-warehouse" / schema / name
            if not directory.exists():
                rows.append((f"{schema}.{name}", "MISSING on Spark", 0, 0))
                continue
            mine, theirs = rows_on_both(con, schema, name, directory, RUN_TIME_COLUMNS)
            rows.append((f"{schema}.{name}", "SAME" if mine == theirs else "DIFF", len(mine), len(theirs)))
    finally:
        con.close()
    return rows


def clusterings_agree(warehouse: Path, spark_dir: Path) -> tuple[float, float, float, int]:
    """Pairwise precision, recall and F1 of the Customer IDs in Spark's `spark_dir` against
    those in the DuckDB file `warehouse`, over the record pairs that share a customer, and how
    many pairs DuckDB's ids put together."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        together, duckdb_pairs, spark_pairs = con.execute(
            """
            WITH spark AS (SELECT source, source_record_id, customer_id FROM read_parquet(?)),
            joined AS (
                SELECT d.customer_id AS d, s.customer_id AS s
                FROM identity.customer_id_map d JOIN spark s USING (source, source_record_id)
            ),
            cells AS (SELECT count(*) AS n FROM joined GROUP BY d, s),
            by_duckdb AS (SELECT count(*) AS n FROM joined GROUP BY d),
            by_spark AS (SELECT count(*) AS n FROM joined GROUP BY s)
            SELECT (SELECT sum(n * (n - 1) / 2) FROM cells), (SELECT sum(n * (n - 1) / 2) FROM by_duckdb),
                   (SELECT sum(n * (n - 1) / 2) FROM by_spark)
            """,
            [str(spark_dir / "identity" / "customer_id_map" / "*.parquet")],
        ).fetchone()
    finally:
        con.close()
    precision = together / spark_pairs if spark_pairs else 1.0
    recall = together / duckdb_pairs if duckdb_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, int(duckdb_pairs or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    import yaml

    from cdm_assets.config import BUNDLED_CONFIG
    from cdm_assets.sample import generate

    with tempfile.TemporaryDirectory(prefix="cdm-spark-") as folder:
        out = Path(folder)
        generate(persons=args.persons, seed=42, out=out)
        document = yaml.safe_load(BUNDLED_CONFIG.read_text())
        for source in document["sources"].values():
            source["path"] = source["path"].removeprefix("../../data/")
        document["warehouse"] = {
            "duckdb_path": "cdm.duckdb",
            "spark": {"master": args.master, "warehouse_dir": "spark-warehouse"},
        }
        config_path = out / "cdm.yaml"
        config_path.write_text(yaml.safe_dump(document))
        runs = {engine: run(config_path, engine) for engine in ("duckdb", "spark")}
        for engine, result in runs.items():
            slowest = sorted(result["steps"].items(), key=lambda item: -item[1])[:5]
            print(
                f"{engine}: success {result['success']}, {result['seconds']:.1f} s; failed checks: "
                f"{', '.join(result['failed_checks']) or 'none'}; slowest steps: "
                + ", ".join(f"{key} {seconds:.1f} s" for key, seconds in slowest)
            )
        print(f"\nspark / duckdb: {runs['spark']['seconds'] / runs['duckdb']['seconds']:.0f}x\n")
        print("| table | Spark's rows against DuckDB's | DuckDB rows | Spark rows |")
        print("|---|---|---:|---:|")
        for table, verdict, mine, theirs in compare(out):
            print(f"| {table} | {verdict} | {mine:,} | {theirs:,} |")
        precision, recall, f1, pairs = clusterings_agree(out / "cdm.duckdb", out / "spark-warehouse")
        print(
            f"\nSpark's Customer IDs against DuckDB's, pairwise: P {precision:.6f}, R {recall:.6f}, F1 {f1:.6f} "
            f"({pairs:,} record pairs share a customer in DuckDB's)"
        )


if __name__ == "__main__":
    main()
