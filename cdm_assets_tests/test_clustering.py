"""Clustering a batch's records alone gives the labels a clustering of every key would give
them: the smallest record key of each component."""

from __future__ import annotations

import numpy as np
import pytest

from cdm_assets.domain.identity.clustering import component_labels, component_labels_among


def test_records_clustered_apart_get_the_labels_of_the_whole_key_space():
    rng = np.random.default_rng(3)
    for _ in range(200):
        space = int(rng.integers(1, 400))
        keys = rng.choice(space, int(rng.integers(1, space + 1)), replace=False)
        links = int(rng.integers(0, 2 * len(keys)))
        key_a, key_b = rng.choice(keys, links), rng.choice(keys, links)

        among = component_labels_among(keys, key_a, key_b)

        assert among.tolist() == component_labels(space, key_a, key_b)[keys].tolist()


def test_labels_follow_the_order_the_records_are_given_in():
    keys = np.array([50, 7, 30, 9, 100])
    labels = component_labels_among(keys, np.array([50, 9]), np.array([30, 100]))
    assert labels.tolist() == [30, 7, 30, 9, 9]


def test_a_link_to_a_record_outside_those_clustered_is_an_error_not_a_wrong_label():
    with pytest.raises(ValueError, match="outside the records clustered"):
        component_labels_among(np.array([1, 2]), np.array([1]), np.array([3]))
    with pytest.raises(ValueError, match="no record to cluster"):
        component_labels_among(np.array([], dtype=np.int64), np.array([1]), np.array([2]))


def test_no_records_no_labels():
    empty = np.array([], dtype=np.int64)
    assert component_labels_among(empty, empty, empty).tolist() == []
