"""Connected components of a chain, the worst case for rounds of set operations.

    python benchmarks/chain_components.py --records 10000 100000 1000000
    python benchmarks/chain_components.py --records 100000 --engine spark   # pip install '.[bench]'

For each size it links records 0-1-2-...-(n-1), once in ascending key order
and once in a random order of keys, and runs `star_components`
(`cdm_assets/domain/identity/star_contraction.py`, the SQL rounds meant for
engines where the links do not fit on one machine). It prints the rounds
beside 2·log2(n), the seconds, and whether the result is one component
labelled 0.

`--engine spark` runs the very same statements through cdm's Spark
connection (`warehouse.engine: spark`, `--master`, default `local[2]`): each
is written for DuckDB and rendered for Spark with sqlglot, and each table a
round writes is a Parquet directory read back, the checkpoint that keeps
Spark's plans from growing with the rounds.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdm_assets.domain.identity.star_contraction import star_components
from cdm_assets.domain.sql import TableName

LABELS = TableName("temp", "chain_labels")


def _spark_warehouse(master: str, folder: Path):
    """cdm's own Spark connection (`cdm_assets/domain/spark/`): Parquet tables under `folder`."""
    from cdm_assets.domain.spark.connection import SparkWarehouse, spark_session

    return SparkWarehouse(spark_session(master), str(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument("--master", default="local[2]", help="the Spark master with --engine spark")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cdm-chain-") as folder:
        on_spark = args.engine == "spark"
        con = _spark_warehouse(args.master, Path(folder)) if on_spark else duckdb.connect()
        print(f"{args.engine}: {'records':>10} {'order':<10} {'rounds':>6} {'2·log2(n)':>9} {'seconds':>8}  result")
        for n in args.records:
            for order in ("ascending", "random"):
                keys = np.arange(n) if order == "ascending" else np.random.default_rng(42).permutation(n)
                con.register("chain", pd.DataFrame({"key_a": keys[:-1], "key_b": keys[1:]}, dtype="int64"))
                started = time.perf_counter()
                run = star_components(con, "SELECT key_a, key_b FROM chain", LABELS)
                seconds = time.perf_counter() - started
                components, smallest, records = con.execute(
                    f"SELECT count(DISTINCT component), min(component), count(*) FROM {LABELS.sql}"
                ).fetchone()
                correct = (components, smallest, records) == (1, 0, n)
                result = "one component labelled 0" if correct else f"WRONG: {components} components"
                print(
                    f"{args.engine}: {n:>10,} {order:<10} {run.rounds:>6} {2 * math.log2(n):>9.1f} {seconds:>8.2f}  "
                    f"{result}"
                )
                con.execute(f"DROP TABLE IF EXISTS {LABELS.sql}")
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
