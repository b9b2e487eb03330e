"""Training cost of a run: its exact training FLOPs (:mod:`training.flops`) and what they are in dense epochs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from training.flops import TRAIN_FACTOR


@dataclass(frozen=True)
class TrainingCost:
    """``epochs``: training epochs over all stages (levels); ``train_flops``: the FLOPs of that training
    (the run's ``train_flops`` metric at its last epoch); ``dense_epochs``: the same in units of one
    epoch of the dense network, 3·f_D·N (f_D the dense forward FLOPs per sample, N the samples of an
    epoch). NaN for runs made before training FLOPs were counted."""

    epochs: int
    train_flops: float
    dense_epochs: float


def training_cost(metrics: xr.Dataset) -> TrainingCost:
    """The cost of the training that produced ``metrics`` (a run's metrics Dataset, with or without a
    ``level`` dimension; epochs never run are NaN).

    The FLOPs are counted as RigL and AC/DC count them (:mod:`training.flops`): 3·f(M) per sample trained,
    with f(M) = Σ_l d_l·F_l over each layer's own density and cost (so ERK's dense early layers cost
    what they cost, not the global density), plus the pruning scores; evaluation is not counted.
    ``epochs`` counts every epoch with a finite ``density``, over all levels and cycles.
    """
    density = np.asarray(metrics["density"].values, dtype=float)
    epochs = int(np.isfinite(density).sum())
    if "train_flops" not in metrics or not np.isfinite(metrics["train_flops"].values).any():
        return TrainingCost(epochs, float("nan"), float("nan"))
    flops = float(np.nanmax(metrics["train_flops"].values))  # cumulative: the last epoch holds the total
    unit = TRAIN_FACTOR * float(metrics.attrs["dense_forward_flops"]) * float(metrics.attrs["train_samples_per_epoch"])
    return TrainingCost(epochs, flops, flops / unit)
