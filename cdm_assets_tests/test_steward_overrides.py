"""Steward overrides: a steward's `link` and `unlink` win over every rule and the model,
and hold across reruns, retrains and late batches."""

from __future__ import annotations

import duckdb
import pytest

from cdm_assets.config import duckdb_path
from cdm_assets.definitions import build_definitions
from cdm_assets.domain.identity.explain import explain_customer
from cdm_assets.domain.identity.override_file import OverrideFileError, read_overrides
from cdm_assets.domain.identity.resolution import assign_ids_from_graph, build_graph
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets_tests.conftest import materialize_all, write_text
from cdm_assets_tests.plans import customer_tables, entity_of

HEADER = "source_a,record_id_a,source_b,record_id_b,action,reason\n"
CRM = {
    "entity": "customer",
    "path": "crm/*.csv",
    "record_id": "id",
    "phone_region": "NL",
    "fields": {"first_name": "first", "last_name": "last", "email": "email", "phone": "phone"},
}
# Two plain rules, so which link is stronger is plain: an email beats a phone.
RULES = [
    {"name": "same_email", "exact": ["email"]},
    {"name": "same_phone", "exact": ["phone"]},
]
# 1 and 2 share an email, 2 and 3 a phone; 4 shares nothing with anyone.
RECORDS = (
    "id,first,last,email,phone\n"
    "1,Jan,Jansen,jan@mail.nl,0612345678\n"
    "2,Jan,Jansen,jan@mail.nl,0687654321\n"
    "3,Jan,Jansen,,0687654321\n"
    "4,Johannes,Jansen,hans@mail.nl,\n"
)


@pytest.fixture
def resolve(tmp_path, warehouse, write_config):
    """Load RECORDS (or other rows) as the `crm` source, write the overrides file, build the
    graph and the ids; returns {record id: customer id}."""

    def run(overrides: str | None, records: str = RECORDS) -> dict[str, str]:
        write_text(tmp_path / "crm/crm.csv", records)
        if overrides is not None:
            write_text(tmp_path / "steward/overrides.csv", HEADER + overrides)
        config = write_config({"crm": CRM}, identity={"rules": RULES, "overrides": "steward/overrides.csv"})
        customers = entity_of(config)
        load_raw_source(warehouse, "crm", customers.sources["crm"], landed_files(config.resolve("crm/*.csv")))
        build_source_lookup(warehouse, customers)
        build_graph(warehouse, customers)
        assign_ids_from_graph(warehouse, customers.tables)
        return dict(warehouse.execute("SELECT source_record_id, customer_id FROM identity.customer_id_map").fetchall())

    return run


def statuses(warehouse) -> list[tuple]:
    return warehouse.execute(
        "SELECT line, action, status, links_cut FROM identity.steward_overrides ORDER BY line"
    ).fetchall()


def graph(warehouse) -> dict[tuple[str, str], str]:
    rows = warehouse.execute("SELECT record_id_a, record_id_b, rule FROM identity.identity_graph").fetchall()
    return {(a, b): rule for a, b, rule in rows}


def changes(warehouse) -> list[str]:
    return [
        change
        for (change,) in warehouse.execute(
            "SELECT change FROM identity.customer_id_history WHERE change <> 'created' ORDER BY changed_at, change"
        ).fetchall()
    ]


def test_without_overrides_the_rules_decide(resolve, warehouse):
    ids = resolve(None)
    assert ids["1"] == ids["2"] == ids["3"] != ids["4"]
    assert statuses(warehouse) == []


def test_a_link_joins_records_no_rule_links_and_is_labelled_override(resolve, warehouse):
    ids = resolve("crm,1,crm,4,link,same person: Hans is Jan's middle name\n")
    assert ids["4"] == ids["1"] == ids["2"] == ids["3"]
    assert graph(warehouse)[("1", "4")] == "override"
    assert statuses(warehouse) == [(2, "link", "joined", 0)]


