"""Corruptions for Su et al.'s sanity checks: random labels, random pixels, half of the data.

Random pixels: each sample's input values are permuted by a permutation of its own, drawn once. For
tensor splits (MNIST-1D, synthetic) and in-memory image datasets (CIFAR, Fashion-MNIST) the raw values
are permuted *before* augmentation and normalisation, as Su et al. 2020's code permutes the uint8
CIFAR array before its torchvision transforms; so both loaders (``device`` and ``torch``) train on the
same corrupted images. Only datasets read from folders (ImageNet) are wrapped in
:class:`CorruptedDataset`, which permutes each transformed sample instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils.data import Dataset

from training.data.arrays import ImageArrayDataset
from training.data.bundle import DataBundle, split_size
from training.errors import DataError

# ------------------------------------------------------------------------------------------ corruptions


class CorruptedDataset(Dataset):
    """A view of ``base`` with replaced labels, a per-sample permutation of all input values (applied
    after the base transform) and/or a subset of indices."""

    def __init__(self, base: Any, labels: Any = None, pixel_seed: int | None = None, indices: Any = None):
        self.base, self.labels, self.pixel_seed = base, labels, pixel_seed
        self.indices = list(range(len(base))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        j = self.indices[i]
        x, y = self.base[j]
        if self.pixel_seed is not None:
            x = torch.as_tensor(x)
            perm = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(self.pixel_seed + j))
            x = x.flatten()[perm].view(x.shape)
        return x, int(self.labels[j]) if self.labels is not None else y


def _random_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed))


def permute_values(x: torch.Tensor, seed: int, chunk: int = 4096) -> torch.Tensor:
    """``x`` with the values of each sample (``x[i]``) permuted by ``randperm`` draws of one generator
    seeded with ``seed``, sample after sample (in chunks, so memory stays bounded)."""
    g = torch.Generator().manual_seed(seed)
    flat = x.reshape(len(x), -1)
    out = torch.empty_like(flat)
    for start in range(0, len(x), chunk):
        rows = flat[start : start + chunk]
        perms = torch.stack([torch.randperm(flat.shape[1], generator=g) for _ in range(len(rows))])
        out[start : start + chunk] = torch.gather(rows, 1, perms.to(rows.device))
    return out.view_as(x)


def _corrupt_split(split: Any, kind: str, num_classes: int, seed: int, memo: dict[int, Any]) -> Any:
    """``split`` corrupted by ``kind``; images shared by several splits are corrupted once (``memo``)."""
    n = split_size(split)
    if isinstance(split, tuple | ImageArrayDataset):
        x, y = split if isinstance(split, tuple) else (split.images, split.labels)
        if id(x) not in memo:
            if kind == "half-data":
                memo[id(x)] = x[: n // 2], y[: n // 2]
            else:
                labels = _random_labels(n, num_classes, seed).to(y.device)
                memo[id(x)] = (permute_values(x, seed + 1) if kind == "random-pixels" else x), labels
        x, y = memo[id(x)]
        return (x, y) if isinstance(split, tuple) else split.replace(images=x, labels=y)
    if kind == "half-data":
        return CorruptedDataset(split, indices=range(n // 2))
    labels = _random_labels(n, num_classes, seed)
    return CorruptedDataset(split, labels=labels, pixel_seed=seed + 1 if kind == "random-pixels" else None)


CORRUPTIONS = {
    "none": "the true training data",
    "random-labels": "every training label drawn uniformly at random (seed 12345, as Su et al. 2020's code)",
    "random-pixels": "random labels plus a fresh permutation of all input values of each sample",
    "half-data": "the first half of the training samples, in dataset order",
}


def corrupt(bundle: DataBundle, kind: str, seed: int = 12345) -> DataBundle:
    """A copy of ``bundle`` whose training split (augmented and not) is corrupted by ``kind`` (see
    :data:`CORRUPTIONS`); the test split is untouched. The same corruption is applied to both
    training views, so pruning scores and pretraining see the same samples."""
    if kind not in CORRUPTIONS:
        raise DataError(f"unknown corruption {kind!r}; choose from: {', '.join(CORRUPTIONS)}")
    if kind == "none":
        return bundle
    memo: dict[int, Any] = {}
    train = _corrupt_split(bundle.train, kind, bundle.num_classes, seed, memo)
    train_eval = (
        train
        if bundle.train_eval is bundle.train
        else _corrupt_split(bundle.train_eval, kind, bundle.num_classes, seed, memo)
    )
    return dataclasses.replace(bundle, train=train, train_eval=train_eval)
