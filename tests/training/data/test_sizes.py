"""Dataset sizes that enter the config hash: MNIST-1D's test-set size and class-balanced training and test
subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import DataConfig, TrainConfig, config_hash
from training.data import load_data, mnist1d_arrays
from training.errors import DataError


def test_standard_mnist1d_is_unchanged_and_a_larger_test_set_keeps_the_training_set():
    standard = mnist1d_arrays()
    big = mnist1d_arrays(test_samples=10_000)
    assert standard["x"].shape == (4000, 40) and standard["x_test"].shape == (1000, 40)
    assert np.array_equal(big["x"], standard["x"]) and np.array_equal(big["y"], standard["y"])
    assert big["x_test"].shape == (10_000, 40)
    assert np.bincount(big["y_test"]).tolist() == [1000] * 10
    # the extra test set is new data, not a copy of the standard test signals
    first = standard["x_test"][0]
    assert not np.any(np.all(np.isclose(big["x_test"], first), axis=1))
    # standardised like every MNIST-1D set, by its own statistics
    assert abs(float(big["x_test"].mean())) < 1e-4 and abs(float(big["x_test"].std()) - 1) < 1e-4


def test_sizes_enter_the_hash_only_when_changed():
    base = TrainConfig()
    assert config_hash(base) == config_hash(TrainConfig(data=DataConfig(mnist1d_test=1000, train_samples=None)))
    assert config_hash(TrainConfig(data=DataConfig(mnist1d_test=10_000))) != config_hash(base)
    assert config_hash(TrainConfig(data=DataConfig(train_samples=1000))) != config_hash(base)
    assert config_hash(TrainConfig(data=DataConfig(test_samples=500))) != config_hash(base)


def test_training_subset_is_class_balanced_fixed_and_nested_in_the_full_set():
    full = load_data(DataConfig())
    a = load_data(DataConfig(train_samples=500))
    b = load_data(DataConfig(train_samples=500))
    assert torch.equal(a.train[0], b.train[0])  # the same subset for every run
    assert torch.bincount(a.train[1]).tolist() == [50] * 10
    rows = {tuple(r.tolist()) for r in full.train[0][:, 0].numpy().round(6)}
    assert all(tuple(r.tolist()) in rows for r in a.train[0][:, 0].numpy().round(6))
    assert torch.equal(a.test[0], full.test[0])  # the test split is untouched


def test_test_subset_is_class_balanced_fixed_nested_and_leaves_training_alone():
    full = load_data(DataConfig())
    a = load_data(DataConfig(test_samples=200))
    b = load_data(DataConfig(test_samples=200, train_samples=500))
    assert torch.equal(a.test[0], b.test[0])  # the same subset whatever else changes
    assert torch.bincount(a.test[1]).tolist() == [20] * 10
    rows = {tuple(r) for r in full.test[0][:, 0].numpy().round(6).tolist()}
    assert all(tuple(r) in rows for r in a.test[0][:, 0].numpy().round(6).tolist())
    assert torch.equal(a.train[0], full.train[0])  # training is untouched
    assert torch.equal(b.train[0], load_data(DataConfig(train_samples=500)).train[0])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("train_samples", 505, "multiple of the 10"),
        ("train_samples", 5000, "smallest class"),
        ("mnist1d_test", 15, "multiple of 10"),
        ("test_samples", 205, "test_samples must be a positive multiple of the 10"),
        ("test_samples", 2000, "test_samples 2000 needs 200 samples per class"),
    ],
)
def test_bad_sizes_are_refused(field, value, message):
    with pytest.raises(DataError, match=message):
        load_data(DataConfig(**{field: value}))
