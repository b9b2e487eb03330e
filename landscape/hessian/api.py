"""Hessian spectra of the training loss on a parameter subspace, as Datasets.

Operator: :class:`~landscape.hessian.operators.HessianOperator`. The Hessian is that of the **mean
cross-entropy over all of** ``data`` (batch losses weighted by batch size), with the model in **eval
mode**, w.r.t. a flat vector of coordinates. ``subspace="mask"`` (the default when a mask is given)
keeps every parameter except the pruned entries of the masked ones, so a sparse network's spectrum
lives on its sparse subspace (rigl's "sparse spectrum"); ``subspace="dense"`` uses every coordinate, as
PyHessian does. ``data`` is read once into a list of batches (a generator works).

Algorithms (:mod:`landscape.hessian.algorithms`) are pure functions of the operator:

* ``lanczos`` — top-k by Lanczos with full reorthogonalisation; converged when every residual estimate
  ``β_m |s_{m,i}|`` is at most ``tol · |θ_i|``; an invariant Krylov space (low rank, repeated
  eigenvalues) is handled by restarting, so k eigenvalues always come back;
* ``eigsh`` — scipy's ARPACK ``eigsh`` (``which="LA"``), at most ``max_iter`` products;
* ``power`` — deflated power iteration as PyHessian (largest *magnitude*);
* ``pyhessian`` — the PyHessian package itself, as a cross-check (dense only);
* Hutchinson for the trace, stochastic Lanczos quadrature for the density.

Units: eigenvalues and traces are in nats per squared parameter unit (curvature of the mean loss).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from landscape.hessian.algorithms import (
    SpectrumResult,
    _check_k,
    density_on_grid,
    eigsh,
    hutchinson,
    lanczos,
    power_iteration,
    slq,
)
from landscape.hessian.operators import HessianOperator
from landscape.hessian.pyhessian_backend import pyhessian_eigenvalues
from landscape.results import provenance
from training.checkpoint import Checkpoint, as_checkpoint
from training.errors import UserError
from training.evaluate import resolve_device

EIGEN_METHODS: dict[str, Callable[..., SpectrumResult]] = {
    "lanczos": lanczos,
    "eigsh": eigsh,
    "power": power_iteration,
}
METHODS = (*EIGEN_METHODS, "pyhessian")


def _operator(
    model: Any, data: Iterable, mask: Any, subspace: str | None, device: Any, **options: Any
) -> tuple[HessianOperator, nn.Module, str, dict[str, Any]]:
    """The operator for a module, checkpoint or path; ``mask`` defaults to the checkpoint's."""
    attrs: dict[str, Any] = {}
    if isinstance(model, Checkpoint | str | os.PathLike):
        ckpt = as_checkpoint(model)
        attrs = provenance(checkpoint=ckpt)
        model = ckpt.model
        mask = ckpt.mask if mask is None else mask
    if subspace is None:
        subspace = "mask" if mask else "dense"
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(
        model, data, mask=mask if subspace == "mask" else None, subspace=subspace, device=dev, **options
    )
    return op, model, subspace, attrs


