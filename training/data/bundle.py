"""In-memory loaders and the :class:`DataBundle` a dataset loader returns.

Data order and augmentation are functions of ``(seed, epoch key)`` only (see
:meth:`DataBundle.train_loader`), which makes resumed runs identical to uninterrupted ones.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from training.checks import AT_LEAST_ONE, check_number
from training.data.arrays import ImageArrayDataset
from training.data.device import TensorLoader
from training.errors import DataError
from training.fileio import derive_seed

LOADERS = {
    "device": "in-memory splits live on the training device; batches are gathered, augmented and normalised "
    "there with batched tensor operations (ImageNet folders always use the DataLoader)",
    "torch": "torch DataLoader with per-sample torchvision transforms (--workers processes) for image datasets; "
    "MNIST-1D and synthetic tensors are batched on the CPU",
}


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class DataBundle:
    """A dataset's splits plus what a model needs to know about it.

    ``train`` is the training split with training augmentation; ``train_eval`` the same samples
    without augmentation (for evaluation and BatchNorm recalibration); ``test`` the test split.
    Each is a pair of tensors ``(x, y)``, an :class:`~training.data.arrays.ImageArrayDataset`
    (uint8 images and their transform) or another torch ``Dataset`` (ImageNet folders).

    ``loader`` (:data:`LOADERS`) picks how batches are made: ``device`` (the default) batches the
    in-memory splits with :class:`~training.data.device.TensorLoader` wherever :meth:`to` put them;
    ``torch`` keeps them on the CPU and reads image datasets through a ``DataLoader`` sample by sample.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train: Any
    train_eval: Any
    test: Any
    num_workers: int = 0
    loader: str = "device"

    def to(self, device: torch.device | str) -> DataBundle:
        """With the ``device`` loader, a copy whose in-memory splits live on ``device`` (views that shared
        a tensor still share one); with ``torch``, or when nothing moves, ``self``."""
        device = torch.device(device)
        if self.loader != "device":
            return self
        memo: dict[int, torch.Tensor] = {}

        def move(t: torch.Tensor) -> torch.Tensor:
            if id(t) not in memo:
                memo[id(t)] = t.to(device)
            return memo[id(t)]

        def split_to(split: Any) -> Any:
            if isinstance(split, tuple):
                return move(split[0]), move(split[1])
            if isinstance(split, ImageArrayDataset):
                return split.replace(images=move(split.images), labels=move(split.labels))
            return split

        splits = {k: getattr(self, k) for k in ("train", "train_eval", "test")}
        tensors = [t for s in splits.values() for t in _tensors(s)]
        if all(t.device == device for t in tensors):
            return self
        moved = {k: split_to(v) for k, v in splits.items()}
        if self.train_eval is self.train:
            moved["train_eval"] = moved["train"]
        return dataclasses.replace(self, **moved)

    def _loader(self, split: Any, batch_size: int, shuffle: bool, seed: int, pin: bool) -> Any:
        check_number(batch_size, "batch_size", AT_LEAST_ONE, error=DataError)
        if isinstance(split, tuple):
            return TensorLoader(split[0], split[1], batch_size, shuffle, seed)
        if isinstance(split, ImageArrayDataset) and self.loader == "device":
            return TensorLoader(split.images, split.labels, batch_size, shuffle, seed, transform=split.transform)
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
        """Shuffled, augmented training batches; order and augmentation fixed by ``seed`` (device loader)
        or by ``seed`` and the global torch RNG (``torch`` loader, per-sample torchvision transforms)."""
        return self._loader(self.train, batch_size, True, seed, pin)

    def labelled_sample(self, per_class: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One batch ``[(inputs, targets)]`` of ``per_class`` unaugmented training samples per class,
        drawn with ``generator`` (the data SNIP and GraSP score on)."""
        split = self.train_eval
        labels = self._labels(split)
        idx = class_balanced_indices(labels, per_class, generator)
        if isinstance(split, tuple):
            idx = idx.to(split[1].device)
            return [(split[0][idx], split[1][idx])]
        if isinstance(split, ImageArrayDataset):  # bit for bit the per-sample ToTensor + Normalize
            return [split.batch(idx)]
        items = [split[int(i)] for i in idx]
        return [(torch.stack([torch.as_tensor(x) for x, _ in items]), torch.tensor([int(y) for _, y in items]))]

    def train_subset(self, n: int) -> DataBundle:
        """A copy whose training split (augmented and not) is a class-balanced subset of ``n`` samples.

        The subset is drawn with a fixed seed that depends only on ``n``, so every run seed (and every
        arm of an experiment) trains on the same samples; ``n`` must be a multiple of the class count
        and at most the size of the smallest class times the class count.
        """
        idx = self._balanced(self.train_eval, n, "train_samples", "train-subset")
        memo: dict[int, torch.Tensor] = {}
        train = _take(self.train, idx, memo)
        train_eval = train if self.train_eval is self.train else _take(self.train_eval, idx, memo)
        return dataclasses.replace(self, train=train, train_eval=train_eval)

    def test_subset(self, n: int) -> DataBundle:
        """A copy whose test split is a class-balanced subset of ``n`` samples, drawn as
        :meth:`train_subset` draws (its own fixed seed, depending only on ``n``): every run evaluates
        on the same samples."""
        idx = self._balanced(self.test, n, "test_samples", "test-subset")
        return dataclasses.replace(self, test=_take(self.test, idx, {}))

    def _balanced(self, split: Any, n: int, option: str, stream: str) -> torch.Tensor:
        """Sorted indices of a class-balanced subset of ``n`` samples of ``split`` (``option`` names the
        setting in errors; ``stream`` the seed's stream)."""
        labels = self._labels(split)
        classes = self.num_classes
        if n < classes or n % classes:
            raise DataError(f"{option} must be a positive multiple of the {classes} classes, got {n}", param=option)
        per_class = n // classes
        smallest = int(torch.bincount(labels, minlength=classes).min())
        if per_class > smallest:
            raise DataError(
                f"{option} {n} needs {per_class} samples per class; the smallest class has {smallest}", param=option
            )
        gen = torch.Generator().manual_seed(derive_seed(0, stream, n))
        return class_balanced_indices(labels, per_class, gen).sort().values

    @staticmethod
    def _labels(split: Any) -> torch.Tensor:
        """The split's labels as a CPU int64 tensor."""
        return (split[1] if isinstance(split, tuple) else torch.as_tensor(labels_of(split))).cpu()

    def eval_loader(self, split: str, batch_size: int, pin: bool = False) -> Any:
        """Unshuffled, unaugmented batches of ``split`` (``train`` or ``test``)."""
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r}; choose from: train, test")
        return self._loader(self.train_eval if split == "train" else self.test, batch_size, False, 0, pin)


def _tensors(split: Any) -> list[torch.Tensor]:
    if isinstance(split, tuple):
        return list(split)
    if isinstance(split, ImageArrayDataset):
        return [split.images, split.labels]
    return []


def _take(split: Any, idx: torch.Tensor, memo: dict[int, torch.Tensor]) -> Any:
    """Samples ``idx`` of ``split``; a tensor shared by several splits is indexed once (``memo``)."""

    def take(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            memo[id(t)] = t[idx.to(t.device)]
        return memo[id(t)]

    if isinstance(split, tuple):
        return take(split[0]), take(split[1])
    if isinstance(split, ImageArrayDataset):
        return split.replace(images=take(split.images), labels=take(split.labels))
    return Subset(split, idx.tolist())


def class_balanced_indices(labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``per_class`` samples of each class (fewer if a class is smaller), drawn with ``generator``."""
    order = torch.randperm(len(labels), generator=generator)
    return torch.cat([order[labels[order] == c][:per_class] for c in torch.unique(labels).tolist()])


def epoch_samples(split: Any, batch_size: int) -> int:
    """The samples one training epoch over ``split`` trains on: all of them, less a last batch of one
    sample, which the shuffling loaders drop (BatchNorm cannot train on it)."""
    n = split_size(split)
    return n - 1 if n > 1 and n % batch_size == 1 else n


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
