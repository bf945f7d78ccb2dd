"""A killed run never blocks the next one.

`kill -9` of `dagster asset materialize` leaves its run STARTED with the
`duckdb` pool slot held, and may leave staging tables in the warehouse. A
plain rerun in the same DAGSTER_HOME must fail the dead run, free its slot,
drop its staging tables and complete, all by itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from cdm_assets.config import BUNDLED_CONFIG
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.warehouse import drop_abandoned_staging_tables

PROJECT = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_staging_tables_of_a_dead_process_are_dropped_and_our_own_stay(tmp_path):
    path = tmp_path / "w.duckdb"
    child = (
        "import duckdb; from cdm_assets.domain.warehouse import TableName; "
        f"con = duckdb.connect({str(path)!r}); con.execute('CREATE SCHEMA raw'); "
        'con.execute(f\'CREATE TABLE {TableName("raw", "crm").staging().sql} (x INT)\')'
    )
    subprocess.run([sys.executable, "-c", child], check=True, cwd=PROJECT)
    with duckdb.connect(str(path)) as con:
        ours = TableName("raw", "crm").staging()
        con.execute(f"CREATE TABLE {ours.sql} (x INT)")
        dropped = drop_abandoned_staging_tables(con)
        left = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    assert len(dropped) == 1 and dropped[0].startswith("raw._staging_crm_")
    assert left == [ours.name]


def _environment(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "cdm_assets.sample", "--persons", "3000", "--seed", "7", "--out", str(data)],
        check=True, cwd=PROJECT, capture_output=True,
    )  # fmt: skip
    config = tmp_path / "cdm.yaml"
    config.write_text(BUNDLED_CONFIG.read_text().replace("../../data/", f"{data}/"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    _create_storage(home)
    return {
        **os.environ,
        "CDM_CONFIG": str(config),
        "CDM_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }


def _create_storage(home: Path) -> None:
    """Create the instance's SQLite storage before two processes open it.

    The test polls the instance while the run starts; if both create a fresh
    storage at once, each stamps its schema version and the next open fails
    with "more than one head present".
    """
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)):
        pass


def _materialize(env: dict[str, str], **options) -> subprocess.Popen:
    command = [DAGSTER, "asset", "materialize", "-m", "cdm_assets", "--select", "*"]
    return subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **options)


def _slot_holders(home: str) -> set[str]:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(home) as instance:
        return set(instance.event_log_storage.get_concurrency_run_ids())


@pytest.mark.slow
@pytest.mark.parametrize("steps_done_before_kill", [0, 3])
def test_a_rerun_after_kill_9_completes_by_itself_within_two_minutes(tmp_path, steps_done_before_kill):
    env = _environment(tmp_path)
    home = env["DAGSTER_HOME"]
    victim = _materialize(env)
    try:
        deadline = time.monotonic() + 120
        # kill while a step holds the duckdb slot, after some steps finished
        while time.monotonic() < deadline and victim.poll() is None:
            if _slot_holders(home) and _finished_steps(home) >= steps_done_before_kill:
                break
            time.sleep(0.05)
        assert victim.poll() is None, "the first run ended before it could be killed"
    finally:
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    # (the kill may also fall between two steps: then the dead run holds no slot but is still STARTED)
    left_by_kill = _staging_tables(env["CDM_DUCKDB_PATH"])

    killed = time.monotonic()
    rerun = _materialize(env)
    try:
        output, _ = rerun.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        rerun.kill()
        pytest.fail("the rerun did not complete within two minutes of the kill")
    assert rerun.returncode == 0, output.decode()[-3000:]
    recovered = time.monotonic() - killed
    print(
        f"rerun completed {recovered:.1f} s after the kill ({steps_done_before_kill}+ steps done before it, "
        f"{left_by_kill} staging table(s) left by the kill)"
    )
    assert recovered < 120
    assert b"whose process is gone" in output

    from dagster import DagsterInstance, DagsterRunStatus

    with DagsterInstance.from_config(home) as instance:
        statuses = sorted(r.dagster_run.status.value for r in instance.get_run_records())
        assert statuses == [DagsterRunStatus.FAILURE.value, DagsterRunStatus.SUCCESS.value]
        assert not instance.event_log_storage.get_concurrency_run_ids()
    assert _staging_tables(env["CDM_DUCKDB_PATH"]) == 0
    with duckdb.connect(env["CDM_DUCKDB_PATH"], read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.customers").fetchone()[0] > 0


def _staging_tables(path: str) -> int:
    if not Path(path).exists():
        return 0
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE starts_with(table_name, '_staging_')"
        ).fetchone()[0]


def _finished_steps(home: str) -> int:
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(home) as instance:
        runs = [r.dagster_run.run_id for r in instance.get_run_records()]
        return sum(len(instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)) for run_id in runs)


def test_the_reaper_sensor_fails_a_dead_run_and_frees_its_pool_slot():
    import socket

    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, build_sensor_context, instance_for_test

    from cdm_assets.wiring.recovery import HOST_TAG, PID_TAG, dead_run_reaper

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid now belongs to no process
    with instance_for_test() as instance:
        assert isinstance(instance, DagsterInstance)
        tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(finished.pid)}
        run = instance.add_run(
            DagsterRun(job_name="__ASSET_JOB", run_id="dead1", status=DagsterRunStatus.STARTED, tags=tags)
        )
        alive = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        instance.add_run(
            DagsterRun(job_name="__ASSET_JOB", run_id="alive1", status=DagsterRunStatus.STARTED, tags=alive)
        )
        storage = instance.event_log_storage
        storage.set_concurrency_slots("duckdb", 1)
        assert storage.claim_concurrency_slot("duckdb", run.run_id, "raw_sources").is_claimed
        list(dead_run_reaper(build_sensor_context(instance=instance)))
        assert instance.get_run_by_id("dead1").status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id("alive1").status == DagsterRunStatus.STARTED
        assert not storage.get_concurrency_run_ids()
