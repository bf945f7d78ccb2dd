"""The whole asset graph, materialised in-process on a small landing folder."""

from __future__ import annotations

import os
import time

import dagster as dg
import duckdb
import pytest

from cdm_assets.definitions import build_definitions
from cdm_assets.wiring.automation import FULL_REBUILD_TAG
from cdm_assets_tests.conftest import materialization_metadata, materialize_all, write_text
from cdm_assets_tests.dagster_server import BELOW_RAW

SOURCES = {
    "crm": {
        "entity": "customer",
        "path": "landing/crm/*.csv",
        "record_id": "crm_id",
        "precedence": 1,
        "phone_region": "NL",
        "fields": {
            "first_name": "first",
            "last_name": "last",
            "email": "email",
            "phone": "phone",
            "birth_date": {"column": "dob", "format": "%d-%m-%Y"},
        },
    },
    "shop": {
        "entity": "customer",
        "path": "landing/shop/*.csv",
        "record_id": "account",
        "precedence": 2,
        "fields": {"full_name": "name", "email": "mail"},
        "attributes": {"tier": "tier"},
    },
    "orders": {
        "entity": "transaction",
        "path": "landing/orders/*.csv",
        "record_id": "order_id",
        "customer": {"source": "shop", "column": "account"},
        "fields": {"amount": "amount", "currency": "currency", "type": "kind", "occurred_at": "ts"},
    },
    "clicks": {
        "entity": "event",
        "path": "landing/clicks/*.jsonl",
        "record_id": "id",
        "customer": {"source": "shop", "column": "user"},
        "fields": {"anonymous_id": "cookie", "email": "user", "event_type": "name", "occurred_at": "ts"},
    },
}


@pytest.fixture
def landing(tmp_path):
    write_text(
        tmp_path / "landing/crm/crm.csv",
        "crm_id,first,last,email,phone,dob\n"
        "C1,Jan,Jansen,JAN@mail.nl ,06-12345678,01-02-1980\n"
        "C2,Anna,de Vries,anna@mail.nl,+31 6 87654321,03-04-1990\n"
        "C3,Anne,de Vries,anna@mail.nl,,03-04-1992\n",
    )  # sister sharing the inbox
    write_text(
        tmp_path / "landing/shop/shop.csv",
        "account,name,mail,tier\n"
        "W1,Jan Jansen,jan@mail.nl,gold\n"
        'W2,"Vries, Anna de",anna@mail.nl,silver\n'
        "W3,Piet Peters,piet@mail.nl,bronze\n",
    )
    write_text(
        tmp_path / "landing/orders/o.csv",
        "order_id,account,amount,currency,kind,ts\n"
        "O1,W1,10.00,EUR,order,2024-01-01T10:00:00Z\n"
        "O2,W1,5.00,EUR,return,2024-01-02T10:00:00Z\n"
        "O3,W3,-1.00,EUR,order,2024-01-03T10:00:00Z\n",
    )
    write_text(
        tmp_path / "landing/clicks/c.jsonl",
        '{"id": "E1", "cookie": "k1", "user": null, "name": "page_view", "ts": "2024-01-01T09:00:00Z"}\n'
        '{"id": "E2", "cookie": "k1", "user": "W1", "name": "login", "ts": "2024-01-01T09:01:00Z"}\n',
    )
    return tmp_path


