"""Deterministic class-conditional Gaussian data of any shape, for tests and benchmarks."""

from __future__ import annotations

import torch

from training.config import DataConfig
from training.data.bundle import DataBundle
from training.errors import DataError
from training.fileio import derive_seed

# ------------------------------------------------------------------------------------------- synthetic


def synthetic_tensors(shape: tuple[int, ...], num_classes: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples: class means drawn from N(0, 1), plus N(0, 1) noise; labels cycle through classes."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn((num_classes, *shape), generator=g)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    x = means[labels] + torch.randn((n, *shape), generator=g)
    return x, labels


def load_synthetic(cfg: DataConfig) -> DataBundle:
    """Deterministic synthetic data: train and test share class means, with independent noise."""
    shape = tuple(cfg.synthetic_shape)
    if cfg.synthetic_classes < 2 or any(s <= 0 for s in shape):
        raise DataError("synthetic data needs at least 2 classes and a positive shape")
    if cfg.synthetic_train <= 0 or cfg.synthetic_test <= 0:
        raise DataError("synthetic dataset is empty: synthetic_train and synthetic_test must be positive")
    g_means = derive_seed(0, "synthetic", shape, cfg.synthetic_classes)
    x, y = synthetic_tensors(shape, cfg.synthetic_classes, cfg.synthetic_train + cfg.synthetic_test, g_means)
    train = (x[: cfg.synthetic_train], y[: cfg.synthetic_train])
    test = (x[cfg.synthetic_train :], y[cfg.synthetic_train :])
    return DataBundle("synthetic", cfg.synthetic_classes, shape, train, train, test, cfg.num_workers)
