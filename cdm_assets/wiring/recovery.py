"""Runs recover by themselves from a run whose process was killed.

A run that dies without a word (`kill -9`, a lost machine) stays STARTED and
keeps its slot in the `duckdb` pool, and every later run waits for that slot
forever. So each run, before its first step claims a slot, tags itself with
its host, process id and process start time, and looks at the runs that
hold or wait for slots: a run on this host whose process is gone is marked
failed and its slots are freed. (Staging tables a dead run left in the
warehouse are dropped by the next connection; see `resources.py`.)

Under `dagster dev` the run queue holds runs back while the pool is taken, so
the `dead_run_reaper` sensor does the same every 30 s; the daemon's run
monitoring (`.dagster/dagster.yaml`) frees the slots of runs that ended some
other way.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg
from dagster import DagsterRunStatus

HOST_TAG, PID_TAG, STARTED_TAG = "cdm/host", "cdm/pid", "cdm/process_started"
_UNFINISHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def _process_started(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux), "" where unknown:
    tells a live process from a new one that reuses a dead run's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _process_started(pid) in ("", started)


def release_dead_runs(instance: dg.DagsterInstance, current_run_id: str | None) -> list[str]:
    """Mark failed the unfinished runs of this host whose process is gone, and free
    the concurrency slots of those and of finished runs; returns the freed run ids."""
    storage = instance.event_log_storage
    holding = set(storage.get_concurrency_run_ids()) if storage.supports_global_concurrency_limits else set()
    candidates = instance.get_run_records(dg.RunsFilter(statuses=_UNFINISHED))
    host, freed = socket.gethostname(), []
    for record in candidates:
        run = record.dagster_run
        tags = run.tags
        if run.run_id == current_run_id or tags.get(HOST_TAG) != host or PID_TAG not in tags:
            continue
        if _process_alive(int(tags[PID_TAG]), tags.get(STARTED_TAG, "")):
            continue
        instance.report_run_failed(
            run,
            f"Marked failed by {f'run {current_run_id}' if current_run_id else 'dead_run_reaper'}: "
            f"its process {tags[PID_TAG]} on {host} is gone (killed?)",
        )
        holding.add(run.run_id)
    finished = (
        {
            r.dagster_run.run_id
            for r in instance.get_run_records(dg.RunsFilter(run_ids=list(holding)))
            if r.dagster_run.is_finished
        }
        if holding
        else set()
    )
    for run_id in sorted(finished):
        storage.free_concurrency_slots_for_run(run_id)
        freed.append(run_id)
    return freed


class _RecoveringExecutor(dg.Executor):
    """The in-process executor, after this run is tagged and dead runs are released."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        instance, run_id = plan_context.instance, plan_context.dagster_run.run_id
        pid = os.getpid()
        instance.add_run_tags(
            run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), STARTED_TAG: _process_started(pid)}
        )
        freed = release_dead_runs(instance, run_id)
        if freed:
            plan_context.log.warning(
                f"Freed the concurrency slots of {len(freed)} run(s) whose process is gone: {', '.join(freed)}"
            )
        yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="in_process", config_schema=dg.in_process_executor.config_schema)
def recovering_in_process_executor(init_context) -> dg.Executor:
    """Dagster's in-process executor that first frees what killed runs still hold."""
    return _RecoveringExecutor(dg.in_process_executor.executor_creation_fn(init_context))


def build_dead_run_reaper(name: str = "dead_run_reaper") -> dg.SensorDefinition:
    """Every 30 s under the daemon: fails runs on this host whose process is gone and frees
    their pool slots. With `dagster dev` the run queue holds runs back while the pool is
    taken, so a run killed by `kill -9` would block it before any run could release it."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Every 30 s under the daemon: fails runs on this host whose process is gone and frees their "
            "duckdb pool slots, so queued runs do not wait behind a killed one."
        ),
    )
    def dead_run_reaper(context: dg.SensorEvaluationContext):
        freed = release_dead_runs(context.instance, current_run_id=None)
        yield dg.SkipReason(
            f"freed the slots of {len(freed)} run(s) whose process is gone" if freed else "no dead runs"
        )

    return dead_run_reaper


dead_run_reaper = build_dead_run_reaper()
