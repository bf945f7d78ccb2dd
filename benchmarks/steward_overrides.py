"""What steward overrides cost, and do they hold? Build a sample twice, without and with overrides.

    python benchmarks/steward_overrides.py --data /tmp/s100k --lines 1000

`--data` is a folder made by `cdm sample --out DIR` holding a `cdm.yaml` (the demo's,
with its paths pointing into the folder). The script builds the whole graph
in-process without overrides, picks `--lines` overrides from the result (half
`unlink`s of two records of one customer, half `link`s of records of two customers),
writes them to `<data>/steward/overrides.csv` and a config naming them, then reruns
two copies of that warehouse, one without and one with the overrides (as a steward's
first file arrives on a running platform), and prints both rerun times, the outcome
of the lines and whether every override holds: each unlinked pair in two customers,
each linked pair in one (unless an unlink overrules it).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

import yaml

HEADER = "source_a,record_id_a,source_b,record_id_b,action,reason\n"


def build(config_path: Path, out: Path) -> float:
    """Materialise every asset and check into the warehouse `out` (new or not); the seconds it took."""
    from benchmarks.same_output import materialize_config

    return materialize_config(config_path, out, log_level="ERROR")


def pick_overrides(warehouse: Path, lines: int, seed: int) -> list[tuple[str, str, str, str, str]]:
    """Unlinks of two records of one multi-record customer, links of records of two customers."""
    import duckdb

    rng = random.Random(seed)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        shared = con.execute(
            """
            SELECT list(source ORDER BY source, source_record_id), list(source_record_id ORDER BY source, source_record_id)
            FROM identity.customer_id_map GROUP BY customer_id HAVING count(*) >= 2 ORDER BY customer_id
            """
        ).fetchall()
        records = con.execute(
            "SELECT source, source_record_id, customer_id FROM identity.customer_id_map ORDER BY ALL"
        ).fetchall()
    picked = []
    for sources, ids in rng.sample(shared, min(lines // 2, len(shared))):
        a, b = rng.sample(range(len(ids)), 2)
        picked.append((sources[a], ids[a], sources[b], ids[b], "unlink"))
    while len(picked) < lines:
        one, other = rng.sample(records, 2)
        if one[2] != other[2]:
            picked.append((one[0], one[1], other[0], other[1], "link"))
    return picked


def check(warehouse: Path, overrides: list[tuple[str, str, str, str, str]]) -> tuple[dict, int, int, int]:
    """Statuses per line, links cut, override changes in the history, and overrides that do not hold."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        ids = {
            (s, r): c
            for s, r, c in con.execute(
                "SELECT * EXCLUDE (record_key, cluster) FROM identity.customer_id_map"
            ).fetchall()
        }
        statuses = dict(con.execute("SELECT status, count(*) FROM identity.steward_overrides GROUP BY ALL").fetchall())
        cut = con.execute("SELECT count(*) FROM identity.cut_links").fetchone()[0]
        changes = con.execute("SELECT count(*) FROM identity.customer_id_history WHERE change = 'override'").fetchone()[
            0
        ]
        overruled = {
            line
            for (line,) in con.execute(
                "SELECT line FROM identity.steward_overrides WHERE status = 'overruled'"
            ).fetchall()
        }
    broken = 0
    for line, (sa, ra, sb, rb, action) in enumerate(overrides, start=2):
        same = ids[(sa, ra)] == ids[(sb, rb)]
        if (action == "unlink" and same) or (action == "link" and not same and line not in overruled):
            broken += 1
    return statuses, cut, changes, broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    first = args.data / "first_build.duckdb"
    plain, steward = args.data / "rerun_without_overrides.duckdb", args.data / "rerun_with_overrides.duckdb"
    for path in (first, plain, steward):
        path.unlink(missing_ok=True)
    build(args.data / "cdm.yaml", first)
    shutil.copy(first, plain)
    shutil.copy(first, steward)
    overrides = pick_overrides(first, args.lines, args.seed)
    path = args.data / "steward/overrides.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(HEADER + "".join(",".join(row) + ",benchmark\n" for row in overrides))
    document = yaml.safe_load((args.data / "cdm.yaml").read_text())
    document.setdefault("identity", {})["overrides"] = "steward/overrides.csv"
    config = args.data / "cdm_with_overrides.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    seconds_plain = build(args.data / "cdm.yaml", plain)
    seconds_steward = build(config, steward)
    statuses, cut, changes, broken = check(steward, overrides)
    print(f"rerun of the whole graph without overrides: {seconds_plain:.2f} s")
    print(
        f"rerun of the whole graph with {len(overrides)} overrides: {seconds_steward:.2f} s "
        f"({seconds_steward / seconds_plain:.2f}x)"
    )
    print(f"outcome per line: {statuses}; links cut: {cut}; id changes recorded as override: {changes}")
    print(f"overrides that do not hold: {broken}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
