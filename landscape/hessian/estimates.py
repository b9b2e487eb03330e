"""Traces, diagonals and spectral densities of curvature matrices of the training loss, as Datasets.

Operators, subspaces, data and parameter groups are those of :mod:`landscape.hessian.api`
(:func:`~landscape.hessian.factory.make_operator`). Estimators: Hutchinson and Hutch++ for the trace,
Hutchinson and Diag++ for the diagonal (:mod:`landscape.hessian.trace`), stochastic Lanczos quadrature
for the density (:func:`~landscape.hessian.algorithms.slq`). Units: traces, diagonals and density
nodes in nats per squared parameter unit (curvature of the mean loss).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from landscape.hessian.algorithms import density_on_grid, slq
from landscape.hessian.factory import LOSS, UNITS, group_attrs, make_operator, operator_groups, stack_groups
from landscape.hessian.groups import Params, parameter_groups
from landscape.hessian.trace import TRACE_METHODS, diagonal, hutchinson, hutchpp
from training.checkpoint import Checkpoint
from training.errors import UserError


def hessian_trace(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    *,
    mask: Mapping[str, torch.Tensor] | None = None,
    tol: float = 1e-2,
    max_probes: int = 100,
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    chunk_size: int = 1,
    loss_fn: Any = None,
    method: str = "hutchinson",
    sketch: int | None = None,
    operator: str = "hessian",
    per_layer: bool = False,
    params: Params | None = None,
    mc_samples: int = 1,
) -> xr.Dataset:
    """Trace of the curvature matrix on the subspace (``operator`` as in ``hessian_eigenvalues``):
    ``trace``, ``trace_stderr`` (standard error) and ``probes``, per ``group`` with ``params`` or
    ``per_layer`` (the trace of each principal sub-block).

    ``method="hutchinson"``: Rademacher probes in blocks of 10 until the standard error is ≤
    ``tol``·|trace| (at least 10 probes), at most ``max_probes``. ``method="hutchpp"``: Hutch++ with a
    sketch of ``sketch`` vectors (default a third of the budget) and ``max_probes`` products in all,
    stopping on the same rule. Each block is one pass over ``data``; ``chunk_size`` vectors share
    one vmapped product (more memory)."""
    if method not in TRACE_METHODS:
        raise UserError(f"unknown trace method {method!r}; choose from: {', '.join(TRACE_METHODS)}", param="method")
    op, _module, subspace, attrs = make_operator(
        model, data, operator=operator, mask=mask, subspace=subspace, device=device, seed=seed,
        mc_samples=mc_samples, chunk_size=chunk_size, loss_fn=loss_fn,
    )  # fmt: skip
    groups, grouped = operator_groups(op, per_layer=per_layer, params=params)
    parts = []
    flags = []
    for _label, g in groups:
        generator = torch.Generator().manual_seed(seed)
        if method == "hutchinson":
            r = hutchinson(g, tol=tol, max_probes=max_probes, min_probes=min(10, max_probes), generator=generator)
        else:
            r = hutchpp(g, tol=tol, max_matvecs=max_probes, sketch=sketch, generator=generator)
        flags.append(r.converged)
        part = xr.Dataset({"trace": r.trace, "trace_stderr": r.stderr, "probes": r.probes})
        if grouped:
            part["group_dimension"] = g.dim
            part["trace_hvp_count"] = g.matvecs
            part["sketch"] = r.sketch
        elif method == "hutchpp":
            attrs["sketch"] = r.sketch
        parts.append(part)
    ds = stack_groups(parts, [label for label, _ in groups], grouped)
    ds.attrs = {
        **attrs,
        **(group_attrs(groups) if grouped else {}),
        "trace_method": method,
        "subspace": subspace,
        "dimension": op.dim,
        "tol": tol,
        "seed": seed,
        "converged": int(all(flags)),
        "hvp_count": int(sum(g.matvecs for _, g in groups)),
        "loss": attrs.get("loss", LOSS),
    }
    ds["trace"].attrs["units"] = UNITS
    return ds


def hessian_diagonal(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    *,
    mask: Mapping[str, torch.Tensor] | None = None,
    method: str = "hutchinson",
    max_matvecs: int = 100,
    sketch: int | None = None,
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    chunk_size: int = 1,
    loss_fn: Any = None,
    operator: str = "hessian",
    params: Params | None = None,
    mc_samples: int = 1,
) -> xr.Dataset:
    """Estimate of the diagonal of the curvature matrix on the subspace from ``max_matvecs`` products:
    ``diagonal(coordinate)`` and ``diagonal_stderr(coordinate)`` (per-coordinate standard error; 0 where
    exact). ``method``: ``hutchinson`` or ``diag++`` (a sketch of ``sketch`` vectors, default a third of
    the budget, taken exactly). ``params`` (names or patterns) restricts the coordinates to those
    parameters. Coordinate c is entry ``flat_index[c]`` of the flattened parameter
    ``parameters[parameter_index[c]]`` (the attr ``parameters`` lists the names)."""
    op, _module, subspace, attrs = make_operator(
        model, data, operator=operator, mask=mask, subspace=subspace, device=device, seed=seed,
        mc_samples=mc_samples, chunk_size=chunk_size, loss_fn=loss_fn,
    )  # fmt: skip
    groups = parameter_groups(op.names, params=params)
    if groups is not None:
        op = op.restrict([n for n in op.names if any(n in members for _, members in groups)])
    generator = torch.Generator().manual_seed(seed)
    r = diagonal(op, method=method, max_matvecs=max_matvecs, sketch=sketch, generator=generator)
    which, flat = [], []
    for i, (p, idx) in enumerate(zip(op.params, op.index, strict=True)):
        positions = torch.arange(p.numel()) if idx is None else idx.cpu()
        which.append(np.full(len(positions), i, dtype=np.int32))
        flat.append(positions.numpy().astype(np.int64))
    ds = xr.Dataset(
        {
            "diagonal": ("coordinate", r.diagonal),
            "diagonal_stderr": ("coordinate", r.stderr),
            "parameter_index": ("coordinate", np.concatenate(which)),
            "flat_index": ("coordinate", np.concatenate(flat)),
        },
        attrs={
            **attrs,
            "diagonal_method": method,
            "parameters": json.dumps(op.names),
            "sketch": r.sketch,
            "probes": r.probes,
            "subspace": subspace,
            "dimension": op.dim,
            "seed": seed,
            "hvp_count": op.matvecs,
            "loss": attrs.get("loss", LOSS),
        },
    )
    ds["diagonal"].attrs["units"] = UNITS
    return ds


def hessian_density(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    *,
    mask: Mapping[str, torch.Tensor] | None = None,
    probes: int = 1,
    steps: int = 100,
    grid: int = 400,
    sigma: float | None = None,
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    operator: str = "hessian",
    per_layer: bool = False,
    params: Params | None = None,
    mc_samples: int = 1,
    loss_fn: Any = None,
) -> xr.Dataset:
    """SLQ spectral density: ``nodes(probe, node)``, ``weights(probe, node)`` and ``density(t)`` on a
    grid spanning the nodes (Gaussian kernel of width ``sigma``, default 1% of the node range); ``t`` and
    ``sigma`` in nats per squared parameter unit, ``density`` in its inverse (integrates to 1). The
    probes' Lanczos chains advance together, one block product per step. With ``params`` or
    ``per_layer``, one density per ``group`` (principal sub-block) on a common grid."""
    op, _module, subspace, attrs = make_operator(
        model,
        data,
        operator=operator,
        mask=mask,
        subspace=subspace,
        device=device,
        seed=seed,
        mc_samples=mc_samples,
        loss_fn=loss_fn,
    )
    groups, grouped = operator_groups(op, per_layer=per_layer, params=params)
    results = [slq(g, probes=probes, steps=steps, generator=torch.Generator().manual_seed(seed)) for _, g in groups]
    width = max(r.nodes.shape[1] for r in results)
    lo = min(float(np.nanmin(r.nodes)) for r in results)
    hi = max(float(np.nanmax(r.nodes)) for r in results)
    span = max(hi - lo, 1e-12)
    sigma = sigma or 0.01 * span
    t = np.linspace(lo - 0.05 * span, hi + 0.05 * span, grid)
    parts = []
    for r in results:
        nodes = np.full((probes, width), np.nan)
        weights = np.zeros((probes, width))
        nodes[:, : r.nodes.shape[1]] = r.nodes
        weights[:, : r.weights.shape[1]] = r.weights
        parts.append(
            xr.Dataset(
                {
                    "nodes": (("probe", "node"), nodes),
                    "weights": (("probe", "node"), weights),
                    "density": ("t", density_on_grid(nodes, weights, t, sigma=sigma)),
                },
                coords={"t": t},
            )
        )
    ds = stack_groups(parts, [label for label, _ in groups], grouped)
    ds.attrs = {
        **attrs,
        **(group_attrs(groups) if grouped else {}),
        "subspace": subspace,
        "dimension": op.dim,
        "sigma": sigma,
        "steps": steps,
        "seed": seed,
        "hvp_count": int(sum(g.matvecs for _, g in groups)),
    }
    return ds