def test_a_link_of_records_already_together_changes_no_id_but_keeps_them_together(resolve, warehouse):
    before = resolve(None)
    assert resolve("crm,1,crm,3,link,\n") == before
    assert statuses(warehouse) == [(2, "link", "already together", 0)]
    assert changes(warehouse) == []
    # the steward's link is in the graph, so it holds when the phone that joins them goes
    assert graph(warehouse)[("1", "3")] == "override"
    after = resolve("crm,1,crm,3,link,\n", records=RECORDS.replace("3,Jan,Jansen,,0687654321", "3,Jan,Jansen,,"))
    assert after["3"] == after["1"] == before["1"]


def test_a_link_the_rules_make_directly_adds_no_link(resolve, warehouse):
    resolve("crm,2,crm,1,link,\n")
    assert statuses(warehouse) == [(2, "link", "already together", 0)]
    assert graph(warehouse)[("1", "2")] == "same_email"


def test_an_unlink_cuts_the_weakest_link_between_the_two_records(resolve, warehouse):
    ids = resolve("crm,3,crm,1,unlink,shared phone of a shop\n")
    assert ids["1"] == ids["2"] != ids["3"]
    assert graph(warehouse) == {("1", "2"): "same_email"}  # the email link is stronger and stays
    cut = warehouse.execute("SELECT record_id_a, record_id_b, rule, override_line FROM identity.cut_links").fetchall()
    assert cut == [("2", "3", "same_phone", 2)]
    assert statuses(warehouse) == [(2, "unlink", "separated", 1)]


def test_an_unlink_of_records_already_apart_cuts_nothing(resolve, warehouse):
    resolve("crm,1,crm,4,unlink,\n")
    assert statuses(warehouse) == [(2, "unlink", "already apart", 0)]
    assert warehouse.execute("SELECT count(*) FROM identity.cut_links").fetchone() == (0,)


def test_a_link_contradicted_by_an_unlink_through_another_record_is_overruled(resolve, warehouse):
    ids = resolve("crm,1,crm,4,link,\ncrm,3,crm,4,link,\ncrm,1,crm,3,unlink,\n")
    assert ids["1"] != ids["3"]  # the unlink holds
    assert [s[2] for s in statuses(warehouse)] == ["joined", "overruled", "separated"]


def test_an_override_naming_an_unknown_record_is_reported_and_the_rest_applies(resolve, warehouse):
    ids = resolve("crm,1,crm,99,link,\nshop,1,crm,2,unlink,\ncrm,1,crm,4,link,\n")
    assert [s[2] for s in statuses(warehouse)] == ["unknown record", "unknown record", "joined"]
    assert ids["1"] == ids["4"]


def test_overrides_hold_on_rerun_and_record_their_id_changes_as_override(resolve, warehouse):
    before = resolve(None)
    after = resolve("crm,3,crm,2,unlink,\ncrm,1,crm,4,link,\n")
    # born in the same run, the two ids tie on age: the lower id survives the merge
    assert after["1"] == after["2"] == after["4"] == min(before["1"], before["4"])
    assert after["3"] not in (before["1"], before["4"])  # split off the larger part
    assert changes(warehouse) == ["override", "override"]  # 3 split off, 4 merged in
    assert resolve("crm,3,crm,2,unlink,\ncrm,1,crm,4,link,\n") == after
    assert changes(warehouse) == ["override", "override"]  # an unchanged rerun changes nothing


def test_overrides_are_told_apart_by_record_key_when_a_record_has_left_the_sources(resolve, warehouse):
    """Records keep their keys, so one that goes leaves a gap among them: the changes the
    overrides make in the same run are still recorded as theirs."""
    before = resolve(None, RECORDS + "0,Piet,Pieters,piet@mail.nl,\n")  # the first key
    after = resolve("crm,3,crm,2,unlink,\ncrm,1,crm,4,link,\n")
    assert after["1"] == after["2"] == after["4"] == min(before["1"], before["4"])
    assert sorted(changes(warehouse)) == ["override", "override", "retired"]


