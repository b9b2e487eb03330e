"""In-memory loaders and the :class:`DataBundle` a dataset loader returns.

Data order and augmentation are functions of ``(seed, epoch key)`` only (see
:meth:`DataBundle.train_loader`), which makes resumed runs identical to uninterrupted ones.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from training.errors import DataError
from training.fileio import derive_seed


class TensorLoader:
    """Batches of in-memory tensors in a seeded order.

    Written by hand rather than using ``DataLoader(TensorDataset)`` because for 40-float signals the
    DataLoader's per-sample indexing and collation cost more than the model's forward pass; here a
    batch is one fancy-indexing call. Iterating yields ``(inputs, targets)``; with ``shuffle`` the
    order is ``randperm(n, generator=Generator(seed))``, so it depends only on ``seed``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        n = len(y)
        # A final batch of one sample would break BatchNorm in train mode; drop it when shuffling.
        self.drop_last = shuffle and n % batch_size == 1 and n > 1

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)) if self.shuffle else None
        for b in range(len(self)):
            if order is None:
                sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
                yield self.x[sl], self.y[sl]
            else:
                idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                yield self.x[idx], self.y[idx]


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class DataBundle:
    """A dataset's splits plus what a model needs to know about it.

    ``train`` is the training split with training augmentation; ``train_eval`` the same samples
    without augmentation (for evaluation and BatchNorm recalibration); ``test`` the test split.
    Each is either a pair of tensors ``(x, y)`` or a torch ``Dataset``.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train: Any
    train_eval: Any
    test: Any
    num_workers: int = 0

    def _loader(self, split: Any, batch_size: int, shuffle: bool, seed: int, pin: bool) -> Any:
        if isinstance(split, tuple):
            return TensorLoader(split[0], split[1], batch_size, shuffle, seed)
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            split,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            worker_init_fn=_worker_init if self.num_workers else None,
            pin_memory=pin,
            drop_last=shuffle and len(split) % batch_size == 1 and len(split) > 1,
        )

    def train_loader(self, batch_size: int, seed: int, pin: bool = False) -> Any:
        """Shuffled, augmented training batches; order and worker seeds fixed by ``seed``."""
        return self._loader(self.train, batch_size, True, seed, pin)

    def labelled_sample(self, per_class: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One batch ``[(inputs, targets)]`` of ``per_class`` unaugmented training samples per class,
        drawn with ``generator`` (the data SNIP and GraSP score on)."""
        split = self.train_eval
        labels = self._labels(split)
        idx = class_balanced_indices(labels, per_class, generator)
        if isinstance(split, tuple):
            return [(split[0][idx], split[1][idx])]
        items = [split[int(i)] for i in idx]
        return [(torch.stack([torch.as_tensor(x) for x, _ in items]), torch.tensor([int(y) for _, y in items]))]

    def train_subset(self, n: int) -> DataBundle:
        """A copy whose training split (augmented and not) is a class-balanced subset of ``n`` samples.

        The subset is drawn with a fixed seed that depends only on ``n``, so every run seed (and every
        arm of an experiment) trains on the same samples; ``n`` must be a multiple of the class count
        and at most the size of the smallest class times the class count.
        """
        labels = self._labels(self.train_eval)
        classes = self.num_classes
        if n < classes or n % classes:
            raise DataError(
                f"train_samples must be a positive multiple of the {classes} classes, got {n}", param="train_samples"
            )
        per_class = n // classes
        smallest = int(torch.bincount(labels, minlength=classes).min())
        if per_class > smallest:
            raise DataError(
                f"train_samples {n} needs {per_class} samples per class; the smallest class has {smallest}",
                param="train_samples",
            )
        gen = torch.Generator().manual_seed(derive_seed(0, "train-subset", n))
        idx = class_balanced_indices(labels, per_class, gen).sort().values
        train = _take(self.train, idx)
        train_eval = train if self.train_eval is self.train else _take(self.train_eval, idx)
        return dataclasses.replace(self, train=train, train_eval=train_eval)

    @staticmethod
    def _labels(split: Any) -> torch.Tensor:
        return split[1] if isinstance(split, tuple) else torch.as_tensor(labels_of(split))

    def eval_loader(self, split: str, batch_size: int, pin: bool = False) -> Any:
        """Unshuffled, unaugmented batches of ``split`` (``train`` or ``test``)."""
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r}; choose from: train, test")
        return self._loader(self.train_eval if split == "train" else self.test, batch_size, False, 0, pin)


def _take(split: Any, idx: torch.Tensor) -> Any:
    return (split[0][idx], split[1][idx]) if isinstance(split, tuple) else Subset(split, idx.tolist())


def class_balanced_indices(labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``per_class`` samples of each class (fewer if a class is smaller), drawn with ``generator``."""
    order = torch.randperm(len(labels), generator=generator)
    return torch.cat([order[labels[order] == c][:per_class] for c in torch.unique(labels).tolist()])


def split_size(split: Any) -> int:
    """The number of samples of a split: a ``(inputs, targets)`` tensor pair or a torch ``Dataset``."""
    return len(split[1]) if isinstance(split, tuple) else len(split)


def labels_of(dataset: Any) -> Any:
    """The labels of a torch ``Dataset``: its ``labels`` or ``targets`` attribute (a ``Subset``'s are
    looked up through its indices), else read sample by sample."""
    if isinstance(dataset, Subset):
        return np.asarray(labels_of(dataset.dataset))[np.asarray(dataset.indices)]
    for attr in ("labels", "targets"):
        if hasattr(dataset, attr):
            return getattr(dataset, attr)
    return [int(dataset[i][1]) for i in range(len(dataset))]
