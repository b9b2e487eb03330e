"""Linear interpolation between two checkpoints and the resulting barriers (linear mode connectivity).

Path. θ(α) = (1 − α)·θ_A + α·θ_B over the **whole** state dict (parameters and floating-point
buffers, BatchNorm running statistics included), for ``points`` values of α evenly spaced in [0, 1],
both endpoints included. Stored pruned weights are exact zeros, so this is also the path between
the masked networks m_A⊙θ_A and m_B⊙θ_B. ``torch.lerp`` is used, which returns θ_A exactly at α = 0
and θ_B exactly at α = 1. Integer buffers (``num_batches_tracked``) are taken from A.

Alignment. ``align="weight-matching"`` or ``"activation-matching"`` first permutes B's hidden units
to match A (:func:`landscape.connectivity.align.align`; B's function and mask are unchanged), so the path runs
between A and the aligned B. The method, the permutation cost before and after, and the fraction of
units moved are recorded as ``align_*`` attrs.

Normalisation. ``bn="recalibrate"`` (the default for models with BatchNorm) resets the running
statistics at every α and recomputes them as a cumulative average over ``bn_data`` in train mode
(``torch.optim.swa_utils.update_bn``, as dnn-mode-connectivity's ``update_bn``), under a fixed RNG
seed so every α sees the same batches. ``bn="none"`` evaluates the interpolated running statistics
as they are (faithful to the authors' code, which never recalibrates). ``bn="repair"`` (networks
without BatchNorm) applies REPAIR (Jordan et al. 2023, :mod:`landscape.connectivity.repair`) at every inner α,
with statistics measured on ``bn_data``.

Barriers. For a metric f along the path (loss in nats, error as a fraction) both definitions are
always stored: ``endpoint-mean`` (Frankle et al. 2020), ``max_α f(α) − ½·(f(0) + f(1))``, and
``chord`` (Entezari et al. 2022), ``max_α [f(α) − ((1 − α)f(0) + αf(1))]`` (``"linear"`` is its
former name). Both are ≥ 0 and exactly 0 for identical endpoints; they agree when f(0) = f(1).
``barrier_kind`` picks the one stored again as ``loss_barrier``/``error_barrier`` and used for
``connected`` = error barrier < ``connected_threshold`` (default 0.02, Frankle et al.'s).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from landscape.connectivity.align import align as align_checkpoints
from landscape.connectivity.permutation import example_inputs, groups_of
from landscape.connectivity.recalibration import (  # noqa: F401 (recalibrate_bn, recalibration_data: public here too)
    has_batchnorm,
    plan_recalibration,
    recalibrate_bn,
    recalibration_data,
)
from landscape.connectivity.repair import channel_stats, interpolate_stats, repair
from landscape.results import provenance
from landscape.sources import as_source, check_batches, resolve_loss
from training.checkpoint import Checkpoint, check_compatible, check_same_data
from training.checks import AT_LEAST_ONE, AT_LEAST_TWO, MAX_PATH_POINTS, POSITIVE, check_number
from training.errors import UserError
from training.evaluate import evaluate, resolve_device
from training.progress import Progress

BN_MODES = ("recalibrate", "none", "repair")
# a path's points, both endpoints included: at least 2, at most MAX_PATH_POINTS


def _endpoint_mean(alpha: np.ndarray, values: np.ndarray) -> float:
    return float(np.max(values) - 0.5 * (values[0] + values[-1]))


def _linear(alpha: np.ndarray, values: np.ndarray) -> float:
    return float(np.max(values - ((1 - alpha) * values[0] + alpha * values[-1])))


BARRIERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "endpoint-mean": _endpoint_mean,
    "chord": _linear,
    "linear": _linear,  # the chord definition's former name
}
CONNECTED_THRESHOLD = 0.02


def barrier_definition(kind: str) -> str:
    """The canonical name of barrier definition ``kind`` (``"linear"`` is the chord's former name)."""
    if kind not in BARRIERS:
        raise UserError(f"unknown barrier definition {kind!r}; choose from: endpoint-mean, chord", param="barrier_kind")
    return "chord" if kind == "linear" else kind


def barrier(alpha: Iterable[float], values: Iterable[float], kind: str = "endpoint-mean") -> float:
    """Barrier of a curve ``values`` sampled at ``alpha`` (must start at 0 and end at 1); see module doc."""
    a = np.asarray(list(alpha), dtype=float)
    v = np.asarray(list(values), dtype=float)
    kind = barrier_definition(kind)
    if len(a) < 2 or a[0] != 0.0 or a[-1] != 1.0:
        raise UserError("a barrier needs a grid that starts at alpha=0 and ends at alpha=1")
    return BARRIERS[kind](a, v)


def as_splits(data: Any) -> dict[str, Iterable]:
    """``{split name: batches}`` from a mapping, or ``{"data": data}`` for a bare iterable."""
    if isinstance(data, Mapping):
        if not data:
            raise UserError("no data splits given")
        splits = dict(data)
    else:
        splits = {"data": data}
    for name, split in splits.items():
        check_batches(split, "data" if name == "data" and not isinstance(data, Mapping) else f"data split {name}")
    return splits


def barrier_variables(
    coord: str,
    grid: np.ndarray,
    loss: np.ndarray,
    error: np.ndarray | None,
    *,
    barrier_kind: str = "endpoint-mean",
    connected_threshold: float = CONNECTED_THRESHOLD,
    loss_name: str = "cross-entropy",
) -> dict[str, Any]:
    """The curves ``loss``/``error`` (split × ``coord``) and their barriers as Dataset variables:
    ``loss``, ``error``, ``{loss,error}_barrier_{endpoint_mean,chord}``, ``{loss,error}_barrier``
    (``barrier_kind``'s) and ``connected`` (error barrier < ``connected_threshold``), with units and
    definitions in their attrs. Without classification targets (``error`` is ``None``) the error
    variables and ``connected`` are absent; the loss barriers are still there."""
    kind = barrier_definition(barrier_kind)
    units = "nats (mean cross-entropy)" if loss_name == "cross-entropy" else f"mean {loss_name} per sample"
    out: dict[str, Any] = {"loss": xr.Variable(("split", coord), loss, {"units": units})}
    metrics = [("loss", loss)]
    if error is not None:
        out["error"] = xr.Variable(("split", coord), error, {"units": "fraction (1 - accuracy)"})
        metrics.append(("error", error))
    for name, definition in (("endpoint_mean", "endpoint-mean"), ("chord", "chord")):
        for metric, values in metrics:
            out[f"{metric}_barrier_{name}"] = xr.Variable(
                "split", [barrier(grid, row, definition) for row in values], {"definition": definition}
            )
    for metric, _ in metrics:
        out[f"{metric}_barrier"] = out[f"{metric}_barrier_{kind.replace('-', '_')}"].copy()
    if error is None:
        return out
    connected = out["error_barrier"].values < connected_threshold
    out["connected"] = xr.Variable(
        "split",
        connected,
        {"definition": f"error barrier ({kind}) < {connected_threshold}", "threshold": connected_threshold},
    )
    return out


def interpolate(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    data: Iterable | Mapping[str, Iterable],
    points: int = 31,
    bn: str = "recalibrate",
    bn_data: Iterable | None = None,
    *,
    bn_batches: int | None = None,
    bn_batch_size: int | None = None,
    barrier_kind: str = "endpoint-mean",
    connected_threshold: float = CONNECTED_THRESHOLD,
    align: str = "none",
    align_data: Iterable | None = None,
    allow_different_data: bool = False,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str = "auto",
    loss_fn: str | Callable | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> xr.Dataset:
    """Evaluate loss and error along θ(α) = (1 − α)θ_A + αθ_B and compute the barriers.

    The checkpoints are landscape checkpoints, :class:`~training.checkpoint.Checkpoint` objects,
    ``nn.Module`` objects, or any file :func:`landscape.sources.load` reads with ``model`` (a spec),
    ``model_args`` and ``mask``. ``loss_fn`` is ``None``/``"cross-entropy"``, ``"mse"``, a callable
    ``(output, target) → batch mean`` or a ``"package.module:callable"`` name; the error (and
    ``connected``) exists only for classification targets.

    ``data`` is an iterable of ``(inputs, targets)`` batches (a DataLoader or a list), or a mapping
    ``{split name: iterable}``; a bare iterable is labelled split ``"data"``. ``bn_data`` (training
    batches for recalibration and REPAIR) defaults to the ``"train"`` split of ``data``; the data being
    evaluated is never used for it, so a model with BatchNorm and neither is refused
    (:func:`~landscape.connectivity.recalibration.recalibration_data`). Its samples are re-cut into
    batches of ``bn_batch_size`` (default: A's recorded training batch size), so the evaluation batch
    size never changes the statistics (:mod:`landscape.connectivity.recalibration`); attrs ``bn_data``,
    ``bn_samples``, ``bn_batch_size`` and ``bn_batch_size_from`` record which data, how many samples
    and which batch size.
    ``bn`` is ``"recalibrate"`` (a no-op for models without BatchNorm), ``"none"`` or ``"repair"``
    (models without BatchNorm). ``align`` is ``"none"``, ``"weight-matching"`` or
    ``"activation-matching"`` (on ``align_data``, default ``bn_data``).

    Checkpoints trained on different data (:func:`~training.checkpoint.check_same_data`) are refused
    unless ``allow_different_data``; non-finite weights always are (:func:`~training.checkpoint.as_checkpoint`).

    Returns a Dataset with ``loss(split, alpha)`` (mean cross-entropy, nats), ``error(split, alpha)``
    (1 − accuracy), the barriers under both definitions, ``loss_barrier(split)`` and
    ``error_barrier(split)`` under ``barrier_kind``, ``connected(split)``, and provenance attrs. With
    BatchNorm recalibration, ``stored_loss``/``stored_error(split, endpoint)`` hold the endpoints
    evaluated as stored (their own running statistics), to compare with the recalibrated α = 0 and 1.
    """
    check_number(points, "points", AT_LEAST_TWO)
    check_number(points, "points", MAX_PATH_POINTS)
    check_number(bn_batches, "bn_batches", AT_LEAST_ONE)
    check_number(connected_threshold, "connected_threshold", POSITIVE)
    if bn not in BN_MODES:
        raise UserError(f"unknown BN mode {bn!r}; choose from: {', '.join(BN_MODES)}", param="bn")
    kind = barrier_definition(barrier_kind)
    fn, loss_name = resolve_loss(loss_fn)
    a, b = (as_source(c, model=model, model_args=model_args, mask=mask, param=p) for c, p in (
        (ckpt_a, "ckpt_a"), (ckpt_b, "ckpt_b")))  # fmt: skip
    check_compatible(a, b)
    if not allow_different_data:
        check_same_data(a, b)
    splits = as_splits(data)
    device = resolve_device(device)
    if bn == "repair" and has_batchnorm(a.model):
        raise UserError(
            "bn 'repair' is for networks without BatchNorm; this model has BatchNorm: use recalibrate", param="bn"
        )
    use_bn = bn == "recalibrate" and has_batchnorm(a.model)
    plan = plan_recalibration(splits, bn_data, use_bn or bn == "repair", a.meta, bn_batch_size, bn_batches)
    bn_data = plan.data
    aligned = b
    if align != "none":
        aligned = align_checkpoints(a, b, align, _alignment_data(align, align_data, bn_data, splits), device=device)

    model = copy.deepcopy(a.model).to(device)  # never mutate the caller's model
    repair_targets = _repair_targets(a, aligned, bn_data, bn_batches, device) if bn == "repair" else None
    state_a = {k: v.to(device) for k, v in a.state.items()}
    state_b = {k: v.to(device) for k, v in aligned.state.items()}
    target = model.state_dict()
    float_keys = [k for k, v in state_a.items() if v.is_floating_point()]
    alphas = np.linspace(0.0, 1.0, points)
    alphas[0], alphas[-1] = 0.0, 1.0

    loss = np.zeros((len(splits), points))
    error = np.zeros((len(splits), points))
    bn_samples = 0
    stored = _stored_endpoints(model, (state_a, state_b), splits, device, fn) if use_bn else None
    progress = Progress(points, "interpolate", "α", quiet=quiet, lines=20)
    for i, alpha in enumerate(alphas):
        with torch.no_grad():
            for k in float_keys:
                torch.lerp(state_a[k], state_b[k], float(alpha), out=target[k])
            for k, v in state_a.items():
                if not v.is_floating_point():
                    target[k].copy_(v)
        if use_bn:
            bn_samples = plan.run(model, device)
        hooks = None
        if repair_targets is not None and 0.0 < alpha < 1.0:  # the endpoints are their own targets
            hooks = repair(model, interpolate_stats(*repair_targets, float(alpha)), bn_data, device, bn_batches)
        try:
            for j, split_data in enumerate(splits.values()):
                loss[j, i], error[j, i] = _nan_if_none(evaluate(model, split_data, device, fn))
        finally:
            if hooks is not None:
                hooks.remove()
        progress.update(1, f"α = {alpha:.3f}")
    progress.close()

    attrs = {
        **provenance(a=a, b=b),
        "bn": bn if (use_bn or bn == "repair") else "none",
        **plan.attrs(use_bn, bn_samples),
        **({"bn_data": plan.data_from} if bn == "repair" else {}),
        "loss": loss_name,
        "barrier_definition": kind,
        "connected_threshold": connected_threshold,
        "path": "theta(alpha) = (1 - alpha) * theta_a + alpha * theta_b over the full state dict",
        **(aligned.meta["alignment"] if align != "none" else {"align_method": "none"}),
    }
    has_error = not np.isnan(error).any()
    _non_finite_points(loss, error, alphas)
    variables = barrier_variables(
        "alpha", alphas, loss, error if has_error else None, barrier_kind=kind,
        connected_threshold=connected_threshold, loss_name=loss_name,
    )  # fmt: skip
    coords: dict[str, Any] = {"split": list(splits), "alpha": alphas}
    if stored is not None:
        note = "the endpoint evaluated as stored, with its own BatchNorm running statistics (no recalibration)"
        variables["stored_loss"] = xr.Variable(("split", "endpoint"), stored[0], {"units": "nats", "note": note})
        if has_error:
            variables["stored_error"] = xr.Variable(
                ("split", "endpoint"), stored[1], {"units": "fraction", "note": note}
            )
        coords["endpoint"] = ["a", "b"]
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _non_finite_points(loss: np.ndarray, error: np.ndarray, alphas: np.ndarray) -> None:
    """A non-finite loss makes its point's error NaN too (the argmax of NaN outputs is meaningless), so its
    barriers are NaN and the pair is not connected; said once, as a warning."""
    bad = ~np.isfinite(loss)
    if bad.any():
        error[bad] = np.nan
        where = ", ".join(f"{a:.3f}" for a in alphas[bad.any(axis=0)][:5])
        warnings.warn(f"non-finite loss at alpha = {where}: those points are NaN and the pair is not connected",
                      RuntimeWarning, stacklevel=3)  # fmt: skip


def _alignment_data(
    method: str, align_data: Iterable | None, bn_data: Iterable | None, splits: Mapping[str, Iterable]
) -> Iterable | None:
    """The data alignment reads: ``align_data``, else the recalibration data. Weight matching uses data
    only to trace a model's structure (input shapes), so any split serves it; activation matching
    correlates activations and never takes the data being evaluated."""
    if align_data is not None or bn_data is not None:
        return align_data if align_data is not None else bn_data
    if method == "activation-matching":
        raise UserError("activation matching needs training data: pass align_data or bn_data", param="align_data")
    return next(iter(splits.values()))


def _nan_if_none(result: tuple[float, float | None]) -> tuple[float, float]:
    """``(loss, error)`` with a missing error (no classification targets) as NaN, for the arrays."""
    return result[0], float("nan") if result[1] is None else result[1]


def _stored_endpoints(
    model: nn.Module, states: tuple, splits: Mapping[str, Iterable], device: torch.device, loss_fn: Callable | None
):
    """``(loss, error)`` arrays (split × endpoint) of the endpoints' full stored states, not recalibrated."""
    loss, error = np.zeros((len(splits), 2)), np.zeros((len(splits), 2))
    target = model.state_dict()
    for e, state in enumerate(states):
        with torch.no_grad():
            for k, v in state.items():
                target[k].copy_(v)
        for j, split_data in enumerate(splits.values()):
            loss[j, e], error[j, e] = _nan_if_none(evaluate(model, split_data, device, loss_fn))
    return loss, error


def _repair_targets(a: Checkpoint, b: Checkpoint, data: Iterable, batches: int | None, device: torch.device):
    """The endpoints' per-channel statistics at the modules the model declares as activations."""
    names = sorted({n for g in groups_of(a, example_inputs(data)) for n in g.activations})
    return tuple(channel_stats(copy.deepcopy(c.model).to(device), names, data, device, batches) for c in (a, b))
