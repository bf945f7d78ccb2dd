"""Landing sensors under the daemon of a real `dagster dev`, on the shipped SQLite instance
and on the production instance with PostgreSQL storage (`deploy/dagster.yaml`).

Everything is materialised once (headless, before the server starts, as
`make run` does); once the daemon has evaluated every sensor, a new CRM file
lands. Within a bounded time the `crm_landing_files` sensor must request a run
of raw/crm and everything downstream (tagged `cdm/source=crm`), the run must
succeed, and the new customer must be in marts.customers.
"""

from __future__ import annotations

import csv
import time
from datetime import date

import duckdb
import pytest
import yaml

from cdm_assets_tests.dagster_server import FINISHED, PRODUCTION_YAML, dagster_dev
from cdm_assets_tests.postgres import postgres_environment

pytestmark = pytest.mark.slow

SENSOR = "crm_landing_files"
PICKUP_SECONDS = 150  # sensor interval (30 s) + queueing + the run itself, with room for a busy machine
# The new customer in canonical fields; written with the columns the config maps them to.
NEW_CUSTOMER = {
    "first_name": "Zebedeus",
    "last_name": "Quarterman",
    "email": "zebedeus.quarterman@example.org",
    "phone": "+31 6 99887766",
    "birth_date": date(1977, 7, 7),
    "street": "Lindelaan 7",
    "postcode": "1234 AB",
    "city": "Utrecht",
    "country": "NL",
}
NEW_RECORD_ID = "C9999001"
# A customer, a transaction and an event source of the demo are enough here, and every
# source costs a run at start-up (each sensor's first tick requests one).
SOURCES = ("crm", "webshop", "webshop_orders", "clickstream")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """`dagster dev` on the shipped instance (SQLite under DAGSTER_HOME) and on the
    production instance of `deploy/dagster.yaml` (PostgreSQL)."""
    if request.param == "postgres":
        instance = {"instance_yaml": PRODUCTION_YAML, "env": postgres_environment()}
    else:
        instance = {}
    with dagster_dev(tmp_path_factory.mktemp(f"sensor_daemon_{request.param}"), sources=SOURCES, **instance) as server:
        yield server


def test_a_new_crm_file_is_picked_up_by_the_sensor_and_reaches_the_marts(server):
    # Every sensor has a cursor once it has been evaluated. (Their first ticks also request one
    # run per source, whatever was materialised before: the new file's run queues behind those.)
    assert SENSOR in server.wait_for_sensor_ticks(timeout=120)

    source = yaml.safe_load(server.config_path.read_text())["sources"]["crm"]
    delimiter = source.get("delimiter", ",")
    crm_folder = server.workdir / "landing" / "crm"
    with sorted(crm_folder.glob("*.csv"))[0].open(newline="", encoding="utf-8") as file:
        header = next(csv.reader(file, delimiter=delimiter))
    row = crm_row(source)
    assert set(row) <= set(header), (row, header)
    dropped_at = time.time()
    with (crm_folder / "crm_late_arrivals.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=header, delimiter=delimiter)
        writer.writeheader()
        writer.writerow(row)

    run = wait_for_sensor_run(server, dropped_at, timeout=PICKUP_SECONDS)
    assert run["status"] == "SUCCESS", server.run_log_text(run["runId"])[-5000:]
    assert run["tags"]["cdm/source"] == "crm"
    assert run["tags"]["cdm/trigger"] == "landing_files"
    selected = run_asset_selection(server, run["runId"])
    assert {"raw/crm", "identity/source_lookup", "identity/customer_id_map", "marts/customers"} <= selected
    assert "raw/webshop" not in selected

    runs = server.wait_until_idle(timeout=300)
    assert {r["runId"]: r["status"] for r in runs if r["status"] != "SUCCESS"} == {}
    later = [r for r in runs if r["creationTime"] >= dropped_at]
    assert {r["tags"].get("dagster/sensor_name") for r in later} == {SENSOR}, "only the CRM sensor saw a change"

    # Read the warehouse only now: no run is writing it.
    with duckdb.connect(str(server.duckdb_path), read_only=True) as con:
        (customer_id,) = con.execute(
            "SELECT customer_id FROM identity.customer_id_map WHERE source = 'crm' AND source_record_id = ?",
            [NEW_RECORD_ID],
        ).fetchone()
        row = con.execute(
            "SELECT first_name, last_name, email FROM marts.customers WHERE customer_id = ?", [customer_id]
        ).fetchone()
    assert row == ("Zebedeus", "Quarterman", NEW_CUSTOMER["email"])


def test_run_history_survives_a_restart_of_the_server(server):
    storage = server.graphql("{ instance { info } }")["instance"]["info"]
    if "DAGSTER_PG_DB" in server.extra_env:
        assert "PostgresRunStorage" in storage and "PostgresEventLogStorage" in storage
    before = {run["runId"]: run["status"] for run in server.wait_until_idle(timeout=300)}
    assert before
    server.stop()
    server.start()
    after = {run["runId"]: run["status"] for run in server.runs(limit=200)}
    assert before.items() <= after.items()


def crm_row(source: dict) -> dict[str, str]:
    """NEW_CUSTOMER as a row of the CRM source's files, by the source's config."""
    row = {source["record_id"]: NEW_RECORD_ID}
    for field, column in source["fields"].items():
        value = NEW_CUSTOMER[field]
        if isinstance(column, dict):
            value, column = value.strftime(column.get("format", "%Y-%m-%d")), column["column"]
        row[column] = str(value)
    for column in [source.get("updated_at"), *(source.get("attributes") or {}).values()]:
        if column and column not in row:
            row[column] = "2025-01-02T03:04:05"
    return row


def wait_for_sensor_run(server, after: float, timeout: float) -> dict:
    """The first run the sensor requested after `after`, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in server.runs(tags={"dagster/sensor_name": SENSOR}) if r["creationTime"] >= after]
        if runs and runs[-1]["status"] in FINISHED:
            return runs[-1]
        if time.monotonic() > deadline:
            ticks = server.sensor_ticks().get(SENSOR, [])[:3]
            raise AssertionError(
                f"no finished run of {SENSOR} within {timeout:.0f}s of the new file "
                f"(runs: {[(r['runId'], r['status']) for r in runs]}, latest ticks: {ticks})"
            )
        time.sleep(2)


def run_asset_selection(server, run_id: str) -> set[str]:
    data = server.graphql(
        """query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { assetSelection { path } } } }""",
        {"runId": run_id},
    )
    return {"/".join(key["path"]) for key in data["runOrError"]["assetSelection"]}
