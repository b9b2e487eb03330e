"""Mode-connecting curves between two checkpoints (Garipov et al. 2018), for sparse networks.

Curves. With endpoints θ_A, θ_B and a trainable bend θ_C, for t ∈ [0, 1]:

* ``"bezier"``: the quadratic Bezier curve φ(t) = (1 − t)²θ_A + 2t(1 − t)θ_C + t²θ_B, evaluated by
  de Casteljau's construction with ``torch.lerp`` (exactly θ_A at t = 0 and θ_B at t = 1);
* ``"polychain"``: the polygonal chain θ_A → θ_C → θ_B, with θ_C at t = ½.

With θ_C at the midpoint ½(θ_A + θ_B) both are the straight line θ_A + t(θ_B − θ_A).

Training (:func:`fit_curve`). The bend starts at the midpoint; each step draws t ~ U(0, 1) (a seeded
generator), evaluates the loss of the network with parameters φ(t) on one training batch (BatchNorm in
train mode, i.e. batch statistics) and takes an SGD step on θ_C. The learning rate follows Garipov et
al.'s schedule: constant for the first half of the epochs, then linear down to 1% of it at 90%, then
constant. Only parameters are on the curve; running statistics are recomputed at every evaluated t.

Masks. For sparse endpoints the bend lives on the union of the two masks (``mask="union"``, the
default) or their intersection: its coordinates outside that set are exactly zero at the start and
stay so (their gradients are zeroed and the bend is re-masked after every step). Coordinates pruned in
both endpoints and outside the bend's mask are therefore exactly zero all along the curve.

Evaluation (:func:`evaluate_curve`). At ``points`` evenly spaced values of t the network φ(t) (float
buffers interpolated linearly, then, for models with BatchNorm, recalibrated on ``bn_data`` as in
:func:`landscape.connectivity.interpolate.recalibrate_bn`) is evaluated on each split; the Dataset has the same
barrier variables as :func:`landscape.connectivity.interpolate.interpolate` with ``t`` in place of ``alpha``, and
the path length ∫‖φ'(t)‖dt over the parameters (64-point Gauss-Legendre for the Bezier curve).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.func import functional_call
from torch.nn import functional as F
from tqdm.auto import tqdm

from landscape.connectivity.align import align as align_checkpoints
from landscape.connectivity.interpolate import (
    AT_LEAST_TWO,
    CONNECTED_THRESHOLD,
    _nan_if_none,
    as_splits,
    barrier_definition,
    barrier_variables,
    has_batchnorm,
    recalibration_data,
)
from landscape.connectivity.recalibration import plan_recalibration
from landscape.results import provenance
from landscape.sources import as_source, resolve_loss
from training.checkpoint import Checkpoint, check_compatible, check_same_data
from training.checks import AT_LEAST_ONE, COUNT, FRACTION, MAX_PATH_POINTS, NON_NEGATIVE, POSITIVE, check_number
from training.errors import DivergedError, UserError
from training.evaluate import evaluate, resolve_device
from training.fileio import derive_seed

CURVE_KINDS = ("bezier", "polychain")
MASK_MODES = ("union", "intersection")


def curve_point(kind: str, a: torch.Tensor, bend: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """φ(t) of one tensor (see the module doc); differentiable in ``bend``."""
    if kind == "bezier":
        return torch.lerp(torch.lerp(a, bend, t), torch.lerp(bend, b, t), t)
    if kind == "polychain":
        return torch.lerp(a, bend, 2 * t) if t <= 0.5 else torch.lerp(bend, b, 2 * t - 1)
    raise UserError(f"kind must be one of {', '.join(CURVE_KINDS)}; got {kind!r}", param="kind")


def lr_factor(epoch: int, epochs: int) -> float:
    """Garipov et al.'s schedule: 1 for the first half, linear to 0.01 at 90% of the epochs, then 0.01."""
    x = epoch / max(epochs, 1)
    if x <= 0.5:
        return 1.0
    if x <= 0.9:
        return 1.0 - 0.99 * (x - 0.5) / 0.4
    return 0.01


def _param_names(ckpt: Checkpoint) -> list[str]:
    return [n for n, p in ckpt.model.named_parameters() if p.is_floating_point()]


