"""MNIST-1D (Greydanus), generated offline by the ``mnist1d`` package and cached as ``.npz``."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from training.config import DataConfig
from training.data.bundle import DataBundle
from training.fileio import atomic_path


def cache_dir() -> Path:
    """The user cache folder for generated data."""
    if os.environ.get("LANDSCAPE_CACHE"):
        return Path(os.environ["LANDSCAPE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landscape"


# --------------------------------------------------------------------------------------------- mnist1d


def mnist1d_arrays(cache: Path | None = None) -> dict[str, np.ndarray]:
    """MNIST-1D with the package's default arguments, as float32/int64 arrays (cached)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    path = (cache or cache_dir()) / f"mnist1d-n{args.num_samples}-s{args.seed}-v1.npz"
    keys = ("x", "y", "x_test", "y_test")
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in keys}
        except (OSError, ValueError, KeyError):
            pass  # a corrupted cache file is regenerated below
    # make_dataset reseeds Python's and NumPy's global RNGs; restore them so nothing else is disturbed.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = {
        "x": raw["x"].astype(np.float32),
        "y": raw["y"].astype(np.int64),
        "x_test": raw["x_test"].astype(np.float32),
        "y_test": raw["y_test"].astype(np.int64),
    }
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except Exception:  # an unwritable cache only costs regeneration next time
        pass
    return arrays


def load_mnist1d(cfg: DataConfig) -> DataBundle:
    """MNIST-1D; inputs of shape ``(1, 40)``."""
    a = mnist1d_arrays()
    train = (torch.from_numpy(a["x"]).unsqueeze(1), torch.from_numpy(a["y"]))
    test = (torch.from_numpy(a["x_test"]).unsqueeze(1), torch.from_numpy(a["y_test"]))
    return DataBundle("mnist1d", 10, (1, 40), train, train, test, cfg.num_workers)