def hessian_eigenvalues(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    *,
    k: int = 1,
    mask: Mapping[str, torch.Tensor] | None = None,
    tol: float = 1e-3,
    max_iter: int = 100,
    method: str = "lanczos",
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    criterion: str = "residual",
) -> xr.Dataset:
    """Top-k Hessian eigenvalues of the mean cross-entropy over ``data`` (eval mode).

    ``model`` may be a module, a :class:`Checkpoint` or a path (then ``mask`` defaults to its mask).
    ``subspace`` defaults to ``mask`` when a mask is given, else ``dense``. ``method``: lanczos,
    eigsh, power or pyhessian (the PyHessian package, dense only, as a cross-check). ``max_iter``
    bounds the Hessian-vector products (Lanczos steps, ARPACK products; power: per eigenvalue).
    ``criterion`` (lanczos only): ``residual`` (default) or ``change`` (PyHessian's relative-change test).
    Returns a Dataset with ``eigenvalue(k)`` (descending), ``residual(k)`` and ``iterations(k)``; attrs
    include ``hvp_count`` and ``converged`` (1/0; absent for pyhessian, which does not say).
    """
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}", param="method")
    op, module, subspace, attrs = _operator(model, data, mask, subspace, device)
    _check_k(k, op.dim)
    generator = torch.Generator().manual_seed(seed)
    if method == "pyhessian":
        if subspace != "dense":
            raise UserError("method pyhessian needs subspace dense (it covers every parameter)", param="subspace")
        result = pyhessian_eigenvalues(module, op.batches, k=k, tol=tol, max_iter=max_iter, seed=seed, device=op.device)
    elif method == "lanczos":
        result = lanczos(op, k=k, tol=tol, max_iter=max_iter, generator=generator, criterion=criterion)
    else:
        result = EIGEN_METHODS[method](op, k=k, tol=tol, max_iter=max_iter, generator=generator)
    if result.converged is not None:
        attrs["converged"] = int(result.converged)
    ds = xr.Dataset(
        {
            "eigenvalue": ("k", result.eigenvalues.astype(float)),
            "residual": ("k", result.residuals.astype(float)),
            "iterations": ("k", result.iterations.astype(np.int64)),
        },
        coords={"k": np.arange(1, k + 1)},
        attrs={
            **attrs,
            "method": method,
            "subspace": subspace,
            "dimension": op.dim,
            "tol": tol,
            "max_iter": max_iter,
            "hvp_count": op.matvecs,
            "n_samples": op.n_samples,
            "seed": seed,
            "loss": "mean cross-entropy over all of data, eval mode",
        },
    )
    ds["eigenvalue"].attrs["units"] = "curvature of the mean loss (nats per squared parameter unit)"
    ds["residual"].attrs["definition"] = "||Hv - lambda v|| (Lanczos: the estimate beta_m |s_mi|)"
    return ds


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
) -> xr.Dataset:
    """Hutchinson estimate of the Hessian trace on the subspace: ``trace``, ``trace_stderr``, ``probes``
    (nats per squared parameter unit). Probes go through the operator in blocks of 10, one pass over
    ``data`` per block; ``chunk_size`` of them share one vmapped double-backward (more memory)."""
    op, _module, subspace, attrs = _operator(model, data, mask, subspace, device, chunk_size=chunk_size)
    result = hutchinson(
        op,
        tol=tol,
        max_probes=max_probes,
        min_probes=min(10, max_probes),
        generator=torch.Generator().manual_seed(seed),
    )
    return xr.Dataset(
        {"trace": result.trace, "trace_stderr": result.stderr, "probes": result.probes},
        attrs={
            **attrs,
            "subspace": subspace,
            "dimension": op.dim,
            "tol": tol,
            "seed": seed,
            "converged": int(result.converged),
            "hvp_count": op.matvecs,
        },
    )


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
) -> xr.Dataset:
    """SLQ spectral density: ``nodes(probe, node)``, ``weights(probe, node)`` and ``density(t)`` on a
    grid spanning the nodes (Gaussian kernel of width ``sigma``, default 1% of the node range); ``t`` and
    ``sigma`` in nats per squared parameter unit, ``density`` in its inverse (integrates to 1)."""
    op, _module, subspace, attrs = _operator(model, data, mask, subspace, device)
    result = slq(op, probes=probes, steps=steps, generator=torch.Generator().manual_seed(seed))
    nodes, weights = result.nodes, result.weights
    lo, hi = float(np.nanmin(nodes)), float(np.nanmax(nodes))
    span = max(hi - lo, 1e-12)
    sigma = sigma or 0.01 * span
    t = np.linspace(lo - 0.05 * span, hi + 0.05 * span, grid)
    return xr.Dataset(
        {
            "nodes": (("probe", "node"), nodes),
            "weights": (("probe", "node"), weights),
            "density": ("t", density_on_grid(nodes, weights, t, sigma=sigma)),
        },
        coords={"t": t},
        attrs={**attrs, "subspace": subspace, "dimension": op.dim, "sigma": sigma, "steps": steps, "seed": seed},
    )
