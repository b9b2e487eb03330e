"""Shared fixtures: an isolated data cache, one thread per test worker, a trained tiny run, and two
independently seeded runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import tiny_config


def pytest_configure(config):
    # Generated MNIST-1D arrays are cached once per test session, away from the user's cache.
    cache = Path(config.rootpath) / ".pytest_cache" / "landscape-data"
    os.environ.setdefault("LANDSCAPE_CACHE", str(cache))
    os.environ.setdefault("CI", "1")  # no progress bars in test logs
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One worker per core: torch's own thread pool (and a notebook kernel's) would oversubscribe the
        # cores, which on 2 cores slows some tests tenfold. Subprocesses inherit the setting.
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A completed tiny cyclic run (shared, read-only)."""
    from training.run import train

    out = tmp_path_factory.mktemp("runs")
    return train(tiny_config(), out, quiet=True)


@pytest.fixture(scope="session")
def two_seeds(tmp_path_factory):
    """Final checkpoints (paths) of two cnn1d runs on MNIST-1D from different seeds (different inits and
    random 50% masks): a clear linear barrier between them. Shared by the alignment and curve tests."""
    import dataclasses

    from training.config import MaskConfig, ModelConfig, OptimConfig, ScheduleConfig
    from training.run import train

    out = tmp_path_factory.mktemp("seeds")
    cfg = dataclasses.replace(
        tiny_config(),
        model=ModelConfig(name="cnn1d", width=16),
        mask=MaskConfig(method="random", sparsity=0.5),
        schedule=ScheduleConfig(name="one-cycle", epochs=10),
        optim=OptimConfig(lr=0.1),
    )
    return [train(dataclasses.replace(cfg, seed=s), out, quiet=True).checkpoint() for s in (1, 2)]