def test_everything_materialises_and_every_check_passes(landing, write_config):
    defs = build_definitions(write_config(SOURCES))
    result = materialize_all(defs)
    assert result.success
    metadata = materialization_metadata(result)
    assert set(metadata) == {"raw/crm", "raw/shop", "raw/orders", "raw/clicks"} | BELOW_RAW
    failed = [e.asset_check_key for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []
    with duckdb.connect(str(landing / "warehouse.duckdb"), read_only=True) as con:
        ids = dict(
            con.execute(
                "SELECT source || ':' || source_record_id, customer_id FROM identity.customer_id_map"
            ).fetchall()
        )
        assert ids["crm:C1"] == ids["shop:W1"]  # same email and name
        assert ids["crm:C2"] == ids["shop:W2"]  # "Vries, Anna de" is Anna de Vries
        assert ids["crm:C3"] != ids["crm:C2"]  # the sister sharing the inbox stays apart
        assert con.execute("SELECT count(*) FROM marts.customers").fetchone() == (4,)
        assert con.execute("SELECT tier FROM marts.customers WHERE customer_id = ?", [ids["shop:W1"]]).fetchone() == (
            "gold",
        )
        assert con.execute("SELECT count(*) FROM marts.transactions").fetchone() == (2,)  # O3 quarantined
        assert con.execute("SELECT count(*) FROM marts.events WHERE customer_id = ?", [ids["shop:W1"]]).fetchone() == (
            2,
        )
    graph = metadata["identity/identity_graph"]
    per_rule = graph["links_per_rule"].value
    assert per_rule and all(
        graph[f"links/{rule}"].value == count for rule, count in per_rule.items()
    )  # plottable numbers
    pairs = {key: value.value for key, value in graph.items() if key.startswith("model/")}
    assert set(pairs) == {
        "model/candidate_pairs",
        "model/over_threshold",
        "model/held_apart",
        "model/dropped_in_conflict",
        "model/first_name_given_surname",
    }
    assert pairs["model/first_name_given_surname"] > 0
    assert pairs["model/candidate_pairs"] >= pairs["model/over_threshold"] >= pairs["model/held_apart"]
    assert (
        per_rule["match_model"]
        == pairs["model/over_threshold"] - pairs["model/held_apart"] - pairs["model/dropped_in_conflict"]
    )
    id_map = metadata["identity/customer_id_map"]
    sizes = {int(k): v for k, v in id_map["cluster_size_distribution"].value.items()}
    buckets = {key: value.value for key, value in id_map.items() if key.startswith("clusters/")}
    assert sum(buckets.values()) == sum(sizes.values()) == 4  # every customer in exactly one bucket
    assert buckets["clusters/size_2"] == sizes.get(2, 0)
    largest = id_map["largest_clusters"].value
    assert [c.name for c in largest.schema.columns] == ["customer_id", "records"]
    assert largest.records[0].data["records"] == max(sizes)


def test_a_run_below_one_source_follows_its_changes_and_a_tagged_run_rebuilds_in_full(landing, write_config):
    defs = build_definitions(write_config(SOURCES))
    landed_earlier = time.time() - 3600  # so the load need not read it again to be sure it is unchanged
    os.utime(landing / "landing/crm/crm.csv", (landed_earlier, landed_earlier))
    assert materialize_all(defs).success
    write_text(landing / "landing/crm/late.csv", "crm_id,first,last,email,phone,dob\nC4,Piet,Peters,piet@mail.nl,,\n")
    result = materialize_all(defs, "raw/crm*")  # what the landing sensor runs for a file in crm
    assert result.success
    metadata = materialization_metadata(result)
    lookup, graph = metadata["identity/source_lookup"], metadata["identity/identity_graph"]
    assert (lookup["changes/added"].value, lookup["changes/changed"].value, lookup["changes/removed"].value) == (
        1, 0, 0,
    )  # fmt: skip
    assert graph["followed_changes"].value is True
    assert metadata["raw/crm"]["files_read"].value == 1  # the late file alone
    assert lookup["records_standardised"].value == 1  # the late record alone
    assert lookup["sources_read_by_changes"].value == "crm"  # the ids the crm load read, not all of crm
    model = metadata["identity/match_model"]  # reused, trained on one record fewer than the lookup holds now
    assert (model["trained_on_records"].value, model["records_now"].value) == (6, 7)
    assert model["records_now_per_trained"].value == round(7 / 6, 3)
    with duckdb.connect(str(landing / "warehouse.duckdb"), read_only=True) as con:
        ids = dict(
            con.execute(
                "SELECT source || ':' || source_record_id, customer_id FROM identity.customer_id_map"
            ).fetchall()
        )
    assert ids["crm:C4"] == ids["shop:W3"]  # the late record joined Piet's customer
    id_map = metadata["identity/customer_id_map"]
    assert (id_map["customers_changed"].value, id_map["records_changed"].value) == (1, 1)
    # only Piet's cluster was clustered again, and only the graph's rows the late record brought written
    assert id_map["records_clustered"].value == list(ids.values()).count(ids["crm:C4"])
    assert graph["rows_rewritten"].value >= 1
    marts = ("marts/customers", "marts/transactions", "marts/events", "marts/customer_metrics")
    assert all(metadata[mart]["followed_changes"].value is True for mart in marts)
    assert metadata["marts/customers"]["rebuilt"].value == 1  # Piet's golden record alone
    again = materialization_metadata(materialize_all(defs, "raw/crm*"))  # nothing landed since
    assert again["identity/source_lookup"]["records_standardised"].value == 0
    assert (
        again["identity/identity_graph"]["followed_changes"].value,
        again["identity/identity_graph"]["rows_rewritten"].value,
    ) == (True, 0)
    assert again["identity/identity_graph"]["dagster/row_count"].value == graph["dagster/row_count"].value
    assert (
        again["identity/customer_id_map"]["records_clustered"].value,
        again["identity/customer_id_map"]["customers_changed"].value,
    ) == (0, 0)
    rebuilt = dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])], resources=defs.resources, selection="raw/crm*",
        tags={FULL_REBUILD_TAG: "true"},
    )  # fmt: skip
    rebuilt_graph = materialization_metadata(rebuilt)["identity/identity_graph"]
    assert rebuilt_graph["followed_changes"].value is False
    assert "rows_rewritten" not in rebuilt_graph
    assert materialization_metadata(rebuilt)["identity/customer_id_map"]["records_clustered"].value == 7
    assert materialization_metadata(rebuilt)["identity/source_lookup"]["records_standardised"].value == 7
    assert rebuilt_graph["dagster/row_count"].value == graph["dagster/row_count"].value  # the same links
    assert not any(materialization_metadata(rebuilt)[mart]["followed_changes"].value for mart in marts)


