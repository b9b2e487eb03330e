"""Benchmark rows for the data path on the CPU (``python benchmarks/run.py --only loader``).

* Augmented CIFAR batches per second: the device loader (:mod:`training.data.device`) against a
  ``DataLoader`` with per-sample torchvision transforms and the same number of worker processes (0),
  over 50,000 CIFAR-shaped uint8 images, batch 512. Both draw a random crop (4-pixel padding) and a
  flip per image, then normalise.
* A ResNet-20 training epoch (``training.run.train``, dense, batch 512) on CIFAR-shaped arrays with
  each loader; the loader's share of the epoch is reported too.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from suite import Row, Suite, interleaved  # benchmarks/suite.py (this folder is on sys.path when run as a script)


def cifar_arrays(n_train: int, n_test: int, seed: int = 0) -> tuple[tuple, tuple]:
    """Random CIFAR-shaped uint8 images (N, 32, 32, 3) with balanced labels, train and test."""
    g = np.random.default_rng(seed)
    train = (g.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), np.arange(n_train) % 10)
    test = (g.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), np.arange(n_test) % 10)
    return train, test


def bundles(n_train: int, n_test: int, workers: int = 0) -> dict[str, object]:
    """The same CIFAR-shaped data behind the device loader and behind the torch DataLoader."""
    from training.data.images import cifar_bundle

    base = cifar_bundle("cifar10", *cifar_arrays(n_train, n_test), workers=workers)
    return {"device": base, "torch": dataclasses.replace(base, loader="torch")}


def epoch_of_batches(bundle, batch_size: int, seed: int, limit: int | None = None) -> int:
    """Iterate (at most ``limit`` batches of) one training epoch; returns the samples delivered."""
    n = 0
    for i, (x, _) in enumerate(bundle.train_loader(batch_size, seed)):
        n += len(x)
        if limit is not None and i + 1 >= limit:
            break
    return n


def bench_loader(s: Suite) -> None:
    """Rows: augmented batches per second of each loader; a resnet20 epoch with each loader."""
    batch = 512
    data = bundles(50_000, 1_000)
    limit = 20 if s.quick else None  # the DataLoader epoch takes minutes; quick mode times 20 batches of it
    counts: dict[str, int] = {}
    seeds = iter(range(10**6))

    def run(kind: str):
        def go():
            counts[kind] = epoch_of_batches(data[kind], batch, next(seeds), limit)

        return go

    t = interleaved({k: run(k) for k in data}, max(2, s.repeats // 2))
    rate = {k: counts[k] / t[k] for k in t}
    r = rate["device"] / rate["torch"]
    s.rows.append(
        Row(
            "device loader: augmented CIFAR batches (50,000 CIFAR-shaped uint8 images, batch 512, crop + flip)",
            "DataLoader + torchvision per-sample transforms, 0 workers",
            "≥ 20× its samples/s",
            f"{rate['device']:.0f} samples/s",
            f"{rate['torch']:.0f} samples/s",
            r,
            r >= 20,
            f"ratio = ours / reference samples per second; {counts['torch']} samples per timed DataLoader pass",
        )
    )
    bench_training_epoch(s, batch)


def bench_training_epoch(s: Suite, batch: int) -> None:
    """A dense resnet20 epoch through ``train`` on CIFAR-shaped arrays, device loader vs DataLoader."""
    from training.config import DataConfig, MaskConfig, ModelConfig, ScheduleConfig, TrainConfig
    from training.run import train

    n_train = 2_560 if s.quick else 10_240
    data = bundles(n_train, 1_000)
    counter = iter(range(10**6))

    def make(kind: str):
        cfg = TrainConfig(
            data=DataConfig(name="cifar10", batch_size=batch, loader=kind),
            model=ModelConfig(name="resnet20"),
            mask=MaskConfig(method="none"),
            schedule=ScheduleConfig(name="one-cycle", epochs=1),
            device="cpu",
        )

        def go():
            with tempfile.TemporaryDirectory() as tmp:
                train(cfg, Path(tmp) / str(next(counter)), quiet=True, data=data[kind])

        return go

    t = interleaved({k: make(k) for k in data}, max(2, s.repeats // 2))
    loader_only = interleaved(
        {k: (lambda k=k: epoch_of_batches(data[k], batch, next(counter))) for k in data}, 2, warmup=0
    )
    r = t["device"] / t["torch"]
    s.rows.append(
        Row(
            f"resnet20 training epoch (CIFAR-shaped arrays, {n_train} images, batch 512, test 1,000): device loader",
            "the same epoch with the DataLoader path, 0 workers",
            "≤ 1.0× its time",
            f"{t['device']:.1f} s",
            f"{t['torch']:.1f} s",
            r,
            r <= 1.0,
            f"loader alone per epoch: device {loader_only['device']:.2f} s "
            f"({100 * loader_only['device'] / t['device']:.1f}% of the epoch), DataLoader "
            f"{loader_only['torch']:.2f} s ({100 * loader_only['torch'] / t['torch']:.1f}%)",
        )
    )
