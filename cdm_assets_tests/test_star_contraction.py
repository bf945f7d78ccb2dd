"""Connected components in SQL rounds: the same components as union-find, in about
2·log2(n) rounds on a chain, where label propagation would need n."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest

from cdm_assets.domain.identity.clustering import cluster_labels
from cdm_assets.domain.identity.star_contraction import star_components
from cdm_assets.domain.sql import TableName

LABELS = TableName("temp", "labels")


def components_of(con: duckdb.DuckDBPyConnection, key_a: list[int], key_b: list[int], **options):
    con.execute(
        "CREATE OR REPLACE TABLE links AS SELECT unnest($a)::BIGINT AS key_a, unnest($b)::BIGINT AS key_b",
        {"a": key_a, "b": key_b},
    )
    run = star_components(con, "SELECT key_a, key_b FROM links", LABELS, **options)
    labels = dict(con.execute(f"SELECT record_key, component FROM {LABELS.sql}").fetchall())
    con.execute(f"DROP TABLE {LABELS.sql}")
    return run, labels


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_a_chain_of_twenty_thousand_records_is_one_component_within_two_log2_n_rounds(order):
    n = 20_000
    keys = np.arange(n) if order == "ascending" else np.random.default_rng(5).permutation(n)
    run, labels = components_of(duckdb.connect(), keys[:-1].tolist(), keys[1:].tolist())
    assert set(labels.values()) == {0} and len(labels) == n
    assert run.rounds <= 2 * math.log2(n)


def test_the_components_are_those_of_union_find_labelled_by_their_smallest_record():
    rng = np.random.default_rng(11)
    records = 5_000
    # random links (trees, cycles, pairs), a long chain and a star, among records left unlinked
    key_a = rng.integers(0, records, 3_000)
    key_b = rng.integers(0, records, 3_000)
    chain = np.arange(4_000, 4_600)
    key_a = np.concatenate([key_a, chain[:-1], np.full(50, 4_700)])
    key_b = np.concatenate([key_b, chain[1:], np.arange(4_701, 4_751)])

    _, labels = components_of(duckdb.connect(), key_a.tolist(), key_b.tolist())

    expected = cluster_labels(records, key_a, key_b)
    linking = key_a != key_b  # a record linked only to itself is its own component, not listed
    assert set(labels) == set(key_a[linking].tolist()) | set(key_b[linking].tolist())
    for record, component in labels.items():
        members = np.flatnonzero(expected == expected[record])
        assert component == members.min()  # the smallest record of its union-find component
        assert labels[component] == component


def test_no_links_no_labels_and_self_links_and_repeats_change_nothing():
    con = duckdb.connect()
    run, labels = components_of(con, [], [])
    assert (run.rounds, labels) == (0, {})
    _, labels = components_of(con, [7, 3, 3, 9, 9], [7, 9, 9, 3, 12])
    assert labels == {3: 3, 9: 3, 12: 3}


def test_a_graph_that_does_not_settle_in_the_allowed_rounds_is_an_error_not_a_result():
    n = 1_000
    with pytest.raises(RuntimeError, match="did not settle in 3 star rounds"):
        components_of(duckdb.connect(), list(range(n - 1)), list(range(1, n)), max_rounds=3)


def test_record_keys_beyond_32_bits_are_refused_not_mislabelled():
    with pytest.raises(ValueError, match="1 link"):
        components_of(duckdb.connect(), [1, 2], [2, 1 << 33])
