"""Landing folders as observable assets, and the identity layer and marts under
declarative automation.

- `landing/<source>` is an observable source asset upstream of `raw/<source>`; its data
  version is the folder's fingerprint, recorded by the landing sensor when it changes.
- Below the raw assets, every asset follows an update of its parents made outside the
  landing sensor's runs (a backfill, "Materialize" in the UI) in one automation run, and
  asks for nothing after a run that already rebuilt it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from cdm_assets.definitions import build_definitions
from cdm_assets.domain.landing_watch import landing_fingerprint
from cdm_assets_tests.conftest import write_text

CRM = {
    "entity": "customer",
    "path": "landing/crm/*.csv",
    "record_id": "id",
    "fields": {"first_name": "first_name", "last_name": "last_name", "email": "email"},
}
SHOP = {**CRM, "path": "landing/shop/*.csv"}
SENSOR = "landing_files"
DATA_VERSION = "dagster/data_version"


def keys(*names: str) -> set[dg.AssetKey]:
    return {dg.AssetKey.from_user_string(name) for name in names}


def land(folder: Path, name: str, rows: str) -> Path:
    return write_text(folder / name, "id,first_name,last_name,email\n" + rows)


def materialise(defs: dg.Definitions, instance: dg.DagsterInstance, selection=None) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])], resources=defs.resources, instance=instance, selection=selection
    )
    assert result.success
    return result


def test_each_landing_folder_is_an_observable_asset_upstream_of_its_raw_asset(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    graph = defs.resolve_asset_graph()
    for source in ("crm", "shop"):
        landing = graph.get(dg.AssetKey(["landing", source]))
        assert landing.is_observable and not landing.is_materializable
        assert landing.group_name == "landing"
        assert graph.get(dg.AssetKey(["raw", source])).parent_keys == {landing.key}

    land(tmp_path / "landing/crm", "a.csv", "1,Jan,Smit,jan@mail.nl\n")
    observe = dg.Definitions.merge(
        defs, dg.Definitions(jobs=[dg.define_asset_job("observe", selection=["landing/crm", "landing/shop"])])
    )
    with dg.instance_for_test() as instance:
        # what "Observe sources" in the UI runs
        assert observe.resolve_job_def("observe").execute_in_process(instance=instance).success
        observed = instance.fetch_observations(dg.AssetKey(["landing", "crm"]), limit=1).records[0]
        fingerprint = landing_fingerprint(tmp_path / "landing/crm/*.csv")
        assert observed.asset_observation.tags[DATA_VERSION] == fingerprint.digest
        assert observed.asset_observation.metadata["files"].value == 1


def test_the_landing_sensor_records_the_new_data_version_of_each_folder_it_sees_change(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    sensor = defs.resolve_sensor_def(SENSOR)

    def tick(cursor):
        with dg.instance_for_test() as instance:
            return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs))

    land(tmp_path / "landing/crm", "a.csv", "1,Jan,Smit,jan@mail.nl\n")
    first = tick(None)
    observed = {event.asset_key.to_user_string(): event.tags[DATA_VERSION] for event in first.asset_events}
    # the first look records every folder, the empty one too (its version: no files)
    assert observed == {
        "landing/crm": landing_fingerprint(tmp_path / "landing/crm/*.csv").digest,
        "landing/shop": landing_fingerprint(tmp_path / "landing/shop/*.csv").digest,
    }
    assert tick(first.cursor).asset_events == []  # nothing moved: nothing recorded
    land(tmp_path / "landing/shop", "b.csv", "2,Piet,Jansen,piet@mail.nl\n")
    later = tick(first.cursor)
    assert [event.asset_key.to_user_string() for event in later.asset_events] == ["landing/shop"]
    assert len(later.run_requests) == 1


def test_a_raw_asset_rebuilt_alone_brings_identity_and_the_marts_up_to_date_in_one_request(tmp_path, write_config):
    defs = build_definitions(write_config({"crm": CRM, "shop": SHOP}))
    automated = {key for key in defs.resolve_asset_graph().get_all_asset_keys()
                 if defs.resolve_asset_graph().get(key).automation_condition is not None}  # fmt: skip
    assert keys("identity/source_lookup", "identity/customer_id_map", "marts/customers", "raw/quarantine") <= automated
    assert not automated & keys("raw/crm", "raw/shop", "landing/crm")  # the landing sensor's, and observed

    land(tmp_path / "landing/crm", "a.csv", "1,Jan,Smit,jan@mail.nl\n")
    land(tmp_path / "landing/shop", "a.csv", "7,Jan,Smit,jan@mail.nl\n")
    with dg.instance_for_test() as instance:
        materialise(defs, instance)
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert evaluation.total_requested == 0  # everything was just built in one run

        land(tmp_path / "landing/crm", "b.csv", "2,Anna,de Vries,anna@mail.nl\n")
        materialise(defs, instance, selection=["raw/crm"])  # e.g. "Materialize" on raw/crm in the UI
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
        requested = {key for key in automated if evaluation.get_num_requested(key)}
        assert requested == automated  # below raw/crm is everything of this config
        # the automation run rebuilds them; then nothing is left to request
        materialise(defs, instance, selection=list(requested))
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
        assert evaluation.total_requested == 0


def test_an_automation_sensor_of_its_own_runs_by_default(write_config):
    defs = build_definitions(write_config({"crm": CRM}))
    sensor = defs.resolve_sensor_def("upstream_updates")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert "default_automation_condition_sensor" not in {s.name for s in defs.get_repository_def().sensor_defs}
