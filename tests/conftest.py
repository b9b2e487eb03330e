"""Shared fixtures: an isolated data cache, one thread per test worker, and a trained tiny run."""

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
