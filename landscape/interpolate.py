"""Linear interpolation between two checkpoints and the resulting barriers (linear mode connectivity).

Path. θ(α) = (1 − α)·θ_A + α·θ_B over the **whole** state dict (parameters and floating-point
buffers, BatchNorm running statistics included), for ``points`` values of α evenly spaced in [0, 1],
both endpoints included. Stored pruned weights are exact zeros, so this is also the path between
the masked networks m_A⊙θ_A and m_B⊙θ_B. ``torch.lerp`` is used, which returns θ_A exactly at α = 0
and θ_B exactly at α = 1. Integer buffers (``num_batches_tracked``) are taken from A.

BatchNorm. ``bn="recalibrate"`` (the default for models with BatchNorm) resets the running
statistics at every α and recomputes them as a cumulative average over ``bn_data`` in train mode
(``torch.optim.swa_utils.update_bn``, as dnn-mode-connectivity's ``update_bn``), under a fixed RNG
seed so every α sees the same batches. ``bn="none"`` evaluates the interpolated running statistics
as they are (faithful to the authors' code, which never recalibrates).

Barrier. For a metric f along the path (loss in nats, error as a fraction):
``barrier = max_α f(α) − ½·(f(0) + f(1))`` (Frankle et al. 2020), the default
``barrier="endpoint-mean"``. ``barrier="linear"`` uses ``max_α [f(α) − ((1 − α)f(0) + αf(1))]``
instead. Both are ≥ 0 and exactly 0 for identical endpoints.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from landscape.results import provenance
from training.checkpoint import Checkpoint, as_checkpoint, check_compatible
from training.errors import UserError
from training.evaluate import evaluate, resolve_device

BN_MODES = ("recalibrate", "none")


def _endpoint_mean(alpha: np.ndarray, values: np.ndarray) -> float:
    return float(np.max(values) - 0.5 * (values[0] + values[-1]))


def _linear(alpha: np.ndarray, values: np.ndarray) -> float:
    return float(np.max(values - ((1 - alpha) * values[0] + alpha * values[-1])))


BARRIERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "endpoint-mean": _endpoint_mean,
    "linear": _linear,
}


def barrier(alpha: Iterable[float], values: Iterable[float], kind: str = "endpoint-mean") -> float:
    """Barrier of a curve ``values`` sampled at ``alpha`` (must start at 0 and end at 1); see module doc."""
    a = np.asarray(list(alpha), dtype=float)
    v = np.asarray(list(values), dtype=float)
    if kind not in BARRIERS:
        raise UserError(f"unknown barrier definition {kind!r}; choose from: {', '.join(BARRIERS)}")
    if len(a) < 2 or a[0] != 0.0 or a[-1] != 1.0:
        raise UserError("a barrier needs a grid that starts at alpha=0 and ends at alpha=1")
    return BARRIERS[kind](a, v)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has any BatchNorm layer with running statistics."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules())


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, data: Iterable, device: torch.device, batches: int | None = None, seed: int = 0
) -> None:
    """Reset BatchNorm running statistics and recompute them as a cumulative average over ``data``
    (at most ``batches`` batches) in train mode; the model's mode is restored. RNG draws made while
    iterating ``data`` (augmentation) use a fixed ``seed`` and leave the caller's RNG untouched."""
    source = data if batches is None else itertools.islice(data, batches)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.optim.swa_utils.update_bn(source, model, device=device)


def _as_splits(data: Any) -> dict[str, Iterable]:
    if isinstance(data, Mapping):
        if not data:
            raise UserError("no data splits given")
        return dict(data)
    return {"data": data}


def interpolate(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    data: Iterable | Mapping[str, Iterable],
    points: int = 31,
    bn: str = "recalibrate",
    bn_data: Iterable | None = None,
    *,
    bn_batches: int | None = None,
    barrier_kind: str = "endpoint-mean",
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> xr.Dataset:
    """Evaluate loss and error along θ(α) = (1 − α)θ_A + αθ_B and compute the barriers.

    ``data`` is an iterable of ``(inputs, targets)`` batches (a DataLoader or a list), or a mapping
    ``{split name: iterable}``; a bare iterable is labelled split ``"data"``. ``bn_data`` (for
    recalibration) defaults to ``data``, or to its ``"train"`` split (else its first split) when
    ``data`` is a mapping. ``bn`` is ``"recalibrate"`` (a no-op for models without BatchNorm) or
    ``"none"``.

    Returns a Dataset with ``loss(split, alpha)`` (mean cross-entropy, nats), ``error(split, alpha)``
    (1 − accuracy), ``loss_barrier(split)``, ``error_barrier(split)`` and provenance attrs.
    """
    if points < 2:
        raise UserError(f"--points must be at least 2 (both endpoints), got {points}")
    if bn not in BN_MODES:
        raise UserError(f"unknown BN mode {bn!r}; choose from: {', '.join(BN_MODES)}", param="bn")
    if barrier_kind not in BARRIERS:
        raise UserError(f"unknown barrier definition {barrier_kind!r}; choose from: {', '.join(BARRIERS)}")
    a, b = as_checkpoint(ckpt_a), as_checkpoint(ckpt_b)
    check_compatible(a, b)
    splits = _as_splits(data)
    if bn_data is None:
        bn_data = splits.get("train", next(iter(splits.values())))
    device = resolve_device(device)

    model = copy.deepcopy(a.model).to(device)  # never mutate the caller's model
    use_bn = bn != "none" and has_batchnorm(model)
    state_a = {k: v.to(device) for k, v in a.state.items()}
    state_b = {k: v.to(device) for k, v in b.state.items()}
    target = model.state_dict()
    float_keys = [k for k, v in state_a.items() if v.is_floating_point()]
    alphas = np.linspace(0.0, 1.0, points)
    alphas[0], alphas[-1] = 0.0, 1.0

    loss = np.zeros((len(splits), points))
    error = np.zeros((len(splits), points))
    for i, alpha in enumerate(tqdm(alphas, desc="interpolate", unit="α", disable=quiet or None, leave=False)):
        with torch.no_grad():
            for k in float_keys:
                torch.lerp(state_a[k], state_b[k], float(alpha), out=target[k])
            for k, v in state_a.items():
                if not v.is_floating_point():
                    target[k].copy_(v)
        if use_bn:
            recalibrate_bn(model, bn_data, device, bn_batches)
        for j, split_data in enumerate(splits.values()):
            loss[j, i], error[j, i] = evaluate(model, split_data, device)

    split_names = list(splits)
    ds = xr.Dataset(
        {
            "loss": (("split", "alpha"), loss),
            "error": (("split", "alpha"), error),
            "loss_barrier": ("split", [barrier(alphas, loss[j], barrier_kind) for j in range(len(splits))]),
            "error_barrier": ("split", [barrier(alphas, error[j], barrier_kind) for j in range(len(splits))]),
        },
        coords={"split": split_names, "alpha": alphas},
        attrs={
            **provenance(a=a, b=b),
            "bn": "recalibrate" if use_bn else "none",
            "bn_batches": -1 if bn_batches is None else int(bn_batches),
            "barrier_definition": barrier_kind,
            "path": "theta(alpha) = (1 - alpha) * theta_a + alpha * theta_b over the full state dict",
        },
    )
    ds["loss"].attrs["units"] = "nats (mean cross-entropy)"
    ds["error"].attrs["units"] = "fraction (1 - accuracy)"
    ds["loss_barrier"].attrs["definition"] = ds["error_barrier"].attrs["definition"] = barrier_kind
    return ds
