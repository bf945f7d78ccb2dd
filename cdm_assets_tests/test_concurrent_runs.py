"""Overlapping runs against one DuckDB file, served by a real `dagster dev`.

DuckDB allows one writer per file. Every asset and check is in the `duckdb`
pool and the shipped `.dagster/dagster.yaml` limits pools to one step at a
time, so runs submitted together must queue instead of colliding: all of them
succeed, no log mentions a DuckDB lock, and no two steps of any runs ever
execute at the same time.

With pools configured, Dagster's run queue also holds a run back while the
pool is taken, so in practice the run workers take turns; the step check
below holds whichever of the two mechanisms does the serialising.

The landing sensor's first tick finds every file loaded by the headless
materialisation and requests nothing; the runs launched here overlap each other.
"""

from __future__ import annotations

import pytest

from cdm_assets.config import load_config
from cdm_assets.wiring.checks import schema_change_checks
from cdm_assets.wiring.keys import DEFAULT
from cdm_assets_tests.dagster_server import LOCK_ERRORS, dagster_dev, expected_asset_keys

pytestmark = pytest.mark.slow

# Customers, transactions and events.
SOURCES = ("crm", "webshop", "loyalty", "webshop_orders", "clickstream")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with dagster_dev(tmp_path_factory.mktemp("concurrent_runs"), sources=SOURCES) as server:
        yield server


def test_overlapping_runs_all_succeed_and_never_write_duckdb_at_the_same_time(server):
    # every asset that is built (the landing folders are observed, not built)
    everything = {key for key in expected_asset_keys(server.config_path) if not key.startswith("landing/")}
    downstream_of_raw = {key for key in everything if not key.startswith("raw/")}
    selections = {
        "everything": everything,
        "crm_and_downstream": {"raw/crm"} | downstream_of_raw,
        "transactions": {"raw/webshop_orders", "marts/transactions", "marts/customer_metrics"},
    }
    launched = {server.launch_assets(keys, tags={"cdm/test": name}): name for name, keys in selections.items()}

    statuses = server.wait_for_runs(launched, timeout=420)
    runs = server.wait_until_idle(timeout=300)  # the sensors' start-up runs as well

    assert {launched[run_id]: status for run_id, status in statuses.items()} == {name: "SUCCESS" for name in selections}
    mine = [run for run in runs if run["runId"] in launched]
    assert max(run["creationTime"] for run in mine) < min(run["endTime"] for run in mine), (
        "the runs were meant to be submitted while the others were still queued or running"
    )
    failed = {
        run["runId"]: (run["tags"].get("dagster/sensor_name"), run["status"])
        for run in runs
        if run["status"] != "SUCCESS"
    }
    assert failed == {}, "every run, the sensors' start-up runs included, should succeed"

    for run in runs:
        log = server.run_log_text(run["runId"])
        assert not any(error in log for error in LOCK_ERRORS), (
            f"DuckDB lock error in run {run['runId']}:\n{log[-3000:]}"
        )
    instance_logs = server.instance_log_text()
    assert not any(error in instance_logs for error in LOCK_ERRORS), "DuckDB lock error in the server or compute logs"

    # The column-schema-change checks compare metadata in Dagster's event log and never open the
    # warehouse, so they are outside the pool and may run beside a step that does.
    outside_pool = {c.node_def.name for c in schema_change_checks(load_config(server.config_path), DEFAULT)}
    steps = sorted(
        (start, end, step, run["runId"])
        for run in runs
        for start, end, step in server.step_intervals(run["runId"])
        if step not in outside_pool
    )
    assert {run_id for *_, run_id in steps} == {run["runId"] for run in runs}
    overlapping, latest = [], None  # latest: the step that ends last among those started so far
    for step in steps:
        if latest is not None and step[0] < latest[1]:
            overlapping.append((latest, step))
        if latest is None or step[1] > latest[1]:
            latest = step
    assert overlapping == [], "the duckdb pool (limit 1) should run one step at a time across all runs"
