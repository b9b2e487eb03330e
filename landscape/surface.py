"""Loss surfaces: slices along random directions and the plane through three checkpoints.

Random directions (Li et al. 2018). For every parameter tensor θ_p a Gaussian direction d_p is drawn,
multiplied by the mask (so a sparse model stays sparse), and **filter-normalised**: each filter
(slice along the first dimension) is rescaled to the norm of the same filter of θ,
``d_f ← d_f · ‖θ_f‖ / ‖d_f‖``. Directions of 1-D parameters (biases, BatchNorm) are zero by default
(``ignore_biasbn``), as in loss-landscape's ``--xignore biasbn``. The surface is evaluated at
θ + x·d₁ (+ y·d₂); BatchNorm buffers stay the centre's unless ``bn="recalibrate"``.

Plane (Garipov et al. 2018). With u = θ_B − θ_A and v = θ_C − θ_A over the floating-point state
(parameters and BN buffers), the orthonormal basis û = u/‖u‖, v̂ = (v − (v·û)û)/‖…‖ spans the plane
and θ(x, y) = θ_A + x·û + y·v̂. A sits at (0, 0), B at (‖u‖, 0), C at (v·û, ‖v − (v·û)û‖); the
coordinates are in parameter-space units. ``bn="recalibrate"`` (default for BN models) recomputes
the running statistics at every grid point.

Values: ``loss`` is mean cross-entropy (nats), ``error`` is 1 − accuracy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from landscape.connectivity.recalibration import Recalibration, has_batchnorm, plan_recalibration
from landscape.results import provenance
from landscape.sources import as_source, check_batches, resolve_loss
from training.checkpoint import Checkpoint, check_compatible
from training.checks import AT_LEAST_TWO, MAX_GRID_AXIS, Range, check_number
from training.errors import UserError
from training.evaluate import evaluate, resolve_device
from training.progress import Progress


def random_direction(
    state: Mapping[str, torch.Tensor],
    param_names: Sequence[str],
    mask: Mapping[str, torch.Tensor] | None,
    generator: torch.Generator,
    ignore_biasbn: bool = True,
) -> dict[str, torch.Tensor]:
    """A filter-normalised Gaussian direction over ``param_names`` (see the module docstring)."""
    direction = {}
    for name in param_names:
        w = state[name]
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w.dtype)
        if w.dim() <= 1:
            direction[name] = torch.zeros_like(w) if ignore_biasbn else w.clone()
            continue
        if mask is not None and name in mask:
            d = d * mask[name].to(d.dtype)
        d_norm = d.flatten(1).norm(dim=1).clamp_min(1e-10)
        w_norm = w.flatten(1).norm(dim=1)
        direction[name] = d * (w_norm / d_norm).view(-1, *([1] * (w.dim() - 1)))
    return direction


def _grid(span: Sequence[float], n: int) -> np.ndarray:
    check_number(n, "grid", AT_LEAST_TWO)
    check_number(n, "grid", MAX_GRID_AXIS)
    if len(span) != 2:
        raise UserError(f"span must be two numbers, got {list(span)}", param="span")
    for end in span:
        check_number(end, "span", Range())
    lo, hi = float(span[0]), float(span[1])
    if not hi > lo:
        raise UserError(f"span must be increasing, got {list(span)}", param="span")
    return np.linspace(lo, hi, n)


def _evaluate_states(
    model: torch.nn.Module,
    base: Mapping[str, torch.Tensor],
    dirs: list[dict[str, torch.Tensor]],
    coords: list[np.ndarray],
    data: Iterable,
    bn: bool,
    plan: Recalibration,
    device: torch.device,
    quiet: bool,
    loss_fn: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss and error (``None`` without classification targets) at every grid point."""
    shape = tuple(len(c) for c in coords)
    loss, error = np.zeros(shape), np.zeros(shape)
    target = model.state_dict()
    points = list(np.ndindex(*shape))
    progress = Progress(len(points), "surface", "points", quiet=quiet, lines=20)
    for idx in points:
        with torch.no_grad():
            for k, v in base.items():
                t = v.clone()
                for d, c, i in zip(dirs, coords, idx, strict=True):
                    if k in d:
                        t.add_(d[k], alpha=float(c[i]))
                target[k].copy_(t)
        if bn:
            plan.run(model, device)
        loss[idx], err = evaluate(model, data, device, loss_fn)
        error[idx] = np.nan if err is None else err
        progress.update(1)
    progress.close()
    return loss, (None if np.isnan(error).any() else error)


