"""The landing sensor under the daemon of a real `dagster dev`, on the shipped SQLite
instance and on the production instance with PostgreSQL storage (`deploy/dagster.yaml`).

Everything is materialised once (headless, before the server starts, as
`make run` does); once the daemon has evaluated the sensor, a CRM file and a
webshop file land at once. Within a bounded time the `landing_files` sensor
must request exactly one run of both raw assets and everything downstream,
with their checks (tagged `cdm/changed=crm,webshop`), the run must succeed,
and the new customer must be in marts.customers, one customer for both records.
"""

from __future__ import annotations

import csv
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from cdm_assets_tests.dagster_server import FINISHED, PRODUCTION_YAML, dagster_dev
from cdm_assets_tests.postgres import postgres_environment

pytestmark = pytest.mark.slow

SENSOR = "landing_files"
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
NEW_WEBSHOP_ID = "W9999001"
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


def test_files_landing_in_two_sources_at_once_give_one_run_that_reaches_the_marts(server):
    # The sensor has a cursor once it has been evaluated; its first tick requests nothing for
    # folders whose files the headless materialisation already loaded.
    assert SENSOR in server.wait_for_sensor_ticks(timeout=120)
    server.wait_until_idle(timeout=300)

    document = yaml.safe_load(server.config_path.read_text())["sources"]
    dropped_at = time.time()
    land_row(server, document["crm"], "crm", crm_row(document["crm"]))
    land_row(server, document["webshop"], "webshop", webshop_row(document["webshop"]))

    run = wait_for_sensor_run(server, dropped_at, timeout=PICKUP_SECONDS)
    assert run["status"] == "SUCCESS", server.run_log_text(run["runId"])[-5000:]
    assert run["tags"]["cdm/changed"] == "crm,webshop"
    assert run["tags"]["cdm/trigger"] == "landing_files"
    selected = run_asset_selection(server, run["runId"])
    assert {
        "raw/crm",
        "raw/webshop",
        "identity/source_lookup",
        "identity/customer_id_map",
        "marts/customers",
    } <= selected
    assert "raw/webshop_orders" not in selected
    assert {"customer_id_is_unique", "one_customer_id_per_record"} <= run_check_names(server, run["runId"])

    runs = server.wait_until_idle(timeout=300)
    assert {r["runId"]: r["status"] for r in runs if r["status"] != "SUCCESS"} == {}
    later = [r for r in runs if r["creationTime"] >= dropped_at]
    assert [r["runId"] for r in later] == [run["runId"]], "two sources landing at once: one run, identity once"

    # Read the warehouse only now: no run is writing it.
    with duckdb.connect(str(server.duckdb_path), read_only=True) as con:
        ids = dict(
            con.execute(
                "SELECT source, customer_id FROM identity.customer_id_map WHERE source_record_id IN (?, ?)",
                [NEW_RECORD_ID, NEW_WEBSHOP_ID],
            ).fetchall()
        )
        row = con.execute(
            "SELECT first_name, last_name, email FROM marts.customers WHERE customer_id = ?", [ids["crm"]]
        ).fetchone()
    assert row == ("Zebedeus", "Quarterman", NEW_CUSTOMER["email"])
    assert ids["webshop"] == ids["crm"]  # the same person in both sources: one customer


def land_row(server, source: dict, name: str, row: dict[str, str]) -> None:
    """Write one row as a new file in the source's landing folder, with the header of its files."""
    delimiter = source.get("delimiter", ",")
    folder = server.workdir / "landing" / Path(source["path"]).parent.name
    with sorted(folder.glob("*.csv"))[0].open(newline="", encoding="utf-8") as file:
        header = next(csv.reader(file, delimiter=delimiter))
    assert set(row) <= set(header), (row, header)
    with (folder / f"{name}_late_arrivals.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=header, delimiter=delimiter)
        writer.writeheader()
        writer.writerow(row)


def webshop_row(source: dict) -> dict[str, str]:
    """NEW_CUSTOMER as a webshop account (full name, email, mobile)."""
    values = {
        "full_name": f"{NEW_CUSTOMER['first_name']} {NEW_CUSTOMER['last_name']}",
        "email": NEW_CUSTOMER["email"],
        "phone": NEW_CUSTOMER["phone"],
    }
    row = {source["record_id"]: NEW_WEBSHOP_ID}
    row.update({column: values[field] for field, column in source["fields"].items()})
    for column in [source.get("updated_at"), *_attribute_columns(source)]:
        if column and column not in row:
            row[column] = "2025-01-02T03:04:05"
    return row


def _attribute_columns(source: dict) -> list[str]:
    return [m["column"] if isinstance(m, dict) else m for m in (source.get("attributes") or {}).values()]


def run_check_names(server, run_id: str) -> set[str]:
    data = server.graphql(
        """query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { assetCheckSelection { name } } } }""",
        {"runId": run_id},
    )
    return {check["name"] for check in data["runOrError"]["assetCheckSelection"] or []}


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
    for column in [source.get("updated_at"), *_attribute_columns(source)]:
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
