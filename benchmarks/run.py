"""The whole platform at scale: raw files to marts through Dagster, per asset.

    python benchmarks/run.py --persons 100000 1000000
    python benchmarks/run.py --persons 1000000 --data /tmp/s1m --cli --customers-only

For each size it generates sample data (fixed seed), then in a fresh child
process materialises every asset and check in-process with Dagster
(`dagster.materialize`, the in-process executor the project uses) against a
new DuckDB file, and prints per asset the wall time and the peak resident
memory while it ran, the total, and the identity quality against the ground
truth. In the same child and on the same data it times references, with
their quality and peak memory: an exact-key baseline (connected components
over exact email, phone and name + birth date keys, placeholders removed)
and, when installed (`pip install '.[bench]'`; `--no-splink` leaves it out),
a Splink 5 model on DuckDB (see `benchmarks/splink_reference.py`).

`--cli` also times the whole graph as a user runs it, `dagster asset
materialize -m cdm_assets --select '*'` in its own process (start-up and
definitions included), first, on a fresh warehouse. `--customers-only` keeps
only the customer sources in the config, as for data without transaction or
event feeds.

`--engine spark` runs the same materialisation with `warehouse.engine: spark`
(`--master`, default `local[2]`; `--spark-conf key=value` adds session
settings, e.g. `spark.driver.memory=12g`) and also prints the star rounds the
Customer IDs' clustering took. Peak memory then counts the JVM and Spark's
Python workers too (every process under the run's). Quality is scored by
DuckDB reading Spark's Parquet tables; the Splink reference is left out.

    python benchmarks/run.py --persons 100000 --engine spark --spark-conf spark.driver.memory=12g
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.identity_quality import SEED, load_truth, sample_config, score_labels, scores  # noqa: E402
from benchmarks.splink_reference import MATCH_PROBABILITY, run_splink_reference, splink_available  # noqa: E402

BASELINE_KEYS = (
    "email_key",
    "phone_key",
    "last_name_key || '|' || first_name_key || '|' || CAST(birth_date AS VARCHAR)",
)


class RssSampler(threading.Thread):
    """Samples this process's resident memory and CPU time every few milliseconds; with
    `descendants`, the memory of every process it started too (a JVM, Python workers)."""

    def __init__(self, interval: float = 0.02, descendants: bool = False):
        super().__init__(daemon=True)
        self.interval = interval
        self.descendants = descendants
        # (time, rss bytes, this process's cpu seconds, (machine busy ticks, idle ticks))
        self.samples: list[tuple[float, int, float, tuple[int, int]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        ticks = os.sysconf("SC_CLK_TCK")
        while not self._halt.is_set():
            if self.descendants:
                tree = _process_tree(os.getpid())
                rss = sum(_resident_pages(pid) for pid in tree) * page
                # a worker that ended takes its CPU time with it: a lower bound
                cpu_seconds = sum(_cpu_ticks(pid) for pid in tree) / ticks
            else:
                with open("/proc/self/statm") as statm:
                    rss = int(statm.read().split()[1]) * page
                cpu = os.times()
                cpu_seconds = cpu.user + cpu.system
            self.samples.append((time.time(), rss, cpu_seconds, _machine_ticks()))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for t, rss, _, _ in self.samples if start <= t <= end]
        return max(inside) if inside else 0

    def others_between(self, start: float, end: float) -> float:
        """Cores other processes kept busy on average between two times: a run
        that shared the machine is flagged, its timings are not comparable."""
        inside = [(t, cpu, machine) for t, _, cpu, machine in self.samples if start <= t <= end]
        if len(inside) < 2:
            return 0.0
        (t0, cpu0, (busy0, _)), (t1, cpu1, (busy1, _)) = inside[0], inside[-1]
        ticks = os.sysconf("SC_CLK_TCK")
        return max(0.0, ((busy1 - busy0) / ticks - (cpu1 - cpu0)) / (t1 - t0))

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds (user + system, all threads) spent between two times."""
        inside = [cpu for t, _, cpu, _ in self.samples if start <= t <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0


def _process_tree(root: int) -> list[int]:
    """`root` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # the command in parentheses may hold spaces: the parent id follows its closing one
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        children.setdefault(parent, []).append(int(entry))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, ()))
    return tree


def _cpu_ticks(pid: int) -> int:
    """User and system clock ticks `pid` has run (all threads)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _resident_pages(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _machine_ticks() -> tuple[int, int]:
    """(busy, idle) clock ticks of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, idle


def exact_key_baseline(con) -> tuple[float, object]:
    """Connected components over exact keys; returns seconds and the labels table."""
    import numpy as np
    import pyarrow as pa

    from cdm_assets.domain.identity.clustering import cluster_labels

    start = time.perf_counter()
    unions = " UNION ALL ".join(
        f"SELECT record_key, {key} AS k FROM identity.source_lookup WHERE {key} IS NOT NULL" for key in BASELINE_KEYS
    )
    edges = con.sql(
        f"""
        WITH keyed AS ({unions}),
        ok AS (SELECT k FROM keyed GROUP BY k HAVING count(*) BETWEEN 2 AND 50)
        SELECT min(record_key) OVER (PARTITION BY k) AS key_a, record_key AS key_b
        FROM keyed WHERE k IN (SELECT k FROM ok)
        """
    ).to_arrow_table()
    count = con.execute("SELECT count(*) FROM identity.source_lookup").fetchall()[0][0]
    labels = cluster_labels(count, edges.column("key_a").to_numpy(), edges.column("key_b").to_numpy())
    seconds = time.perf_counter() - start
    table = pa.table({"record_key": np.arange(count), "cluster": labels})
    return seconds, table


def step_times(events) -> dict[str, dict[str, float]]:
    """Per step of a run's events: when it started and when it ended (succeeded or failed)."""
    steps: dict[str, dict[str, float]] = {}
    for event in events:
        if event.step_key is None or not event.is_dagster_event:
            continue
        kind = event.dagster_event.event_type_value
        if kind == "STEP_START":
            steps.setdefault(event.step_key, {})["start"] = event.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            steps.setdefault(event.step_key, {})["end"] = event.timestamp
    return steps


def duckdb_over_parquet(warehouse_dir: Path):
    """An in-memory DuckDB holding a copy of each Parquet table directory Spark wrote at
    `<warehouse_dir>/<schema>/<table>/` as `schema.table` (tables, not views: the
    references replace the id map with theirs to score it)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    for schema in sorted(p for p in warehouse_dir.iterdir() if p.is_dir() and not p.name.startswith("_")):
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema.name}"')
        for table in sorted(p for p in schema.iterdir() if p.is_dir() and any(p.glob("*.parquet"))):
            con.execute(
                f'CREATE TABLE "{schema.name}"."{table.name}" AS '
                f"SELECT * FROM read_parquet('{table}/*.parquet', union_by_name = true)"
            )
    return con


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def graph_numbers(events) -> dict[str, int]:
    """The identity graph's links per rule and the match model's pair counts (`links/...`,
    `model/...` in its materialisation's metadata)."""
    for event in events:
        if event.is_dagster_event and event.dagster_event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.dagster_event.event_specific_data.materialization
            if materialization.asset_key.to_user_string() == "identity/identity_graph":
                return {
                    key: entry.value
                    for key, entry in materialization.metadata.items()
                    if key.startswith(("links/", "model/"))
                }
    return {}


def clustering_rounds(events) -> int | None:
    """The star rounds the Customer IDs' clustering reported (Spark), None where it reported none."""
    for event in events:
        if event.is_dagster_event and event.dagster_event.event_type_value == "ASSET_MATERIALIZATION":
            metadata = event.dagster_event.event_specific_data.materialization.metadata
            if "clustering_rounds" in metadata:
                return metadata["clustering_rounds"].value
    return None


def measure(config_path: Path, truth_path: Path, with_splink: bool, queue) -> None:
    import dagster as dg
    import duckdb

    from cdm_assets.config import load_config
    from cdm_assets.config.loader import engine
    from cdm_assets.definitions import build_definitions

    config = load_config(config_path)
    defs = build_definitions(config)
    on_spark = engine(config) == "spark"
    sampler = RssSampler(interval=0.2, descendants=True) if on_spark else RssSampler()
    sampler.start()
    started = time.time()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            resources=defs.resources,
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
        events = instance.all_logs(result.run_id)
    ended = time.time()
    total = ended - started
    steps = step_times(events)
    # Raw sources load side by side in one step; each reports its own load time.
    raw_loads = {
        event.dagster_event.asset_key.to_user_string(): event.dagster_event.event_specific_data.materialization.metadata[
            "load_seconds"
        ].value
        for event in events
        if event.is_dagster_event
        and event.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        and "load_seconds" in event.dagster_event.event_specific_data.materialization.metadata
    }
    per_step = {
        key: (
            s["end"] - s["start"],
            sampler.peak_between(s["start"], s["end"]) / 2**20,
            sampler.cpu_between(s["start"], s["end"]),
        )
        for key, s in steps.items()
        if "start" in s and "end" in s
    }
    if not result.success:  # report how far it got
        sampler.stop()
        failed = [
            e.step_key for e in events if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
        ]
        queue.put(
            {
                "success": False,
                "failed_steps": failed,
                "total_seconds": total,
                "steps": per_step,
                "peak_mb": sampler.peak_between(started, ended) / 2**20,
            }
        )
        return
    if on_spark:
        from cdm_assets.config.loader import spark_warehouse_dir

        directory = Path(spark_warehouse_dir(config))
        con = duckdb_over_parquet(directory)
        file_mb = (_folder_bytes(directory) / 2**20,) * 2
    else:
        warehouse = config.resolve(config.warehouse.duckdb_path)
        con = duckdb.connect(str(warehouse))
        con.execute("SET enable_progress_bar = false")
        in_use = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchall()[0][0]
        file_mb = (warehouse.stat().st_size / 2**20, in_use / 2**20)  # before the references add their tables
    load_truth(con, truth_path)
    quality = scores(con)
    counts = {
        table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        for table in ("identity.source_lookup", "marts.transactions", "marts.events", "marts.customers")
    }
    baseline_started = time.time()
    baseline_seconds, labels = exact_key_baseline(con)
    baseline_peak_mb = sampler.peak_between(baseline_started, time.time()) / 2**20
    baseline = score_labels(con, labels, "b")
    splink = None
    if with_splink:
        splink_started = time.time()
        run = run_splink_reference(con, seed=SEED)
        splink = {
            "seconds": run.seconds,
            "stage_seconds": run.stage_seconds,
            "links": run.links,
            "peak_mb": sampler.peak_between(splink_started, time.time()) / 2**20,
            "quality": score_labels(con, run.labels, "s"),
        }
    sampler.stop()
    queue.put(
        {
            "success": result.success,
            "total_seconds": total,
            "peak_mb": sampler.peak_between(started, ended) / 2**20,
            "cpu_seconds": sampler.cpu_between(started, ended),
            "others_cores": sampler.others_between(started, time.time()),
            "steps": per_step,
            "raw_loads": raw_loads,
            "quality": quality,
            "counts": counts,
            "warehouse_mb": file_mb,
            "baseline_seconds": baseline_seconds,
            "baseline": baseline,
            "baseline_peak_mb": baseline_peak_mb,
            "splink": splink,
            "engine": "spark" if on_spark else "duckdb",
            "clustering_rounds": clustering_rounds(events),
            "graph_numbers": graph_numbers(events),
        }
    )


def read_landing_files(out: Path) -> None:
    """Read every landing file once, so that neither of the timed runs pays for a cold disk cache."""
    for path in sorted((out / "landing").rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass


def time_cli(config_path: Path, scratch: Path) -> float:
    """Seconds of `dagster asset materialize -m cdm_assets --select '*'` as a user runs it,
    process start and definitions included, on a fresh warehouse, with an instance
    whose storage exists (as it does after a user's first command)."""
    import subprocess

    home = scratch / "dagster_home"
    home.mkdir(exist_ok=True)
    # the instance settings `make run` uses (telemetry off, the duckdb pool, run monitoring)
    (home / "dagster.yaml").write_text((ROOT / ".dagster" / "dagster.yaml").read_text())
    warehouse = scratch / "cli.duckdb"
    environment = {
        **os.environ,
        "CDM_CONFIG": str(config_path),
        "CDM_DUCKDB_PATH": str(warehouse),
        "DAGSTER_HOME": str(home),
    }
    dagster = str(Path(sys.executable).parent / "dagster")
    # the instance's storage is created once, as by a user's first command, not timed
    subprocess.run(
        [dagster, "instance", "migrate"],
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    command = [dagster, "asset", "materialize", "-m", "cdm_assets", "--select", "*"]
    started = time.perf_counter()
    subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    warehouse.unlink(missing_ok=True)
    return seconds


def in_child(config_path: Path, truth_path: Path, with_splink: bool) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(config_path, truth_path, with_splink, queue))
    process.start()
    try:
        return queue.get(timeout=6 * 3600)  # Spark at a million persons and more takes hours on two cores
    finally:
        process.join()


def quality_row(name: str, q: dict, seconds: float, peak_mb: float) -> str:
    return (
        f"{name:<24}{q['pair_precision']:>8.4f}{q['pair_recall']:>8.4f}{q['pair_f1']:>8.4f}{q['bcubed_f1']:>8.4f}"
        f"{q['largest_cluster']:>8}{seconds:>9.2f}{peak_mb:>9.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000])
    parser.add_argument("--no-splink", action="store_true", help="leave the Splink reference out even when installed")
    parser.add_argument(
        "--data",
        type=Path,
        help="use the sample data already generated in this folder (`cdm sample --persons N --seed 42 --out DIR`) "
        "instead of generating it; --persons then gives N",
    )
    parser.add_argument("--memory-limit", help="warehouse.memory_limit for the run, e.g. 6GB (default: DuckDB's own)")
    parser.add_argument(
        "--customers-only",
        action="store_true",
        help="configure only the customer sources (no transaction or event feeds), as in data that has no others",
    )
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb", help="warehouse.engine for the run")
    parser.add_argument("--master", default="local[2]", help="warehouse.spark.master with --engine spark")
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting for the session with --engine spark (repeatable), e.g. spark.driver.memory=12g",
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="also time `dagster asset materialize -m cdm_assets --select '*'` from the command line, on a fresh "
        "warehouse and instance, before the in-process run",
    )
    args = parser.parse_args(argv)
    if args.data is not None and len(args.persons) != 1:
        parser.error("--data takes one --persons value: the size the data was generated with")
    if args.engine == "spark" and args.cli:
        parser.error("--cli times the DuckDB warehouse only; leave it out with --engine spark")
    spark_conf = dict(setting.split("=", 1) for setting in args.spark_conf if "=" in setting)
    if len(spark_conf) != len(args.spark_conf):
        parser.error("--spark-conf takes KEY=VALUE")
    from cdm_assets.sample import generate

    with_splink = not args.no_splink and args.engine == "duckdb" and splink_available()
    if not args.no_splink and args.engine == "duckdb" and not with_splink:
        print("Splink reference skipped: splink is not installed (pip install '.[bench]')")

    for persons in args.persons:
        with tempfile.TemporaryDirectory(prefix="cdm-run-") as tmp:
            out = args.data.resolve() if args.data is not None else Path(tmp)
            generated_in = "given" if args.data is not None else None
            if args.data is None:
                generated_in = f"generated in {generate(persons=persons, seed=SEED, out=out).seconds:.1f}s"
            config_path = sample_config(out)
            document = yaml.safe_load(config_path.read_text())
            if args.memory_limit:
                document["warehouse"]["memory_limit"] = args.memory_limit
            document["warehouse"]["engine"] = args.engine
            document["warehouse"]["spark"].update(master=args.master, conf=spark_conf)
            if args.customers_only:
                document["sources"] = {
                    name: source for name, source in document["sources"].items() if source.get("entity") == "customer"
                }
            config_path.write_text(yaml.safe_dump(document, sort_keys=False))
            read_landing_files(out)
            cli_seconds = time_cli(config_path, Path(tmp)) if args.cli else None
            (out / "bench.duckdb").unlink(missing_ok=True)
            shutil.rmtree(out / "spark-warehouse", ignore_errors=True)
            result = in_child(config_path, out / "truth" / "customer_records.parquet", with_splink)
            result["cli_seconds"] = cli_seconds
        if not result["success"]:
            print(f"\n{persons:,} persons: run FAILED in {', '.join(result['failed_steps'])}")
            for step, (seconds, peak, _) in sorted(result["steps"].items(), key=lambda item: -item[1][0]):
                print(f"{step:<48}{seconds:>9.2f}{peak:>9.0f}")
            print(f"{'total until the failure':<48}{result['total_seconds']:>9.2f}{result['peak_mb']:>9.0f}")
            continue
        counts = result["counts"]
        print(
            f"\n{persons:,} persons: {counts['identity.source_lookup']:,} customer records, "
            f"{counts['marts.transactions']:,} transactions, {counts['marts.events']:,} events "
            f"({generated_in}{', memory limit ' + args.memory_limit if args.memory_limit else ''}); "
            f"engine {result['engine']}"
            + (
                f" ({args.master}{''.join(f', {k}={v}' for k, v in spark_conf.items())})"
                if args.engine == "spark"
                else ""
            )
            + f"; run {'succeeded' if result['success'] else 'FAILED'}"
        )
        print(f"{'step':<48}{'seconds':>9}{'peak MB':>9}{'cpu s':>9}")
        for step, (seconds, peak, cpu) in sorted(result["steps"].items(), key=lambda item: -item[1][0]):
            print(f"{step:<48}{seconds:>9.2f}{peak:>9.0f}{cpu:>9.2f}")
            if step == "raw_sources":
                for asset, load in sorted(result["raw_loads"].items(), key=lambda item: -item[1]):
                    print(f"  {asset + ' (loaded alongside others)':<46}{load:>9.2f}")
        identity_steps = [
            v
            for k, v in result["steps"].items()
            if k in ("identity__source_lookup", "identity__match_model", "identity__identity_graph", "customer_ids")
        ]
        identity = sum(seconds for seconds, _, _ in identity_steps)
        identity_peak = max((peak for _, peak, _ in identity_steps), default=0)
        print(
            f"{'total (materialize, all assets and checks)':<48}{result['total_seconds']:>9.2f}{result['peak_mb']:>9.0f}{result['cpu_seconds']:>9.2f}"
        )
        print(f"{'identity step (lookup + model + graph + ids)':<48}{identity:>9.2f}")
        if result["graph_numbers"]:
            print("identity graph: " + ", ".join(f"{key} {value:,}" for key, value in result["graph_numbers"].items()))
        if result["clustering_rounds"] is not None:
            print(f"clustering: {result['clustering_rounds']} star rounds")
        if result["cli_seconds"] is not None:
            print(f"{'dagster asset materialize --select * (command line)':<48}{result['cli_seconds']:>9.2f}")
        file_mb, in_use_mb = result["warehouse_mb"]
        if result["engine"] == "spark":
            print(f"warehouse directory {file_mb:,.0f} MB of Parquet")
        else:
            print(
                f"warehouse file {file_mb:,.0f} MB, {in_use_mb:,.0f} MB of it in use (the rest is free for the next run)"
            )
        print(f"{'':<24}{'pairP':>8}{'pairR':>8}{'pairF1':>8}{'B3F1':>8}{'largest':>8}{'seconds':>9}{'peak MB':>9}")
        print(quality_row("cdm identity", result["quality"], identity, identity_peak))
        print(
            quality_row(
                "exact-key baseline", result["baseline"], result["baseline_seconds"], result["baseline_peak_mb"]
            ),
            " (edges + components on the same lookup)",
        )
        splink = result["splink"]
        if splink is not None:
            stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in splink["stage_seconds"].items())
            print(
                quality_row("Splink 5 on DuckDB", splink["quality"], splink["seconds"], splink["peak_mb"]),
                f" ({stages}; {splink['links']:,} pairs at p >= {MATCH_PROBABILITY})",
            )
        print(
            f"other processes kept {result['others_cores']:.2f} cores busy on average during the run"
            + (" (a shared machine: compare only the ratios within this run)" if result["others_cores"] > 0.1 else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
