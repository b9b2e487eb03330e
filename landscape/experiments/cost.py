"""Training cost of a run, in epochs and in dense-epoch FLOP equivalents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr


@dataclass(frozen=True)
class TrainingCost:
    """``epochs``: training epochs over all stages (levels); ``dense_epoch_flops``: their cost in units of
    one epoch of the dense network (see :func:`training_cost`)."""

    epochs: int
    dense_epoch_flops: float


def training_cost(metrics: xr.Dataset) -> TrainingCost:
    """The cost of the training that produced ``metrics`` (a run's metrics Dataset, with or without a
    ``level`` dimension; epochs never run are NaN).

    Convention: an epoch trained at density d (the measured fraction of non-zero prunable weights,
    the ``density`` metric of that epoch) costs d dense epochs, so ``dense_epoch_flops = Σ_epochs d``
    and a dense epoch costs 1. This is the count of the multiply-accumulates of the prunable layers'
    forward and backward passes *if* sparsity is exploited, weighting every prunable weight alike. It
    ignores the unpruned parts (biases, BatchNorm, the input and its augmentation), the cost of
    computing masks (pruning scores, magnitude steps) and evaluation, and that a weight of a
    convolution applied at many positions costs more than one of a linear layer; with non-uniform
    layer densities (ERK, smart ratios) the true FLOP fraction can therefore differ from d.

    ``epochs`` counts every epoch with a finite ``density``, over all levels and cycles.
    """
    density = np.asarray(metrics["density"].values, dtype=float)
    finite = np.isfinite(density)
    return TrainingCost(epochs=int(finite.sum()), dense_epoch_flops=float(np.nansum(density)))
