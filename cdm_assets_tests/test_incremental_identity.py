"""Incremental runs: following a batch's changes ends where a full rebuild does.

Two warehouses take the same random batches of added, changed and removed
customer records. One follows each batch by its changes (the lookup
standardises the records whose input changed, the graph works on the pairs
they touch, the marts replace the rows of the customers, transactions and
events the changes reach); the other rebuilds everything in full. After
every batch the lookup, the identity graph, the state the next batch follows
on from, the Customer IDs, the marts and the quarantine must be identical. A cap of a few records per key makes
values cross `max_records_per_key` (and turn into placeholders and back)
all the time, which is where following changes is hardest.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from cdm_assets.config import load_config
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.identity.default_rules import default_rules
from cdm_assets.domain.identity.graph_changes import GraphState
from cdm_assets.domain.identity.lookup_changes import current_build, records_table
from cdm_assets.domain.identity.match_model.parameters import frequencies_table
from cdm_assets.domain.identity.resolution import assign_ids_from_graph, build_graph
from cdm_assets.domain.identity.source_lookup import build_source_lookup_counting_nulls
from cdm_assets.domain.marts import data_tests
from cdm_assets.domain.marts.customer_metrics import CUSTOMER_METRICS, build_customer_metrics
from cdm_assets.domain.marts.customers import build_customers
from cdm_assets.domain.marts.events import EVENTS, build_events
from cdm_assets.domain.marts.transactions import TRANSACTIONS, build_transactions
from cdm_assets.domain.raw.landed_since import raw_changes_table
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets.domain.sql import TableName, quote_ident
from cdm_assets.domain.table_versions import TableVersion, current_versions
from cdm_assets.domain.warehouse import QUARANTINE, swap_in, table_columns
from cdm_assets.sample import generate
from cdm_assets_tests.conftest import write_text
from cdm_assets_tests.plans import entity_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.identity_quality import sample_config  # noqa: E402

BATCHES = 6
CUSTOMERS = TableName("marts", "customers")
# Raw tables loaded again between the identity steps and the marts, per batch: the event
# source (events and metrics build in full), then a customer source after its lookup was built
# (the golden records cannot follow a lookup that lags its raw tables, nor the build after).
RELOADED_BEFORE_MARTS = {3: [TableName("raw", "clickstream")], 4: [TableName("raw", "crm")]}
# Whether customers, transactions, events and metrics follow, where not all do.
MARTS_FOLLOW = {
    0: (False, False, False, False),
    3: (True, True, False, False),
    4: (False, True, True, False),
    5: (False, True, True, False),
}
# canonical fields whose values a batch copies between records, empties or garbles
CHANGED_FIELDS = ("first_name", "last_name", "full_name", "email", "phone", "birth_date", "postcode", "street")


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    out = tmp_path_factory.mktemp("incremental")
    generate(persons=400, seed=23, out=out)
    return load_config(sample_config(out))


def variants(config):
    entity = entity_of(config)
    with_model = dataclasses.replace(entity, max_records_per_key=4)
    by_rules = dataclasses.replace(
        entity, rules=tuple(default_rules(entity.identifier_names)), match_model=None, max_records_per_key=3
    )
    return {"match model": with_model, "rules alone": by_rules}


def load_sources(con, plan) -> None:
    for name, source in plan.sources.items():
        load_raw_source(con, name, source, landed_files(Path(source.path)))


def batch_statements(
    con, entity, rng: random.Random, batch: int, sources: list[str]
) -> tuple[list[str], dict[str, set[str]]]:
    """SQL that adds, changes and removes a few records of each of the customer `sources`:
    copies of records (one person again), values copied from other records (new links,
    values crossing the cap), emptied and garbled values, and removed records; and per
    source the ids of the records it touches."""
    statements, touched = [], {name: set() for name in sources}
    for name, source in entity.sources.items():
        if name not in sources:
            continue
        table, record_id = f"raw.{quote_ident(name)}", quote_ident(source.record_id)
        ids = [row[0] for row in con.execute(f"SELECT {record_id} FROM {table} ORDER BY 1").fetchall()]
        columns = [source.fields[f].column for f in CHANGED_FIELDS if f in source.fields]
        # attributes and recency (text ones: garbling a value quarantines it)
        text = {column for column, dtype in table_columns(con, TableName("raw", name)) if dtype == "VARCHAR"}
        read = [*source.attributes.values(), *([source.updated_at.column] if source.updated_at else [])]
        columns += [column for column in read if column in text]
        if not ids or not columns:
            continue

        def pick(ids: list = ids) -> str:
            return str(rng.choice(ids)).replace("'", "''")

        for number in range(rng.randint(1, 6)):  # a record again, under a new id, some values changed
            copied = pick()
            new_id = f"b{batch}n{number}"
            touched[name].add(new_id)
            statements.append(
                f"INSERT INTO {table} SELECT * REPLACE ('{new_id}' AS {record_id}) FROM {table} "
                f"WHERE {record_id} = '{copied}'"
            )
            column = quote_ident(rng.choice(columns))
            statements.append(
                f"UPDATE {table} SET {column} = (SELECT {column} FROM {table} WHERE {record_id} = '{pick()}') "
                f"WHERE {record_id} = '{new_id}'"
            )
        for _ in range(rng.randint(2, 8)):  # a value copied from another record, emptied or garbled
            column, target = quote_ident(rng.choice(columns)), pick()
            touched[name].add(target)
            kind = rng.random()
            if kind < 0.6:
                value = f"(SELECT {column} FROM {table} WHERE {record_id} = '{pick()}')"
            elif kind < 0.8:
                value = "NULL"
            else:
                value = f"reverse({column})"
            statements.append(f"UPDATE {table} SET {column} = {value} WHERE {record_id} = '{target}'")
        for _ in range(rng.randint(0, 4)):
            gone = pick()
            touched[name].add(gone)
            statements.append(f"DELETE FROM {table} WHERE {record_id} = '{gone}'")
    return statements, touched


def record_loads(con, touched: dict[str, set[str]], recorded: bool) -> None:
    """A new version of each raw table, as a load of the source would write: one that read
    the new files alone (`recorded`) also records the ids it touched, and follows the last."""
    for name, ids in touched.items():
        table = TableName("raw", name)
        last = current_versions(con, [table]).get(table)
        if not recorded:
            swap_in(con, [], versions=[TableVersion.new(table)])
            continue
        changes = raw_changes_table(name)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {changes.schema}")
        con.execute(f"CREATE OR REPLACE TABLE {changes.sql} (record_id VARCHAR)")
        if ids:
            con.executemany(f"INSERT INTO {changes.sql} VALUES (?)", [(i,) for i in sorted(ids)])
        swap_in(con, [], versions=[TableVersion.new(table, follows=last.version if last else None)])


def copy_match_model(source, target, entity) -> None:
    """Both warehouses score with one model: training sums floating-point numbers in parallel,
    so two trainings on the same records can differ in the last bits."""
    if entity.match_model is None:
        return
    for table in (entity.tables.model, frequencies_table(entity.tables.model)):
        rows = source.sql(f"SELECT * FROM {table.sql}").to_arrow_table()
        target.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
        target.register("copied", rows)
        target.execute(f"CREATE TABLE {table.sql} AS SELECT * FROM copied")
        target.unregister("copied")


def table_rows(con, table) -> list[tuple]:
    return sorted(con.execute(f"SELECT * FROM {table.sql}").fetchall(), key=repr)


def marts(con) -> dict[str, list[tuple]]:
    tables = [CUSTOMERS, TRANSACTIONS, EVENTS, CUSTOMER_METRICS]
    state = {str(table): table_rows(con, table) for table in tables}
    quarantined = con.execute(f"SELECT * EXCLUDE (quarantined_at) FROM {QUARANTINE.sql}").fetchall()
    return {**state, str(QUARANTINE): sorted(quarantined, key=repr)}


def build_marts(con, plan, entity, full: bool, now: datetime) -> tuple[bool, bool, bool, bool]:
    """Build the marts; whether customers, transactions, events and metrics followed the changes."""
    return (
        build_customers(con, entity, full=full).followed_changes,
        build_transactions(con, plan, full=full).followed_changes,
        build_events(con, plan, full=full).followed_changes,
        build_customer_metrics(con, entity.tables, as_of=now, full=full).followed_changes,
    )


def data_test_outcomes(con, entity, following: bool) -> tuple[dict[str, tuple[int, int]], dict[str, bool]]:
    """The (failing, total) of the data tests that can follow the changes, read following them
    or whole; and which of them followed."""
    tables = entity.tables
    golden = tables.golden
    if following:
        outcomes = {
            "transactions_customers_exist": data_tests.orphan_customer_ids_following(
                con, "transactions", TRANSACTIONS, "transaction_id", golden
            ),
            "events_customers_exist": data_tests.orphan_customer_ids_following(
                con, "events", EVENTS, "event_id", golden
            ),
            "customer_id_is_unique": data_tests.duplicate_customer_ids_following(con, "unique", tables),
            "one_customer_id_per_record": data_tests.records_without_exactly_one_customer_id_following(
                con, "one id", tables
            ),
            "no_giant_clusters": data_tests.oversized_clusters_following(con, "giant", entity.max_cluster_size, tables),
        }
    else:
        outcomes = {
            "transactions_customers_exist": data_tests.orphan_customer_ids(con, TRANSACTIONS, "transaction_id", golden),
            "events_customers_exist": data_tests.orphan_customer_ids(con, EVENTS, "event_id", golden),
            "customer_id_is_unique": data_tests.duplicate_customer_ids(con, tables),
            "one_customer_id_per_record": data_tests.records_without_exactly_one_customer_id(con, tables),
            "no_giant_clusters": data_tests.oversized_clusters(con, entity.max_cluster_size, tables),
        }
    return {n: (o.failing, o.total) for n, o in outcomes.items()}, {n: o.followed for n, o in outcomes.items()}


def identity_state(con, entity) -> dict[str, list[tuple]]:
    tables = entity.tables
    state = GraphState.of(tables.graph)
    return {
        str(table): table_rows(con, table)
        for table in (
            tables.lookup,
            records_table(tables.lookup),
            tables.graph,
            tables.id_map,
            tables.id_history,
            *state.tables[:3],
        )
    }


@pytest.mark.parametrize("variant", ["match model", "rules alone"])
def test_following_random_batches_ends_where_a_full_rebuild_ends(landed, tmp_path, variant):
    entity, plan = variants(landed)[variant], resolve_plan(landed)
    following, rebuilding = (duckdb.connect(str(tmp_path / f"{name}.duckdb")) for name in ("following", "rebuilding"))
    rng = random.Random(7)
    followed_batches = 0
    tests_followed: Counter[str] = Counter()
    for batch in range(BATCHES + 1):
        if batch == 0:
            for con in (following, rebuilding):
                load_sources(con, plan)
        else:
            # every customer source, or (every other batch) one: the lookup reads only loaded sources
            landed = sorted(entity.sources) if batch % 2 else [rng.choice(sorted(entity.sources))]
            statements, touched = batch_statements(following, entity, rng, batch, landed)
            for statement in statements:
                for con in (following, rebuilding):
                    con.execute(statement)
            for con in (following, rebuilding):  # most batches as loads that read the new files alone
                record_loads(con, touched, recorded=batch % 3 != 0)
        now = datetime(2026, 1, 1 + batch)
        builds, standardised, marts_followed = {}, {}, {}
        for con, full in ((following, False), (rebuilding, True)):
            standardised[full] = build_source_lookup_counting_nulls(con, entity, full=full).standardised
            if full and batch == 0:
                copy_match_model(following, rebuilding, entity)
            builds[full] = build_graph(con, entity, full=full)
            assign_ids_from_graph(con, entity.tables, now=now)
            for table in RELOADED_BEFORE_MARTS.get(batch, ()):  # a load the marts did not see coming
                swap_in(con, [], versions=[TableVersion.new(table)])
            marts_followed[full] = build_marts(con, plan, entity, full, now)
        changes = current_build(following, entity.tables.lookup)
        assert builds[True].followed_changes is False
        assert builds[False].followed_changes is (batch > 0), f"batch {batch}"
        # the rebuild standardises every record, the follower those whose input changed
        assert (standardised[False] < standardised[True]) is (batch > 0), f"batch {batch}"
        followed_batches += builds[False].followed_changes and changes.added + changes.changed + changes.removed > 0
        assert marts_followed[True] == (False,) * 4
        assert marts_followed[False] == MARTS_FOLLOW.get(batch, (batch > 0,) * 4), f"batch {batch}"
        assert identity_state(following, entity) == identity_state(rebuilding, entity), f"batch {batch}"
        followed, rebuilt = marts(following), marts(rebuilding)
        for table in rebuilt:
            assert followed[table] == rebuilt[table], f"batch {batch}: {table}"
        # the data tests that follow the marts' and the map's changes count what whole tables give
        outcomes, tests_did_follow = data_test_outcomes(following, entity, following=True)
        assert outcomes == data_test_outcomes(following, entity, following=False)[0], f"batch {batch}"
        tests_followed.update(name for name, did in tests_did_follow.items() if did)
    assert followed_batches == BATCHES  # every batch changed records, and each was followed by its changes
    assert set(tests_followed) == set(outcomes)  # each data test followed the changes in some batch


SARAS = {
    "entity": "customer",
    "path": "crm/*.csv",
    "record_id": "id",
    "phone_region": "NL",
    "fields": {field: field for field in ("first_name", "last_name", "email", "phone", "birth_date")},
}


def test_a_phone_turning_placeholder_brings_back_a_weak_link_whose_records_did_not_change(tmp_path, write_config):
    """Sara (record 1) and record 3 share an inbox and meet on a fuzzy first name (a weak
    link); record 3 is Sarah (record 2), by name and birth date. Their component holds two
    phones, so the weak link is cut. A batch of one stranger takes Sara's phone over the cap:
    a placeholder contradicts nothing, and the link comes back, though neither it nor any
    record of its component changed. Following the batch finds it as the full rebuild does."""
    header = "id,first_name,last_name,email,phone,birth_date\n"
    write_text(
        tmp_path / "crm/first.csv",
        header + "1,Sara,Jansen,sara.jansen@gmail.com,0611111222,\n"
        "2,Sarah,Jansen,,0622222333,1990-03-03\n"
        "3,Sarah,Jansen,sara.jansen@gmail.com,,1990-03-03\n"
        + "".join(f"{i},{name},Peters,,0611111222,\n" for i, name in ((10, "Anna"), (11, "Bert"), (12, "Cees"))),
    )
    config = write_config({"crm": SARAS})
    entity = dataclasses.replace(
        entity_of(config), rules=tuple(default_rules([])), match_model=None, max_records_per_key=4
    )

    def build(con: duckdb.DuckDBPyConnection, full: bool):
        load_raw_source(con, "crm", entity.sources["crm"], landed_files(config.resolve("crm/*.csv")))
        build_source_lookup_counting_nulls(con, entity, full=full)
        graph = build_graph(con, entity, full=full)
        rows = con.execute("SELECT record_id_a, record_id_b, rule FROM identity.identity_graph").fetchall()
        return graph, {(*sorted((a, b)), rule) for a, b, rule in rows}

    following = duckdb.connect(str(tmp_path / "following.duckdb"))
    assert build(following, full=False)[1] == {("2", "3", "name_and_birth_date")}  # 4 holders: at the cap
    write_text(tmp_path / "crm/batch.csv", header + "13,Dirk,Peters,,0611111222,\n")  # a fifth holder
    graph, followed = build(following, full=False)
    rebuilding = duckdb.connect(str(tmp_path / "rebuilding.duckdb"))
    assert graph.followed_changes
    assert (
        followed
        == build(rebuilding, full=True)[1]
        == {
            ("1", "3", "email_and_first_name"),
            ("2", "3", "name_and_birth_date"),
        }
    )