def test_an_override_taken_out_of_the_file_no_longer_holds(resolve, warehouse):
    """The graph follows the lookup between the runs; the steward's links and cuts are
    worked out again all the same."""
    overridden = resolve("crm,3,crm,2,unlink,\ncrm,1,crm,4,link,\n")
    assert overridden["1"] == overridden["4"] != overridden["3"]
    plain = resolve("")
    assert plain["1"] == plain["2"] == plain["3"] != plain["4"]
    assert graph(warehouse) == {("1", "2"): "same_email", ("2", "3"): "same_phone"}


def test_explain_shows_the_overrides_and_the_links_they_cut(resolve, warehouse):
    ids = resolve("crm,3,crm,1,unlink,shared phone of a shop\n")
    text = explain_customer(warehouse, ids["3"], customer_tables())
    assert "unlink crm:3 / crm:1 (line 2): separated, 1 link(s) cut; shared phone of a shop" in text
    assert "crm:2 <-> crm:3  rule=same_phone  cut by the unlink at line 2" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("source_a,record_id_a,source_b,action\n", "overrides.csv:1: missing column(s) record_id_b"),
        (HEADER + "crm,1,crm,2,merge,\n", "overrides.csv:2: column action is 'merge'; expected link or unlink"),
        (HEADER + "crm,,crm,2,link,\n", "overrides.csv:2: column record_id_a is empty"),
        (HEADER + "crm,1,crm,2,link\n", "overrides.csv:2: 5 fields, but the header has 6"),
        (HEADER + "crm,1,crm,1,unlink,\n", "overrides.csv:2: both sides name crm:1"),
        (
            HEADER + "crm,1,crm,2,link,\n\ncrm,2,crm,1,UNLINK,\n",
            "overrides.csv:4: unlink of crm:2 and crm:1 contradicts the link at line 2",
        ),
    ],
)
def test_a_line_that_cannot_be_read_is_an_error_naming_file_line_and_column(tmp_path, content, message):
    path = write_text(tmp_path / "overrides.csv", content)
    with pytest.raises(OverrideFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_overrides(path)


def test_the_file_may_come_from_excel_with_other_columns_and_blank_lines(tmp_path):
    text = "\ufeffSource_A, Record_ID_A ,source_b,record_id_b,Action,steward\r\ncrm,1,shop, a7 ,Link,ann\r\n\r\n"
    overrides = read_overrides(write_text(tmp_path / "overrides.csv", text))
    assert [(o.line, o.action, o.source_b, o.record_id_b, o.reason) for o in overrides] == [
        (2, "link", "shop", "a7", None)
    ]


LANDED = {"crm": {**CRM, "path": "landing/crm/*.csv"}}


def test_a_link_and_an_unlink_hold_across_three_reruns_and_a_late_batch(tmp_path, write_config):
    """The whole graph in Dagster: the overrides apply on every run, a late batch included."""
    write_text(tmp_path / "landing/crm/batch1.csv", RECORDS)
    write_text(tmp_path / "steward/overrides.csv", HEADER + "crm,3,crm,2,unlink,\ncrm,1,crm,4,link,\n")
    config = write_config(LANDED, identity={"overrides": "steward/overrides.csv"})
    defs = build_definitions(config)

    def run() -> dict[str, str]:
        result = materialize_all(defs)
        assert result.success
        with duckdb.connect(str(duckdb_path(config)), read_only=True) as con:
            return dict(con.execute("SELECT source_record_id, customer_id FROM identity.customer_id_map").fetchall())

    first = run()
    assert first["1"] == first["4"] != first["3"]
    for _ in range(2):
        assert run() == first
    write_text(tmp_path / "landing/crm/batch2.csv", "id,first,last,email,phone\n5,Jan,Jansen,jan@mail.nl,0687654321\n")
    late = run()
    assert {k: late[k] for k in first} == first
    assert late["3"] != late["2"]  # record 5 bridges them by email and phone: the unlink still holds
