"""Connected components of a chain, the worst case for rounds of set operations.

    python benchmarks/chain_components.py --records 10000 100000 1000000

For each size it links records 0-1-2-...-(n-1), once in ascending key order
and once in a random order of keys, and runs `star_components`
(`cdm_assets/domain/identity/star_contraction.py`, the SQL rounds meant for
engines where the links do not fit on one machine) on DuckDB. It prints the
rounds beside 2·log2(n), the seconds, and whether the result is one component
labelled 0.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdm_assets.domain.identity.star_contraction import star_components
from cdm_assets.domain.sql import TableName


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args(argv)
    con = duckdb.connect()
    labels = TableName("temp", "chain_labels")
    print(f"{'records':>10} {'order':<10} {'rounds':>6} {'2·log2(n)':>9} {'seconds':>8}  result")
    for n in args.records:
        for order in ("ascending", "random"):
            keys = np.arange(n) if order == "ascending" else np.random.default_rng(42).permutation(n)
            links = {"key_a": keys[:-1], "key_b": keys[1:]}
            con.register("chain", links)
            started = time.perf_counter()
            run = star_components(con, "SELECT key_a::BIGINT AS key_a, key_b::BIGINT AS key_b FROM chain", labels)
            seconds = time.perf_counter() - started
            components, smallest, records = con.execute(
                f"SELECT count(DISTINCT component), min(component), count(*) FROM {labels.sql}"
            ).fetchone()
            correct = (components, smallest, records) == (1, 0, n)
            print(
                f"{n:>10,} {order:<10} {run.rounds:>6} {2 * math.log2(n):>9.1f} {seconds:>8.2f}  "
                f"{'one component labelled 0' if correct else f'WRONG: {components} components'}"
            )
            con.execute(f"DROP TABLE {labels.sql}")
            con.unregister("chain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
