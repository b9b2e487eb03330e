"""The dataset registry and :func:`load_data`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from training.config import DataConfig
from training.data.bundle import LOADERS, DataBundle, split_size
from training.data.fashion_mnist import load_fashion_mnist
from training.data.images import load_cifar, load_imagenet
from training.data.mnist1d import load_mnist1d
from training.data.synthetic import load_synthetic
from training.errors import DataError

DATASETS: dict[str, Callable[[DataConfig], DataBundle]] = {
    "mnist1d": load_mnist1d,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar,
    "cifar100": load_cifar,
    "imagenet": load_imagenet,
    "synthetic": load_synthetic,
}


def load_data(cfg: DataConfig) -> DataBundle:
    """Load dataset ``cfg.name``; raises :class:`DataError` if it is unknown, missing or empty."""
    if cfg.name not in DATASETS:
        raise DataError(f"unknown dataset {cfg.name!r}; choose from: {', '.join(sorted(DATASETS))}")
    if cfg.loader not in LOADERS:
        raise DataError(f"unknown loader {cfg.loader!r}; choose from: {', '.join(LOADERS)}", param="loader")
    bundle = dataclasses.replace(DATASETS[cfg.name](cfg), loader=cfg.loader)
    if cfg.train_samples is not None:
        bundle = bundle.train_subset(cfg.train_samples)
    if cfg.test_samples is not None:
        bundle = bundle.test_subset(cfg.test_samples)
    for split in ("train", "test"):
        if split_size(getattr(bundle, split)) == 0:
            raise DataError(f"dataset {cfg.name} has an empty {split} split")
    return bundle
