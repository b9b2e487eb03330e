"""Per-epoch training metrics as an xarray Dataset, and when progress bars are shown."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

METRIC_NAMES = ("train_loss", "train_error", "test_loss", "test_error", "lr", "density", "train_flops")
CYCLE_METRIC_NAMES = ("train_set_loss", "train_set_error")


def progress_disabled(quiet: bool) -> bool | None:
    """tqdm's ``disable``: off under ``quiet`` or in CI, and (``None``) whenever stderr is not a TTY."""
    return True if (quiet or os.environ.get("CI")) else None


def metrics_dataset(records: list[dict[str, Any]], cycles: int, epochs: int, attrs: dict[str, Any]) -> xr.Dataset:
    """Per-epoch records -> Dataset with dims ``(cycle, epoch)``; epochs not run are NaN.

    Variables: ``train_loss``/``train_error`` (running means over the epoch's training batches, in
    train mode, with augmentation), ``test_loss``/``test_error`` (eval mode, after the epoch), ``lr``
    (the rate of the epoch's last step), ``density`` (measured fraction of non-zero prunable weights),
    ``train_flops`` (the run's cumulative training FLOPs at the end of the epoch, over all its stages:
    3·f(M) per sample trained plus the pruning scores, :mod:`training.flops`).
    Per cycle, ``train_set_loss``/``train_set_error(cycle)``: the loss and error over the whole training
    split the stage trains on, unaugmented, in eval mode, at the end of the cycle — the training loss
    that claims about the final training loss use (NaN for cycles not finished, or runs made before
    it was recorded). Coordinate ``global_epoch`` counts epochs over the stage's cycles.
    """
    data = {name: np.full((cycles, epochs), np.nan) for name in METRIC_NAMES}
    per_cycle = {name: np.full(cycles, np.nan) for name in CYCLE_METRIC_NAMES}
    for r in records:
        for name in METRIC_NAMES:  # train_flops is absent from records of runs made before it was counted
            data[name][r["cycle"] - 1, r["epoch"] - 1] = r.get(name, np.nan)
        for name in CYCLE_METRIC_NAMES:
            if name in r:
                per_cycle[name][r["cycle"] - 1] = r[name]
    cycle_c = np.arange(1, cycles + 1)
    epoch_c = np.arange(1, epochs + 1)
    ds = xr.Dataset(
        {
            **{name: (("cycle", "epoch"), values) for name, values in data.items()},
            **{name: ("cycle", values) for name, values in per_cycle.items()},
        },
        coords={
            "cycle": cycle_c,
            "epoch": epoch_c,
            "global_epoch": (("cycle", "epoch"), (cycle_c[:, None] - 1) * epochs + epoch_c[None, :]),
        },
        attrs=attrs,
    )
    units = {
        "train_loss": "nats",
        "test_loss": "nats",
        "train_error": "fraction",
        "test_error": "fraction",
        "train_set_loss": "nats",
        "train_set_error": "fraction",
        "lr": "learning rate",
        "density": "fraction",
        "train_flops": "FLOPs, cumulative over the run's training (2 per multiply-accumulate)",
    }
    for name, unit in units.items():
        ds[name].attrs["units"] = unit
    return ds