def _bn_attrs(plan: Recalibration, used: bool) -> dict[str, Any]:
    """Which data and batch size recalibrated BatchNorm at every grid point."""
    return {k: v for k, v in plan.attrs(used).items() if k in ("bn_data", "bn_batch_size", "bn_batch_size_from")}


def _metric_variables(dims: tuple[str, ...], loss: np.ndarray, error: np.ndarray | None, loss_name: str) -> dict:
    """``loss`` (and ``error`` for classification targets) as Dataset variables with their units."""
    units = "nats (mean cross-entropy)" if loss_name == "cross-entropy" else f"mean {loss_name} per sample"
    out = {"loss": xr.Variable(dims, loss, {"units": units})}
    if error is not None:
        out["error"] = xr.Variable(dims, error, {"units": "fraction (1 - accuracy)"})
    return out


def surface(
    ckpt: Checkpoint | str,
    data: Iterable,
    directions: int = 2,
    grid: int = 21,
    span: Sequence[float] = (-1.0, 1.0),
    seed: int = 0,
    bn: str = "none",
    bn_data: Iterable | None = None,
    ignore_biasbn: bool = True,
    bn_batch_size: int | None = None,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str = "auto",
    loss_fn: str | Callable | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> xr.Dataset:
    """Loss and error on a 1-D (``directions=1``: dims ``x``) or 2-D (dims ``x``, ``y``) grid of
    ``grid`` points per axis over ``span``, along filter-normalised random directions that respect
    the checkpoint's mask. The directions are reproducible from ``seed`` (stored in the attrs)."""
    if directions not in (1, 2) or isinstance(directions, bool):
        raise UserError(f"directions must be 1 or 2, got {directions}", param="directions")
    if bn not in ("none", "recalibrate"):
        raise UserError(f"unknown BN mode {bn!r}; choose from: none, recalibrate")
    fn, loss_name = resolve_loss(loss_fn)
    check_batches(data)
    c = as_source(ckpt, model=model, model_args=model_args, mask=mask)
    device = resolve_device(device)
    model = copy.deepcopy(c.model).to(device)
    names = [n for n, _ in model.named_parameters()]
    gen = torch.Generator().manual_seed(seed)
    dirs = [random_direction(c.state, names, c.mask, gen, ignore_biasbn) for _ in range(directions)]
    dirs = [{k: v.to(device) for k, v in d.items()} for d in dirs]
    base = {k: v.to(device) for k, v in c.state.items() if v.is_floating_point()}
    axes = [_grid(span, grid) for _ in range(directions)]
    use_bn = bn == "recalibrate" and has_batchnorm(model)
    plan = plan_recalibration({}, bn_data, use_bn, c.meta, bn_batch_size)
    loss, error = _evaluate_states(model, base, dirs, axes, data, use_bn, plan, device, quiet, fn)
    dims = ("x", "y")[:directions]
    ds = xr.Dataset(
        _metric_variables(dims, loss, error, loss_name),
        coords={d: a for d, a in zip(dims, axes, strict=True)},
        attrs={
            **provenance(checkpoint=c),
            "kind": "random directions",
            "normalization": "filter",
            "ignore_biasbn": int(ignore_biasbn),
            "seed": seed,
            "loss": loss_name,
            "bn": "recalibrate" if use_bn else "none",
            **_bn_attrs(plan, use_bn),
        },
    )
    return ds


def plane_basis(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], c: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], np.ndarray]:
    """Orthonormal basis (û, v̂) of the plane through three states and the (x, y) of A, B, C (3 × 2)."""
    keys = [k for k, v in a.items() if v.is_floating_point()]
    u = {k: (b[k] - a[k]).double() for k in keys}
    v = {k: (c[k] - a[k]).double() for k in keys}

    def dot(p: dict, q: dict) -> float:
        return float(sum((p[k] * q[k]).sum() for k in keys))

    nu = dot(u, u) ** 0.5
    if nu == 0:
        raise UserError("checkpoints A and B are identical; the plane is undefined")
    u_hat = {k: u[k] / nu for k in keys}
    proj = dot(v, u_hat)
    v_perp = {k: v[k] - proj * u_hat[k] for k in keys}
    nv = dot(v_perp, v_perp) ** 0.5
    if nv <= 1e-12 * max(nu, 1.0):
        raise UserError("the three checkpoints are collinear; the plane is undefined")
    v_hat = {k: v_perp[k] / nv for k in keys}
    points = np.array([[0.0, 0.0], [nu, 0.0], [proj, nv]])
    return u_hat, v_hat, points