def bend_mask(a: Checkpoint, b: Checkpoint, mode: str = "union") -> dict[str, torch.Tensor]:
    """Where the bend may be non-zero: the union or intersection of the endpoints' masks."""
    if mode not in MASK_MODES:
        raise UserError(f"mask (of the bend) must be one of {', '.join(MASK_MODES)}; got {mode!r}", param="mask")
    op = torch.logical_or if mode == "union" else torch.logical_and
    return {n: op(a.mask[n], b.mask[n]) for n in a.mask}


def midpoint_bend(a: Checkpoint, b: Checkpoint, mask: str = "union") -> Checkpoint:
    """A bend at ½(θ_A + θ_B) (float buffers too), zero outside :func:`bend_mask`; meta and model as A's."""
    check_compatible(a, b)
    chosen = bend_mask(a, b, mask)
    state = {}
    for k, v in a.state.items():
        state[k] = torch.lerp(v, b.state[k], 0.5) if v.is_floating_point() else v.clone()
        if k in chosen:
            state[k] = state[k] * chosen[k]
    model = copy.deepcopy(a.model)
    model.load_state_dict(state)
    meta = {**a.meta, "curve": {"kind": None, "mask": mask, "epochs": 0}}
    return Checkpoint(model, chosen, meta, state)


def fit_curve(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    train_data: Iterable | Callable[[int], Iterable],
    *,
    kind: str = "bezier",
    epochs: int = 10,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    mask: str = "union",
    seed: int = 0,
    loss_fn: str | Callable | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> Checkpoint:
    """Train the bend of a ``kind`` curve between A and B; see the module doc.

    ``train_data`` is an iterable of ``(inputs, targets)`` batches, re-iterated every epoch, or a
    function ``epoch → iterable``. Returns the bend as a :class:`Checkpoint` (A's model and meta plus
    ``meta["curve"]``: kind, mask, epochs, lr, momentum, weight_decay, seed and ``train_loss``, the
    mean training loss of each epoch in nats); its mask is the bend's mask.
    """
    if kind not in CURVE_KINDS:
        raise UserError(f"kind must be one of {', '.join(CURVE_KINDS)}; got {kind!r}", param="kind")
    check_number(epochs, "epochs", COUNT)
    check_number(lr, "lr", POSITIVE)
    check_number(momentum, "momentum", FRACTION)
    check_number(weight_decay, "weight_decay", NON_NEGATIVE)
    fn, _ = resolve_loss(loss_fn)
    fn = fn or F.cross_entropy
    a, b = as_source(ckpt_a, param="ckpt_a"), as_source(ckpt_b, param="ckpt_b")
    bend = midpoint_bend(a, b, mask)
    device = resolve_device(device)
    names = _param_names(a)
    ends = [{n: c.state[n].to(device) for n in names} for c in (a, b)]
    theta_c = {n: bend.state[n].to(device).clone().requires_grad_(True) for n in names}
    keep = {n: m.to(device) for n, m in bend.mask.items()}
    buffers = {k: v.to(device).clone() for k, v in bend.state.items() if k not in theta_c}
    model = copy.deepcopy(a.model).to(device).train()
    opt = torch.optim.SGD(theta_c.values(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(derive_seed(seed, "curve-t"))
    history = []
    for epoch in tqdm(range(epochs), desc=f"{kind} curve", unit="epoch", disable=quiet or None, leave=False):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(epoch, epochs)
        total, count = 0.0, 0
        for x, y in train_data(epoch) if callable(train_data) else train_data:
            x, y = x.to(device), y.to(device)
            t = float(torch.rand((), generator=gen))
            params = {n: curve_point(kind, ends[0][n], theta_c[n], ends[1][n], t) for n in names}
            loss = fn(functional_call(model, {**params, **buffers}, (x,)), y)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            with torch.no_grad():
                for n, m in keep.items():
                    theta_c[n].grad.mul_(m)
                opt.step()
                for n, m in keep.items():
                    theta_c[n].mul_(m)
            total += loss.item() * len(y)
            count += len(y)
        if count == 0:
            raise UserError("curve training needs data: the training iterable is empty")
        history.append(total / count)
        if not np.isfinite(history[-1]):
            raise DivergedError(f"curve training diverged in epoch {epoch + 1} (loss {history[-1]}); lower --lr")
    state = {**bend.state, **{n: theta_c[n].detach().cpu().clone() for n in names}}
    bend.model.load_state_dict(state)
    bend.state = state
    bend.meta = {
        **a.meta,
        "curve": {
            "kind": kind,
            "mask": mask,
            "epochs": epochs,
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "seed": seed,
            "train_loss": history,
        },
    }
    return bend


def path_length(kind: str, a: Checkpoint, bend: Checkpoint, b: Checkpoint) -> float:
    """∫₀¹ ‖φ'(t)‖ dt over the parameters (``kind`` ``"line"`` for the straight line θ_A → θ_B)."""
    names = _param_names(a)

    def dot(x: dict, y: dict) -> float:
        return float(sum((x[n].double() * y[n].double()).sum() for n in names))

    u = {n: bend.state[n] - a.state[n] for n in names}
    v = {n: b.state[n] - bend.state[n] for n in names}
    if kind == "line":
        d = {n: b.state[n] - a.state[n] for n in names}
        return dot(d, d) ** 0.5
    if kind == "polychain":
        return dot(u, u) ** 0.5 + dot(v, v) ** 0.5
    uu, uv, vv = dot(u, u), dot(u, v), dot(v, v)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    t = (nodes + 1) / 2
    speed2 = 4 * ((1 - t) ** 2 * uu + 2 * t * (1 - t) * uv + t**2 * vv)
    return float(np.sum(weights / 2 * np.sqrt(np.maximum(speed2, 0.0))))


def evaluate_curve(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    bend: Checkpoint,
    data: Iterable | Mapping[str, Iterable],
    *,
    kind: str = "bezier",
    points: int = 31,
    bn_data: Iterable | None = None,
    bn_batches: int | None = None,
    bn_batch_size: int | None = None,
    barrier_kind: str = "endpoint-mean",
    connected_threshold: float = CONNECTED_THRESHOLD,
    loss_fn: str | Callable | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> xr.Dataset:
    """Loss and error along the ``kind`` curve through ``bend`` at ``points`` values of t; see the
    module doc. ``data``, ``bn_data`` and ``bn_batch_size`` as in
    :func:`landscape.connectivity.interpolate.interpolate`.

    Returns ``loss(split, t)``, ``error(split, t)``, the barrier variables of
    :func:`landscape.connectivity.interpolate.barrier_variables`, ``path_length`` and ``linear_path_length``
    (parameter-space lengths of the curve and of the straight line), ``train_loss(epoch)`` when the
    bend was trained, and provenance attrs for ``a``, ``b`` and ``bend``.
    """
    check_number(points, "points", AT_LEAST_TWO)
    check_number(points, "points", MAX_PATH_POINTS)
    check_number(bn_batches, "bn_batches", AT_LEAST_ONE)
    if kind not in CURVE_KINDS:
        raise UserError(f"kind must be one of {', '.join(CURVE_KINDS)}; got {kind!r}", param="kind")
    fn, loss_name = resolve_loss(loss_fn)
    a, b = as_source(ckpt_a, param="ckpt_a"), as_source(ckpt_b, param="ckpt_b")
    check_compatible(a, b)
    check_compatible(a, bend)
    splits = as_splits(data)
    device = resolve_device(device)
    model = copy.deepcopy(a.model).to(device)
    use_bn = has_batchnorm(model)
    plan = plan_recalibration(splits, bn_data, use_bn, a.meta, bn_batch_size, bn_batches)
    bn_samples = 0
    names = set(_param_names(a))
    ends = [{k: v.to(device) for k, v in c.state.items()} for c in (a, b)]
    mid = {k: bend.state[k].to(device) for k in names}
    target = model.state_dict()
    ts = np.linspace(0.0, 1.0, points)
    ts[0], ts[-1] = 0.0, 1.0
    loss = np.zeros((len(splits), points))
    error = np.zeros((len(splits), points))
    for i, t in enumerate(tqdm(ts, desc=f"{kind} curve", unit="t", disable=quiet or None, leave=False)):
        with torch.no_grad():
            for k, va in ends[0].items():
                if k in names:
                    target[k].copy_(curve_point(kind, va, mid[k], ends[1][k], float(t)))
                elif va.is_floating_point():
                    torch.lerp(va, ends[1][k], float(t), out=target[k])
                else:
                    target[k].copy_(va)
        if use_bn:
            bn_samples = plan.run(model, device)
        for j, split_data in enumerate(splits.values()):
            loss[j, i], error[j, i] = _nan_if_none(evaluate(model, split_data, device, fn))
    variables = barrier_variables(
        "t", ts, loss, None if np.isnan(error).any() else error, barrier_kind=barrier_kind,
        connected_threshold=connected_threshold, loss_name=loss_name,
    )  # fmt: skip
    variables["path_length"] = xr.Variable((), path_length(kind, a, bend, b), {"units": "L2 norm of parameters"})
    variables["linear_path_length"] = xr.Variable(
        (), path_length("line", a, bend, b), {"units": "L2 norm of parameters"}
    )
    info = bend.meta.get("curve", {})
    coords: dict = {"split": list(splits), "t": ts}
    if info.get("train_loss"):
        variables["train_loss"] = xr.Variable("epoch", np.asarray(info["train_loss"]), {"units": "nats"})
        coords["epoch"] = np.arange(1, len(info["train_loss"]) + 1)
    attrs = {
        **provenance(a=a, b=b),
        "kind": kind,
        "loss": loss_name,
        "curve": json.dumps({k: v for k, v in info.items() if k != "train_loss"}, sort_keys=True),
        "bn": "recalibrate" if use_bn else "none",
        **plan.attrs(use_bn, bn_samples),
        "barrier_definition": barrier_definition(barrier_kind),
        "connected_threshold": connected_threshold,
        **b.meta.get("alignment", {"align_method": "none"}),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def curve(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    data: Iterable | Mapping[str, Iterable],
    train_data: Iterable | Callable[[int], Iterable],
    *,
    kind: str = "bezier",
    epochs: int = 10,
    points: int = 31,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    mask: str = "union",
    align: str = "none",
    bn_data: Iterable | None = None,
    bn_batches: int | None = None,
    bn_batch_size: int | None = None,
    barrier_kind: str = "endpoint-mean",
    connected_threshold: float = CONNECTED_THRESHOLD,
    seed: int = 0,
    allow_different_data: bool = False,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    checkpoint_mask: str = "auto",
    loss_fn: str | Callable | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> tuple[xr.Dataset, Checkpoint]:
    """Align B to A (``align``, as in :func:`landscape.connectivity.interpolate.interpolate`), train a ``kind``
    curve's bend (:func:`fit_curve`) and evaluate the curve (:func:`evaluate_curve`). Returns the
    Dataset and the bend checkpoint. Checkpoints trained on different data are refused unless
    ``allow_different_data``. Other files load with ``model``, ``model_args`` and ``checkpoint_mask``
    (the ``mask`` of :func:`landscape.sources.load`; ``mask`` here is the bend's); ``loss_fn`` as in
    :func:`landscape.interpolate`, for training the bend and evaluating the curve."""
    source = {"model": model, "model_args": model_args, "mask": checkpoint_mask}
    a, b = as_source(ckpt_a, param="ckpt_a", **source), as_source(ckpt_b, param="ckpt_b", **source)
    check_compatible(a, b)
    if not allow_different_data:
        check_same_data(a, b)
    check_number(points, "points", AT_LEAST_TWO)  # before an hour of training the bend
    check_number(points, "points", MAX_PATH_POINTS)
    splits = as_splits(data)
    bn_data, _ = recalibration_data(splits, bn_data, needed=has_batchnorm(a.model) or align == "activation-matching")
    if align != "none":
        b = align_checkpoints(a, b, align, bn_data, device=device)
    bend = fit_curve(
        a, b, train_data, kind=kind, epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
        mask=mask, seed=seed, loss_fn=loss_fn, device=device, quiet=quiet,
    )  # fmt: skip
    ds = evaluate_curve(
        a, b, bend, splits, kind=kind, points=points, bn_data=bn_data, bn_batches=bn_batches,
        bn_batch_size=bn_batch_size, barrier_kind=barrier_kind, connected_threshold=connected_threshold,
        loss_fn=loss_fn, device=device, quiet=quiet,
    )  # fmt: skip
    return ds, bend
