"""Checks a data team adds without code (`checks.custom`), freshness of the marts, and
warnings when a raw source's columns change."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb
import pytest

from cdm_assets.config import ConfigError
from cdm_assets.definitions import build_definitions
from cdm_assets_tests.conftest import materialization_metadata, materialize_all, write_text
from cdm_assets_tests.test_pipeline import SOURCES, landing  # noqa: F401  (the fixture)

GOLD_HAS_EMAIL = {
    "name": "gold_customers_have_an_email",
    "asset": "marts/customers",
    "sql": "SELECT customer_id FROM marts.customers WHERE tier = 'gold' AND email IS NULL",
}
NO_PIETS = {
    "name": "no_piet",
    "asset": "marts/customers",
    "blocking": True,
    "sql": "SELECT customer_id, first_name FROM marts.customers WHERE first_name = 'Piet'",
}


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def test_a_custom_check_passes_when_its_sql_returns_no_row(landing, write_config):  # noqa: F811
    defs = build_definitions(write_config(SOURCES, checks={"custom": [GOLD_HAS_EMAIL]}))
    result = materialize_all(defs)
    check = evaluations(result)["marts/customers:gold_customers_have_an_email"]
    assert result.success and check.passed
    assert check.metadata["failing_rows"].value == 0 and check.metadata["total_rows"].value == 4


def test_a_blocking_custom_check_that_finds_rows_fails_and_stops_what_is_downstream(landing, write_config):  # noqa: F811
    defs = build_definitions(write_config(SOURCES, checks={"custom": [NO_PIETS]}))
    result = materialize_all(defs)
    check = evaluations(result)["marts/customers:no_piet"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["failing_rows"].value == 1
    assert check.metadata["failing_sample"].value == [
        {"customer_id": check.metadata["failing_sample"].value[0]["customer_id"], "first_name": "P."}
    ]
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "marts/customers" in materialised and "marts/customer_metrics" not in materialised


def test_a_custom_check_on_an_asset_the_config_does_not_build_is_a_config_error(landing, write_config):  # noqa: F811
    check = {**GOLD_HAS_EMAIL, "asset": "marts/accounts"}
    with pytest.raises(ConfigError) as raised:
        build_definitions(write_config(SOURCES, checks={"custom": [check]}))
    assert "checks.custom.0.asset: no asset marts/accounts in this config" in str(raised.value)


def test_custom_checks_are_validated_like_the_rest_of_the_config(landing, write_config):  # noqa: F811
    with pytest.raises(ConfigError) as raised:
        write_config(SOURCES, checks={"custom": [{**GOLD_HAS_EMAIL, "asset": "customers"}]})
    assert "checks.custom.0.asset: bad asset key 'customers'" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        write_config(SOURCES, checks={"custom": [GOLD_HAS_EMAIL, GOLD_HAS_EMAIL]})
    assert "checks.custom.1.name: a second check 'gold_customers_have_an_email' on marts/customers" in str(raised.value)


def test_a_custom_check_with_broken_sql_fails_naming_its_key(landing, write_config):  # noqa: F811
    broken = {**GOLD_HAS_EMAIL, "sql": "SELECT nope FROM marts.customers"}
    defs = build_definitions(write_config(SOURCES, checks={"custom": [broken]}))
    result = materialize_all(defs)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert any(
        "checks.custom.0.sql (gold_customers_have_an_email)" in str(e.event_specific_data.error) for e in failures
    )


def test_the_marts_carry_the_configured_freshness_and_nothing_else_does(write_config, tmp_path):
    defs = build_definitions(
        write_config(SOURCES, checks={"freshness": {"warn_after_hours": 12, "fail_after_hours": 30}})
    )
    graph = defs.get_repository_def().asset_graph
    policy = graph.get(dg.AssetKey(["marts", "customers"])).freshness_policy
    assert (policy.fail_window.to_timedelta(), policy.warn_window.to_timedelta()) == (
        timedelta(hours=30),
        timedelta(hours=12),
    )
    assert graph.get(dg.AssetKey(["identity", "identity_graph"])).freshness_policy is None
    with pytest.raises(ConfigError, match=r"checks.freshness.warn_after_hours: must be less than fail_after_hours"):
        write_config(SOURCES, checks={"freshness": {"warn_after_hours": 40, "fail_after_hours": 30}})


def test_a_column_added_to_a_raw_source_is_flagged_by_its_schema_change_check(landing, write_config):  # noqa: F811
    defs = build_definitions(write_config(SOURCES))
    assert materialize_all(defs, selection=["raw/shop"]).success
    write_text(
        landing / "landing/shop/shop.csv", "account,name,mail,tier,loyalty\nW1,Jan Jansen,jan@mail.nl,gold,yes\n"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):  # the check compares a load's columns with the load before
            result = dg.materialize(
                [*defs.assets, *defs.asset_checks],
                resources=defs.resources,
                instance=instance,
                selection=["raw/shop"],
                raise_on_error=False,
            )
            write_text(landing / "landing/shop/shop.csv", "account,name,mail,tier\nW1,Jan Jansen,jan@mail.nl,gold\n")
    schema_checks = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["raw", "shop"]) and "schema" in e.check_name
    ]
    assert len(schema_checks) == 1 and not schema_checks[0].passed  # the second load dropped the column again
    assert schema_checks[0].severity == dg.AssetCheckSeverity.WARN
    with duckdb.connect(str(landing / "warehouse.duckdb"), read_only=True) as con:
        assert [c[0] for c in con.execute("DESCRIBE raw.shop").fetchall()][:4] == ["account", "name", "mail", "tier"]


def declared_schemas(defs) -> dict[dg.AssetKey, dg.TableSchema]:
    graph = defs.get_repository_def().asset_graph
    return {
        key: graph.get(key).metadata["dagster/column_schema"]
        for key in graph.get_all_asset_keys()
        if "dagster/column_schema" in graph.get(key).metadata
    }


def assert_schemas_match_the_warehouse(declared: dict, warehouse) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for key, schema in declared.items():
            built = [(row[0], row[1]) for row in con.execute(f"DESCRIBE {key.path[0]}.{key.path[1]}").fetchall()]
            assert [(c.name, c.type) for c in schema.columns] == built, key.to_user_string()


def test_identity_and_golden_tables_show_described_columns_before_any_run_and_exactly_as_built(landing, write_config):  # noqa: F811
    defs = build_definitions(write_config(SOURCES))
    declared = declared_schemas(defs)
    assert {key.to_user_string() for key in declared} == {
        "identity/source_lookup", "identity/identity_graph", "identity/customer_id_map",
        "identity/customer_id_history", "marts/customers",
    }  # fmt: skip
    customers = declared[dg.AssetKey(["marts", "customers"])]
    assert all(column.description for column in customers.columns)  # the attribute `tier` too
    result = materialize_all(defs)
    assert result.success
    assert_schemas_match_the_warehouse(declared, landing / "warehouse.duckdb")
    # a run's own schema keeps the descriptions, so the Columns tab does not lose them
    built = materialization_metadata(result)["marts/customers"]["dagster/column_schema"].schema
    assert [c.description for c in built.columns] == [c.description for c in customers.columns]


def test_every_asset_links_to_the_code_that_builds_it(write_config):
    defs = build_definitions(write_config(SOURCES))
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        references = graph.get(key).metadata["dagster/code_references"].code_references
        files = {reference.file_path for reference in references}
        assert files and all("/cdm_assets/wiring/" in path for path in files), (key, files)