def plane(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    ckpt_c: Checkpoint | str,
    data: Iterable,
    grid: int = 21,
    margin: float = 0.2,
    x: Sequence[float] | None = None,
    y: Sequence[float] | None = None,
    bn: str = "recalibrate",
    bn_data: Iterable | None = None,
    bn_batch_size: int | None = None,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str = "auto",
    loss_fn: str | Callable | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> xr.Dataset:
    """Loss and error on the plane through three checkpoints (dims ``x``, ``y``), with variables
    ``point_x(point)``, ``point_y(point)`` locating A, B, C. The default grid covers the three points
    plus ``margin`` of their extent on each side; ``x``/``y`` give explicit coordinates instead."""
    if bn not in ("none", "recalibrate"):
        raise UserError(f"unknown BN mode {bn!r}; choose from: none, recalibrate", param="bn")
    check_number(grid, "grid", AT_LEAST_TWO)
    check_number(grid, "grid", MAX_GRID_AXIS)
    check_number(margin, "margin", Range(ge=0))
    fn, loss_name = resolve_loss(loss_fn)
    check_batches(data)
    a, b, c = (as_source(k, model=model, model_args=model_args, mask=mask, param=p)
               for k, p in ((ckpt_a, "ckpt_a"), (ckpt_b, "ckpt_b"), (ckpt_c, "ckpt_c")))  # fmt: skip
    check_compatible(a, b)
    check_compatible(a, c)
    device = resolve_device(device)
    u_hat, v_hat, points = plane_basis(a.state, b.state, c.state)
    if x is None or y is None:
        lo, hi = points.min(0), points.max(0)
        ext = np.maximum(hi - lo, 1e-12)
        x = _grid((lo[0] - margin * ext[0], hi[0] + margin * ext[0]), grid) if x is None else x
        y = _grid((lo[1] - margin * ext[1], hi[1] + margin * ext[1]), grid) if y is None else y
    axes = [np.asarray(x, dtype=float), np.asarray(y, dtype=float)]
    model = copy.deepcopy(a.model).to(device)
    dtype = next(model.parameters()).dtype
    base = {k: v.to(device) for k, v in a.state.items() if v.is_floating_point()}
    dirs = [{k: v.to(device=device, dtype=dtype) for k, v in d.items()} for d in (u_hat, v_hat)]
    use_bn = bn == "recalibrate" and has_batchnorm(model)
    plan = plan_recalibration({}, bn_data, use_bn, a.meta, bn_batch_size)
    loss, error = _evaluate_states(model, base, dirs, axes, data, use_bn, plan, device, quiet, fn)
    ds = xr.Dataset(
        {
            **_metric_variables(("x", "y"), loss, error, loss_name),
            "point_x": ("point", points[:, 0]),
            "point_y": ("point", points[:, 1]),
        },
        coords={"x": axes[0], "y": axes[1], "point": ["a", "b", "c"]},
        attrs={
            **provenance(a=a, b=b, c=c),
            "kind": "plane through three checkpoints",
            "loss": loss_name,
            "bn": "recalibrate" if use_bn else "none",
            **_bn_attrs(plan, use_bn),
            "units_xy": "parameter-space distance",
        },
    )
    return ds