def test_a_failing_blocking_check_stops_the_downstream_assets(landing, write_config):
    defs = build_definitions(write_config(SOURCES))
    assert materialize_all(defs).success
    with duckdb.connect(str(landing / "warehouse.duckdb")) as con:  # a record mapped twice
        con.execute(
            "INSERT INTO identity.customer_id_map (source, source_record_id, customer_id) VALUES ('crm', 'C1', 'cus_rogue')"
        )
    # Re-run the check and everything below the map, without rebuilding the map itself.
    selection = dg.AssetSelection.assets(["identity", "customer_id_map"]).downstream() - dg.AssetSelection.assets(
        ["identity", "customer_id_map"], ["identity", "customer_id_history"]
    )
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        selection=selection
        | dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey(["identity", "customer_id_map"]), "one_customer_id_per_record")
        ),
        raise_on_error=False,
    )
    evaluations = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["one_customer_id_per_record"].passed is False
    assert evaluations["one_customer_id_per_record"].metadata["failing_rows"].value == 1
    assert "marts/customers" not in materialization_metadata(result)


def test_checks_follow_the_changes_of_the_run_that_built_their_asset_and_read_whole_tables_run_alone(
    landing, write_config
):
    defs = build_definitions(write_config(SOURCES))
    first, second = materialize_all(defs), materialize_all(defs)
    check = dg.AssetCheckKey(dg.AssetKey(["identity", "customer_id_map"]), "one_customer_id_per_record")
    alone = dg.materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, selection=dg.AssetSelection.checks(check)
    )

    def followed(result: dg.ExecuteInProcessResult) -> bool:
        evaluations = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
        assert evaluations[check].passed
        return evaluations[check].metadata["followed_changes"].value

    # the first run tests whole tables; the next, which assigned the ids again, what changed
    assert (followed(first), followed(second), followed(alone)) == (False, True, False)


def test_explain_prints_the_records_links_and_rules_of_a_customer(landing, write_config, capsys, monkeypatch):
    from cdm_assets.cli import main

    config = write_config(SOURCES)
    assert materialize_all(build_definitions(config)).success
    with duckdb.connect(str(landing / "warehouse.duckdb"), read_only=True) as con:
        (customer_id,) = con.execute(
            "SELECT customer_id FROM identity.customer_id_map WHERE source_record_id = 'W1'"
        ).fetchone()
    monkeypatch.setenv("CDM_CONFIG", str(landing / "cdm.yaml"))
    assert main(["explain", customer_id]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Customer {customer_id}: 2 record(s) from crm, shop")
    assert "crm:C1  first_name=Jan, last_name=Jansen, email=jan@mail.nl, phone=+31612345678" in printed
    # the keys behind the links, nickname root and national phone key included
    assert "compared keys: first_name_key=jan, first_name_root=johannes, last_name_key=jansen" in printed
    assert "birth_date_key=19800201, email_key=jan@mail.nl, phone_key=612345678" in printed
    assert "crm:C1 <-> shop:W1  rule=match_model" in printed
    assert "created" in printed
    assert main(["explain", "cus_nobody"]) == 1


def test_a_source_not_loaded_yet_counts_as_empty_downstream(landing, write_config):
    defs = build_definitions(write_config(SOURCES))
    # What a landing sensor runs on a fresh warehouse: one source and everything below it.
    selection = dg.AssetSelection.assets(["raw", "crm"]).downstream()
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, selection=selection, raise_on_error=False
    )
    assert result.success
    with duckdb.connect(str(landing / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.shop").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM marts.customers").fetchone() == (3,)  # the crm records alone


def test_the_quarantine_is_an_asset_reporting_its_rows_by_source_and_category(landing, write_config):
    write_text(landing / "landing/shop/shop_2.csv", "account,name,mail,tier\nW3,Piet Peters,piet@mail.nl,bronze\n")
    result = materialize_all(build_definitions(write_config(SOURCES)))
    assert result.success
    quarantine = materialization_metadata(result)["raw/quarantine"]
    summary = [record.data for record in quarantine["rows_by_source_and_category"].value.records]
    assert summary == [
        {"source": "orders", "stage": "transactions", "category": "negative amount", "rows": 1},
        {"source": "shop", "stage": "raw", "category": "duplicate record id", "rows": 1},
    ]
    assert (quarantine["rows/orders"].value, quarantine["rows/shop"].value, quarantine["rows/crm"].value) == (1, 1, 0)
    assert "W3" not in quarantine["preview"].value and "-1.00" not in quarantine["preview"].value  # masked
    with duckdb.connect(str(landing / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT source, category, value, column_name FROM raw.quarantine ORDER BY source").fetchall()
    assert rows == [("orders", "negative amount", "-1.00", "amount"), ("shop", "duplicate record id", "W3", "account")]
