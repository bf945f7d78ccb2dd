"""The landing sensor: files landing in one or several sources within an interval request
ONE run of their raw assets and everything below them, so identity is rebuilt once."""

from __future__ import annotations

import os

import dagster as dg

from cdm_assets.definitions import build_definitions
from cdm_assets_tests.conftest import write_text

CRM = {"entity": "customer", "path": "landing/crm/*.csv", "record_id": "id", "fields": {"email": "email"}}
SHOP = {"entity": "customer", "path": "landing/shop/*.csv", "record_id": "id", "fields": {"email": "email"}}
SENSOR = "landing_files"


def evaluate(defs: dg.Definitions, cursor: str | None, materialised: list[str] = ()):
    """One tick of the sensor: (run requests, skip message, cursor)."""
    sensor = defs.resolve_sensor_def(SENSOR)
    with dg.instance_for_test() as instance:
        for key in materialised:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey.from_user_string(key)))
        context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
        result = sensor.evaluate_tick(context)
    return result.run_requests, result.skip_message, result.cursor


def selected(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_selection}


def test_one_running_sensor_watches_every_landing_folder(write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    sensor = defs.resolve_sensor_def(SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert [s.name for s in defs.sensors if s.name != "dead_run_reaper"] == [SENSOR, "upstream_updates"]
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert {dg.AssetKey(["raw", "crm"]), dg.AssetKey(["raw", "shop"]), dg.AssetKey(["marts", "customers"])} <= targeted


def test_new_changed_and_deleted_files_each_request_one_run_of_that_source_and_below(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    first = write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    requests, _, cursor = evaluate(defs, None)
    assert len(requests) == 1 and requests[0].tags["cdm/changed"] == "crm"
    assert {"raw/crm", "identity/source_lookup", "marts/customers"} <= selected(requests[0])
    assert "raw/shop" not in selected(requests[0])

    requests, skip, cursor = evaluate(defs, cursor)
    assert requests == [] and "no change" in skip  # unchanged landing folders

    write_text(tmp_path / "landing/crm/b.csv", "id,email\n2,b@mail.nl\n")  # two changes between ticks:
    first.write_text("id,email\n1,a@mail.nl\n3,c@mail.nl\n")  # one run
    requests, _, cursor = evaluate(defs, cursor)
    assert len(requests) == 1

    os.remove(first)
    requests, _, cursor = evaluate(defs, cursor)
    assert len(requests) == 1


def test_several_sources_landing_within_one_interval_get_one_run_that_resolves_identity_once(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    _, _, cursor = evaluate(defs, None)
    write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    write_text(tmp_path / "landing/shop/a.csv", "id,email\n9,a@mail.nl\n")
    requests, _, _ = evaluate(defs, cursor)
    assert len(requests) == 1
    assert requests[0].tags["cdm/changed"] == "crm,shop"
    assert {"raw/crm", "raw/shop", "identity/identity_graph", "marts/customers"} <= selected(requests[0])


def test_a_file_touched_with_the_same_size_still_counts_as_changed(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    path = write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    _, _, cursor = evaluate(defs, None)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    requests, _, _ = evaluate(defs, cursor)
    assert len(requests) == 1


def test_the_daily_full_refresh_is_declared_but_off(write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    schedule = defs.resolve_schedule_def("daily_full_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_files_already_loaded_before_the_first_tick_request_no_run(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    requests, skip, cursor = evaluate(defs, None, materialised=["raw/crm"])
    assert requests == [] and "no change" in skip
    write_text(tmp_path / "landing/crm/b.csv", "id,email\n2,b@mail.nl\n")  # a change after that
    requests, _, _ = evaluate(defs, cursor, materialised=["raw/crm"])
    assert len(requests) == 1


def test_a_changed_overrides_file_rebuilds_the_identity_graph_and_below_not_the_raw_sources(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM}, identity={"overrides": "steward/overrides.csv"}))
    requests, skip, cursor = evaluate(defs, None)
    assert requests == [] and "no change" in skip  # no files and no overrides yet
    write_text(tmp_path / "steward/overrides.csv", "source_a,record_id_a,source_b,record_id_b,action\n")
    requests, _, cursor = evaluate(defs, cursor)
    assert len(requests) == 1 and requests[0].tags["cdm/changed"] == "overrides:customer"
    assert {"identity/identity_graph", "identity/customer_id_map", "marts/customers"} <= selected(requests[0])
    assert not {"raw/crm", "identity/source_lookup"} & selected(requests[0])
    requests, _, _ = evaluate(defs, cursor)
    assert requests == []
