"""Shared fixtures: an isolated data cache, small configs, and trained tiny runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.config import DataConfig, MaskConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig


def pytest_configure(config):
    # Generated MNIST-1D arrays are cached once per test session, away from the user's cache.
    cache = Path(config.rootpath) / ".pytest_cache" / "landscape-data"
    os.environ.setdefault("LANDSCAPE_CACHE", str(cache))
    os.environ.setdefault("CI", "1")  # no progress bars in test logs


def checkpoint_meta(**changes) -> dict:
    """A valid checkpoint ``meta`` for a width-8 cnn1d on MNIST-1D, with ``changes`` applied."""
    from training.checkpoint import FORMAT_VERSION

    meta = {
        "model": "cnn1d",
        "model_kwargs": {"input_shape": [1, 40], "width": 8},
        "dataset": "mnist1d",
        "num_classes": 10,
        "epoch": 3,
        "cycle": 1,
        "config_hash": "abc",
        "format_version": FORMAT_VERSION,
    }
    meta.update(changes)
    return meta


def tiny_config(**changes) -> TrainConfig:
    """A cnn1d on MNIST-1D, random 80% mask, 2 cycles of 2 epochs: about a second of training."""
    cfg = TrainConfig(
        data=DataConfig(name="mnist1d", batch_size=256),
        model=ModelConfig(name="cnn1d", width=8),
        mask=MaskConfig(method="random", sparsity=0.8),
        schedule=ScheduleConfig(name="cyclic", cycles=2, epochs=2),
        optim=OptimConfig(lr=0.1),
        seed=3,
        device="cpu",
    )
    import dataclasses

    return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A completed tiny cyclic run (shared, read-only)."""
    from training.recipes import train

    out = tmp_path_factory.mktemp("runs")
    return train(tiny_config(), out, quiet=True)
