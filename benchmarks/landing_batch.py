"""A batch landing in one source, through Dagster: the landing sensor's run against a full run.

    python benchmarks/landing_batch.py --persons 100000 1000000

For each size it generates sample data (fixed seed) and, in a fresh child
process with one Dagster instance, materialises every asset and check (the
first run). Then a batch lands in the CRM's landing folder: a new file with
`--added` (a share of the CRM's records) copies of CRM records under new ids,
and one existing file rewritten with `--changed` of its records' emails
emptied and `--removed` of its records left out (with `--changed 0 --removed 0`
the new file alone lands and the others stay untouched). Timed next:

- before the batch lands, the landing sensor's selection with nothing new: the
  fixed cost of its steps (Dagster's step and event handling, one DuckDB
  connection per step, each step's look at its inputs), which no batch can go
  below;

- the landing sensor's run: `raw/crm` and everything below it, with checks
  (the selection `raw/crm*`), which follows the changes where it can;
- a full run of every asset and check on the same files, tagged
  `cdm/full_rebuild: true`.

Printed: per step the seconds of both runs and the ratio of the totals.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.identity_quality import SEED, sample_config  # noqa: E402
from benchmarks.incremental_identity import batch_arguments  # noqa: E402
from benchmarks.run import step_times  # noqa: E402


def land_batch(landing: Path, added: float, changed: float, removed: float) -> dict[str, int]:
    """Write the batch into the CRM's landing folder; returns how many records it adds, changes, removes."""
    import pandas as pd

    files = sorted(landing.glob("*.csv"))
    # rows pandas cannot read (the generator writes a few malformed lines on purpose) are left out
    frames = {
        path: pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip", encoding_errors="replace")
        for path in files
    }
    every = pd.concat(frames.values(), ignore_index=True)
    copies = every.sample(n=max(1, int(len(every) * added)), random_state=SEED).copy()
    copies["crm_id"] = "batch_" + copies["crm_id"]
    copies.to_csv(landing / "zz_batch.csv", index=False)
    if not changed and not removed:  # a new file alone: the files landed before stay as they are
        return {"added": len(copies), "changed": 0, "removed": 0}
    first, frame = next(iter(frames.items()))
    gone = frame.sample(n=max(1, int(len(every) * removed)), random_state=SEED + 1).index
    kept = frame.drop(index=gone)
    emptied = kept.sample(n=max(1, int(len(every) * changed)), random_state=SEED + 2).index
    kept.loc[emptied, "email"] = ""
    kept.to_csv(first, index=False)
    return {"added": len(copies), "changed": len(emptied), "removed": len(gone)}


def timed_run(defs, instance, selection, tags: dict[str, str]) -> dict:
    import dagster as dg

    started = time.perf_counter()
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        instance=instance,
        selection=selection,
        tags=tags,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    total = time.perf_counter() - started
    events = instance.all_logs(result.run_id)
    metadata = {}
    for event in events:
        if event.is_dagster_event and event.dagster_event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.dagster_event.event_specific_data.materialization
            metadata[materialization.asset_key.to_user_string()] = {
                key: value.value for key, value in materialization.metadata.items()
            }
    seconds = {key: s["end"] - s["start"] for key, s in step_times(events).items() if "start" in s and "end" in s}
    return {"success": result.success, "total": total, "steps": seconds, "metadata": metadata}


def measure(config_path: Path, added: float, changed: float, removed: float, queue) -> None:
    import dagster as dg

    from cdm_assets.config import load_config
    from cdm_assets.definitions import build_definitions
    from cdm_assets.wiring.automation import FULL_REBUILD_TAG

    config = load_config(config_path)
    defs = build_definitions(config)
    with dg.DagsterInstance.ephemeral() as instance:
        first = timed_run(defs, instance, None, {})
        idle = timed_run(defs, instance, "raw/crm*", {})
        batch = land_batch(config_path.parent / "landing" / "crm", added, changed, removed)
        sensor = timed_run(defs, instance, "raw/crm*", {})
        full = timed_run(defs, instance, None, {FULL_REBUILD_TAG: "true"})
    queue.put({"first": first, "idle": idle, "batch": batch, "sensor": sensor, "full": full})


def main() -> None:
    args = batch_arguments(__doc__).parse_args()
    from cdm_assets.sample import generate

    for persons in args.persons:
        with tempfile.TemporaryDirectory(prefix="cdm-batch-") as tmp:
            out = Path(tmp)
            generate(persons=persons, seed=SEED, out=out)
            config_path = sample_config(out)
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            process = context.Process(target=measure, args=(config_path, args.added, args.changed, args.removed, queue))
            process.start()
            result = queue.get(timeout=3600)
            process.join()
        batch = result["batch"]
        print(
            f"\n## {persons:,} persons: a CRM batch of {batch['added']:,} added, {batch['changed']:,} changed, "
            f"{batch['removed']:,} removed records"
        )
        runs = {name: result[name] for name in ("first", "idle", "sensor", "full")}
        if not all(run["success"] for run in runs.values()):
            print("a run FAILED: " + ", ".join(name for name, run in runs.items() if not run["success"]))
        lookup = runs["sensor"]["metadata"].get("identity/source_lookup", {})
        graph = runs["sensor"]["metadata"].get("identity/identity_graph", {})
        raw = runs["sensor"]["metadata"].get("raw/crm", {})
        marts = [m for m in ("marts/customers", "marts/transactions", "marts/events", "marts/customer_metrics")
                 if runs["sensor"]["metadata"].get(m, {}).get("followed_changes")]  # fmt: skip
        print(
            f"sensor's run: raw/crm read {raw.get('files_read', '?')} of {raw.get('files', '?')} files; "
            f"the lookup standardised {lookup.get('records_standardised', '?'):,} records; "
            f"the graph followed the changes: {graph.get('followed_changes')}; marts that followed: "
            f"{', '.join(marts) or 'none'}\n"
        )
        print("| step | full run (s) | sensor's run (s) |")
        print("|---|---:|---:|")
        for step, seconds in sorted(runs["full"]["steps"].items(), key=lambda item: -item[1]):
            sensor_seconds = runs["sensor"]["steps"].get(step)
            shown = f"{sensor_seconds:.2f}" if sensor_seconds is not None else "not run"
            print(f"| {step} | {seconds:.2f} | {shown} |")
        full_total, sensor_total = runs["full"]["total"], runs["sensor"]["total"]
        print(f"| **total** | {full_total:.2f} | {sensor_total:.2f} |")
        idle_total = runs["idle"]["total"]
        print(f"\nsensor's run / full run: {sensor_total / full_total:.2f} (first run: {runs['first']['total']:.2f} s)")
        print(
            f"nothing landed: the sensor's selection took {idle_total:.2f} s in {len(runs['idle']['steps'])} steps "
            f"({idle_total / full_total:.2f} of the full run's {len(runs['full']['steps'])} steps)"
        )


if __name__ == "__main__":
    main()
