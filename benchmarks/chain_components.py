"""Connected components of a chain, the worst case for rounds of set operations.

    python benchmarks/chain_components.py --records 10000 100000 1000000
    python benchmarks/chain_components.py --records 100000 --engine spark   # pip install '.[bench]'

For each size it links records 0-1-2-...-(n-1), once in ascending key order
and once in a random order of keys, and runs `star_components`
(`cdm_assets/domain/identity/star_contraction.py`, the SQL rounds meant for
engines where the links do not fit on one machine). It prints the rounds
beside 2·log2(n), the seconds, and whether the result is one component
labelled 0.

`--engine spark` runs the very same statements on PySpark (`local[2]`):
each is written for DuckDB and transpiled with sqlglot, and each table a
round writes is a Parquet directory read back, the checkpoint that keeps
Spark's plans from growing with the rounds. Only this benchmark's small
adapter stands between the two; cdm itself does not run on Spark yet.
"""

from __future__ import annotations

import argparse
import math
import os
import re
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


class _Fetched:
    def __init__(self, rows: list) -> None:
        self.rows = rows

    def fetchone(self) -> tuple | None:
        return tuple(self.rows[0]) if self.rows else None


class SparkStatements:
    """Runs DuckDB-dialect statements on a Spark session: `CREATE [TEMP] TABLE x AS ...`
    writes x as Parquet and reads it back as a view, `DROP TABLE IF EXISTS x` drops
    the view, anything else is a query."""

    def __init__(self, spark, folder: Path) -> None:
        self.spark, self.folder = spark, folder

    def _spark_sql(self, sql: str) -> str:
        import sqlglot

        return sqlglot.transpile(sql.replace('"temp".', ""), read="duckdb", write="spark")[0]

    def execute(self, sql: str, params: object = None) -> _Fetched | None:
        created = re.match(r'\s*CREATE (?:TEMP )?TABLE (?:"temp"\.)?"?(\w+)"? AS\s*(.*)', sql, re.S)
        if created:
            name, select = created.groups()
            path = str(self.folder / name)
            self.spark.sql(self._spark_sql(select)).write.mode("overwrite").parquet(path)
            self.spark.read.parquet(path).createOrReplaceTempView(name)
            return None
        dropped = re.match(r'\s*DROP TABLE IF EXISTS (?:"temp"\.)?"?(\w+)"?', sql)
        if dropped:
            self.spark.catalog.dropTempView(dropped.group(1))
            return None
        return _Fetched(self.spark.sql(self._spark_sql(sql)).collect())


def _spark_session():
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cdm-chain-") as folder:
        spark = _spark_session() if args.engine == "spark" else None
        con = SparkStatements(spark, Path(folder)) if spark is not None else duckdb.connect()
        print(f"{args.engine}: {'records':>10} {'order':<10} {'rounds':>6} {'2·log2(n)':>9} {'seconds':>8}  result")
        for n in args.records:
            for order in ("ascending", "random"):
                keys = np.arange(n) if order == "ascending" else np.random.default_rng(42).permutation(n)
                if spark is not None:
                    links = pd.DataFrame({"key_a": keys[:-1], "key_b": keys[1:]}, dtype="int64")
                    spark.createDataFrame(links).createOrReplaceTempView("chain")
                else:
                    con.register("chain", {"key_a": keys[:-1], "key_b": keys[1:]})
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
        if spark is not None:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
