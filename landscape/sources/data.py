"""Data for the analyses: any re-iterable of ``(inputs, targets)`` batches, or ``{split: batches}``.

Curvature and barriers are functions of the data, so the data must be the same on every pass: no
shuffling, no random augmentation, no ``drop_last`` with a shuffling sampler. :func:`check_batches`
refuses what it can see (a one-pass iterator or generator, a ``DataLoader`` with a random sampler, a
first batch that changes between two passes), as curvlinops' ``check_deterministic`` does.

:func:`data_from_spec` turns ``--data`` into splits: a registry dataset name (its unshuffled,
unaugmented splits), or ``package.module:callable`` returning a Dataset, a DataLoader, another
re-iterable of batches, or a mapping of those by split (``train`` for BatchNorm recalibration and
curvature, ``test`` for evaluation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from landscape.sources.specs import call_user, resolve_callable
from training.errors import DataError


def as_batches(obj: Any, batch_size: int, what: str) -> Iterable:
    """A Dataset becomes an unshuffled DataLoader of ``batch_size``; a re-iterable passes through."""
    if isinstance(obj, Dataset) and not isinstance(obj, torch.utils.data.IterableDataset):
        return DataLoader(obj, batch_size=batch_size, shuffle=False)
    if isinstance(obj, (str, bytes, torch.Tensor)) or not isinstance(obj, Iterable):
        raise DataError(f"{what} must be an iterable of (inputs, targets) batches, got {type(obj).__name__}")
    return obj


def check_batches(data: Any, what: str = "data") -> None:
    """Refuse data that is not the same on every pass (see the module doc), naming ``what``."""
    if isinstance(data, Iterator):
        raise DataError(
            f"{what} is a one-pass iterator (e.g. a generator); pass a list or a DataLoader, which can be read again",
            param=what,
        )
    if isinstance(data, (str, bytes, torch.Tensor)) or not isinstance(data, Iterable):
        raise DataError(f"{what} must be an iterable of (inputs, targets) batches, got {type(data).__name__}")
    if isinstance(data, DataLoader) and isinstance(data.sampler, RandomSampler):
        raise DataError(
            f"{what} is a DataLoader that shuffles; analyses need the same data on every pass (shuffle=False)"
        )
    if isinstance(data, (list, tuple)) or (isinstance(data, DataLoader) and data.num_workers > 0):
        return  # a list cannot change; a worker pool is not started twice just to compare
    first = [_first(data, what) for _ in range(2)]
    if first[0] is not None and not _same(first[0], first[1]):
        raise DataError(
            f"{what} gives a different first batch on each pass (shuffling or random augmentation); "
            "analyses need the same data on every pass"
        )


def _first(data: Iterable, what: str) -> Any:
    for batch in data:
        return batch
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def data_from_spec(spec: str, args: Mapping[str, Any] | None, batch_size: int) -> dict[str, Iterable]:
    """``{split: batches}`` from ``package.module:callable`` (see the module doc). A single Dataset or
    loader is the split ``data``; every split is checked with :func:`check_batches`."""
    fn = resolve_callable(spec, "data")
    result = call_user(fn, dict(args or {}), spec, "data")
    parts = result if isinstance(result, Mapping) else {"data": result}
    if not parts:
        raise DataError(f"data {spec!r} returned no splits")
    splits = {str(k): as_batches(v, batch_size, f"split {k} of data {spec!r}") for k, v in parts.items()}
    for name, split in splits.items():
        check_batches(split, f"split {name} of data {spec!r}")
    return splits
