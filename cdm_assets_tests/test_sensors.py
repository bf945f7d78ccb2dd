"""Landing sensors: a change in a source's files requests one run of that source and everything below it."""

from __future__ import annotations

import os

import dagster as dg

from cdm_assets.definitions import build_definitions
from cdm_assets_tests.conftest import write_text

CRM = {"entity": "customer", "path": "landing/crm/*.csv", "record_id": "id", "fields": {"email": "email"}}
SHOP = {"entity": "customer", "path": "landing/shop/*.csv", "record_id": "id", "fields": {"email": "email"}}


def evaluate(sensor: dg.SensorDefinition, defs: dg.Definitions, cursor: str | None, materialised: list[str] = ()):
    with dg.instance_for_test() as instance:
        for key in materialised:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey.from_user_string(key)))
        context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
        result = sensor.evaluate_tick(context)
    return result.run_requests, result.skip_message, result.cursor


def sensor_for(defs: dg.Definitions, name: str) -> dg.SensorDefinition:
    return next(s for s in defs.sensors if s.name == f"{name}_landing_files")


def test_every_source_has_a_running_sensor_targeting_it_and_its_downstream(write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    sensor = sensor_for(defs, "crm")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert dg.AssetKey(["raw", "crm"]) in targeted
    assert dg.AssetKey(["marts", "customers"]) in targeted
    assert dg.AssetKey(["raw", "shop"]) not in targeted


def test_new_changed_and_deleted_files_each_request_one_run(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    sensor = sensor_for(defs, "crm")
    first = write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    requests, _, cursor = evaluate(sensor, defs, None)
    assert len(requests) == 1 and requests[0].tags["cdm/source"] == "crm"

    requests, skip, _same_cursor = evaluate(sensor, defs, cursor)
    assert requests == [] and "no change" in skip  # unchanged landing folder

    write_text(tmp_path / "landing/crm/b.csv", "id,email\n2,b@mail.nl\n")  # two changes between ticks:
    first.write_text("id,email\n1,a@mail.nl\n3,c@mail.nl\n")  # one run
    requests, _, cursor = evaluate(sensor, defs, cursor)
    assert len(requests) == 1

    os.remove(first)
    requests, _, cursor = evaluate(sensor, defs, cursor)
    assert len(requests) == 1
    assert len(cursor) < 100  # small, whatever the number of files


def test_a_file_touched_with_the_same_size_still_counts_as_changed(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    sensor = sensor_for(defs, "crm")
    path = write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    _, _, cursor = evaluate(sensor, defs, None)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    requests, _, _ = evaluate(sensor, defs, cursor)
    assert len(requests) == 1


def test_the_daily_full_refresh_is_declared_but_off(write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    schedule = defs.resolve_schedule_def("daily_full_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_files_already_loaded_before_the_first_tick_request_no_run(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    sensor = sensor_for(defs, "crm")
    write_text(tmp_path / "landing/crm/a.csv", "id,email\n1,a@mail.nl\n")
    requests, skip, cursor = evaluate(sensor, defs, None, materialised=["raw/crm"])
    assert requests == [] and "were loaded by the latest materialisation" in skip
    write_text(tmp_path / "landing/crm/b.csv", "id,email\n2,b@mail.nl\n")  # a change after that
    requests, _, _ = evaluate(sensor, defs, cursor, materialised=["raw/crm"])
    assert len(requests) == 1


def test_a_changed_overrides_file_rebuilds_the_identity_graph_and_below_not_the_raw_sources(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM}, identity={"overrides": "steward/overrides.csv"}))
    sensor = next(s for s in defs.sensors if s.name == "customer_overrides_file")
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert dg.AssetKey(["identity", "identity_graph"]) in targeted
    assert dg.AssetKey(["marts", "customers"]) in targeted
    assert dg.AssetKey(["raw", "crm"]) not in targeted
    assert dg.AssetKey(["identity", "source_lookup"]) not in targeted

    requests, skip, cursor = evaluate(sensor, defs, None)
    assert requests == [] and "no files" in skip  # no overrides yet
    write_text(tmp_path / "steward/overrides.csv", "source_a,record_id_a,source_b,record_id_b,action\n")
    requests, _, cursor = evaluate(sensor, defs, cursor)
    assert len(requests) == 1 and requests[0].tags["cdm/trigger"] == "overrides_file"
    requests, _, _ = evaluate(sensor, defs, cursor)
    assert requests == []


def test_without_an_overrides_file_configured_there_is_no_overrides_sensor(write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    assert [s.name for s in defs.sensors if "overrides" in s.name] == []
