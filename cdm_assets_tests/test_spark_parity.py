"""The same config, assets and checks on Spark end in DuckDB's tables (issue #17).

One generated sample is materialised twice through Dagster, in-process: once on
the DuckDB file, once with `CDM_ENGINE=spark` on a local Spark session whose
tables are Parquet directories. DuckDB then reads Spark's directories and every
table users rely on must hold the same rows.

Then a batch lands in the CRM (new, changed and removed records) and the landing
sensor's selection runs on both warehouses: the steps that follow the changes
(DuckDB's DELETE and UPDATE, emulated on Spark's Parquet tables) must end in the
same rows too. The tests of the first runs come first in this file: the batch
changes both warehouses in place (pytest runs a module's tests in file order).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from benchmarks.landing_batch import land_batch
from benchmarks.spark_engine import clusterings_agree, rows_on_both
from cdm_assets.config import BUNDLED_CONFIG, load_config
from cdm_assets.definitions import build_definitions
from cdm_assets.domain.marts import customers as customers_mart
from cdm_assets.sample import generate
from cdm_assets_tests.conftest import materialization_metadata, materialize_all

pytestmark = [pytest.mark.spark, pytest.mark.slow]

PERSONS = 300
# the tables users and other tools read, with the columns that hold the time of the run
CONTRACT_TABLES = {
    "raw.crm": (),
    "raw.webshop": (),
    "raw.loyalty": (),
    "raw.newsletter": (),
    "raw.support": (),
    "raw.webshop_orders": (),
    "raw.store_sales": (),
    "raw.clickstream": (),
    "raw.quarantine": ("quarantined_at",),
    "identity.source_lookup": (),
    "identity.match_model": ("trained_at",),
    "identity.identity_graph": (),
    "identity.customer_id_map": (),
    "identity.customer_id_history": ("changed_at",),
    "marts.customers": (),
    "marts.transactions": (),
    "marts.events": (),
    "marts.customer_metrics": ("days_since_last_order",),  # counted to the moment of each run
}


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory, spark):
    out = tmp_path_factory.mktemp("parity")
    generate(persons=PERSONS, seed=5, out=out)
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = source["path"].removeprefix("../../data/")
    document["warehouse"] = {"duckdb_path": "cdm.duckdb", "spark": {"master": "local[2]", "warehouse_dir": "spark"}}
    (out / "cdm.yaml").write_text(yaml.safe_dump(document))
    results = {}
    with pytest.MonkeyPatch.context() as env:
        # golden records in several passes of customers, as on large runs (one pass per 5M records)
        env.setattr(customers_mart, "RECORDS_PER_PASS", 250)
        for engine in ("duckdb", "spark"):
            env.setenv("CDM_ENGINE", engine)
            results[engine] = materialize_all(build_definitions(load_config(out / "cdm.yaml")))
    return out, results


def test_every_asset_and_check_runs_on_spark_with_duckdbs_outcome(both_engines):
    _, results = both_engines
    assert results["duckdb"].success and results["spark"].success
    outcomes = _check_outcomes(results)
    assert outcomes["spark"] == outcomes["duckdb"]
    assert len(outcomes["spark"]) > 20
    counts = {
        engine: {
            key: m["dagster/row_count"].value
            for key, m in materialization_metadata(result).items()
            if "dagster/row_count" in m
        }
        for engine, result in results.items()
    }
    assert counts["spark"] == counts["duckdb"]


def test_spark_reports_the_star_rounds_its_clustering_took(both_engines):
    _, results = both_engines
    id_map = {
        engine: materialization_metadata(result)["identity/customer_id_map"] for engine, result in results.items()
    }
    assert "clustering_rounds" not in id_map["duckdb"]  # union-find in memory: no rounds
    rounds = id_map["spark"]["clustering_rounds"].value
    clustered = id_map["spark"]["records_clustered"].value
    # a sample's clusters are small: a few rounds, far below 2·log2 of the records
    assert 1 <= rounds <= 2 * clustered.bit_length()


@pytest.mark.parametrize("table", sorted(CONTRACT_TABLES))
def test_spark_builds_duckdbs_rows(both_engines, table: str):
    out, _ = both_engines
    _assert_same_rows(out, table)


def _assert_same_rows(out: Path, table: str) -> None:
    schema, name = table.split(".")
    con = duckdb.connect(str(out / "cdm.duckdb"), read_only=True)
    try:
        in_duckdb, on_spark = rows_on_both(con, schema, name, Path(out, "spark", schema, name), CONTRACT_TABLES[table])
    finally:
        con.close()
    assert in_duckdb, f"{table} is empty: nothing was compared"
    assert on_spark == in_duckdb


def test_spark_and_duckdb_put_the_same_record_pairs_together(both_engines):
    out, _ = both_engines
    _assert_same_pairs(out)


# --- after a batch: the landing sensor's selection follows the changes on both engines ---


@pytest.fixture(scope="module")
def after_a_batch(both_engines):
    out, _ = both_engines
    batch = land_batch(out / "landing" / "crm", added=0.05, changed=0.05, removed=0.05)
    results = {}
    with pytest.MonkeyPatch.context() as env:
        for engine in ("duckdb", "spark"):
            env.setenv("CDM_ENGINE", engine)
            results[engine] = materialize_all(build_definitions(load_config(out / "cdm.yaml")), "raw/crm*")
    return out, batch, results


def test_a_batch_is_followed_on_spark_as_on_duckdb(after_a_batch):
    _, batch, results = after_a_batch
    assert min(batch.values()) > 0  # records were added, changed and removed
    assert results["duckdb"].success and results["spark"].success
    followed = {
        engine: sorted(key for key, m in materialization_metadata(result).items() if m.get("followed_changes"))
        for engine, result in results.items()
    }
    # the graph and the marts worked on the changes, not on whole tables, on both engines
    assert {"identity/identity_graph", "marts/customers", "marts/transactions"} <= set(followed["duckdb"])
    assert followed["spark"] == followed["duckdb"]
    outcomes = _check_outcomes(results)
    assert outcomes["spark"] == outcomes["duckdb"]
    lookup = {engine: materialization_metadata(r)["identity/source_lookup"] for engine, r in results.items()}
    assert lookup["spark"]["records_standardised"].value == lookup["duckdb"]["records_standardised"].value


@pytest.mark.parametrize("table", sorted(CONTRACT_TABLES))
def test_after_a_batch_spark_holds_duckdbs_rows(after_a_batch, table: str):
    out, _, _ = after_a_batch
    _assert_same_rows(out, table)


def test_after_a_batch_spark_and_duckdb_put_the_same_record_pairs_together(after_a_batch):
    out, _, _ = after_a_batch
    _assert_same_pairs(out)


def _check_outcomes(results: dict) -> dict[str, set[tuple[str, bool]]]:
    """Per engine, (check, passed) of every check its run evaluated."""
    return {
        engine: {(str(e.asset_check_key), e.passed) for e in result.get_asset_check_evaluations()}
        for engine, result in results.items()
    }


def _assert_same_pairs(out: Path) -> None:
    precision, recall, f1, pairs = clusterings_agree(out / "cdm.duckdb", out / "spark")
    assert pairs > 100  # customers of several records were compared
    assert (precision, recall, f1) == (1.0, 1.0, 1.0)
