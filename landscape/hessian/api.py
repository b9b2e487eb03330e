"""Hessian spectra of the training loss on a parameter subspace.

Operator (:class:`HessianOperator`). The Hessian is that of the **mean cross-entropy over all of
``data``** (batch losses weighted by batch size), with the model in **eval mode**, w.r.t. a flat
vector of coordinates. ``subspace="mask"`` (the default when a mask is given) keeps every parameter
except the pruned entries of the masked ones, so a sparse network's spectrum lives on its sparse
subspace (rigl's "sparse spectrum"); ``subspace="dense"`` uses every coordinate, as PyHessian does.
Hessian-vector products are double-backward products accumulated batch by batch, so memory does not
grow with the number of batches. With a single batch the first-order graph is built once and reused
(as PyHessian does), which trades activation memory for speed.

Algorithms are pure functions of a ``matvec`` callable and return residuals:

* :func:`lanczos` — top-k by Lanczos with full reorthogonalisation (Ritz values of the tridiagonal
  matrix from ``scipy.linalg.eigh_tridiagonal``); converged when every residual estimate
  ``β_m |s_{m,i}|`` is at most ``tol · |θ_i|``.
* :func:`eigsh` — scipy's ARPACK ``eigsh`` on a ``LinearOperator`` (``which="LA"``).
* :func:`power_iteration` — deflated power iteration as PyHessian (stop when the Rayleigh quotient
  changes by less than ``tol`` relatively); it finds the eigenvalues of largest *magnitude*.
* :func:`hutchinson` — trace with Rademacher probes; stops when the standard error falls under
  ``tol · |trace|``.
* :func:`slq` — stochastic Lanczos quadrature nodes and weights for the spectral density.

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
    EigenResult,
    _check_k,
    density_on_grid,
    eigsh,
    hutchinson,
    lanczos,
    power_iteration,
    slq,
)
from landscape.hessian.operators import HessianOperator
from landscape.hessian.pyhessian_backend import _pyhessian
from landscape.results import provenance
from training.checkpoint import Checkpoint, as_checkpoint
from training.errors import UserError
from training.evaluate import resolve_device


def _resolve(model: Any, mask: Any, subspace: str | None) -> tuple[nn.Module, dict | None, str, dict[str, Any]]:
    attrs: dict[str, Any] = {}
    if isinstance(model, Checkpoint | str | os.PathLike):
        ckpt = as_checkpoint(model)
        attrs = provenance(checkpoint=ckpt)
        model = ckpt.model
        mask = ckpt.mask if mask is None else mask
    if subspace is None:
        subspace = "mask" if mask else "dense"
    return model, (mask if subspace == "mask" else None), subspace, attrs


EIGEN_METHODS: dict[str, Callable[..., EigenResult]] = {
    "lanczos": lanczos,
    "eigsh": eigsh,
    "power": power_iteration,
}


def hessian_eigenvalues(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
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
    eigsh, power or pyhessian (the PyHessian package, dense only, as a cross-check).
    ``criterion`` (lanczos only): ``residual`` (default) or ``change`` (PyHessian's relative-change test).
    Returns a Dataset with ``eigenvalue(k)`` (descending), ``residual(k)`` and ``iterations(k)``.
    """
    model, mask, subspace, attrs = _resolve(model, mask, subspace)
    if method not in (*EIGEN_METHODS, "pyhessian"):
        raise UserError(f"unknown Hessian method {method!r}; choose from: {', '.join([*EIGEN_METHODS, 'pyhessian'])}")
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(model, data, mask, subspace, dev)
    _check_k(k, op.dim)
    generator = torch.Generator().manual_seed(seed)
    if method == "pyhessian":
        if subspace != "dense":
            raise UserError("method pyhessian covers every parameter; use --subspace dense")
        result = _pyhessian(model, data, k, tol, max_iter, seed, dev)
    elif method == "lanczos":
        result = lanczos(op.matvec, op.dim, k, tol, max_iter, generator, op.dtype, op.device, criterion=criterion)
    else:
        result = EIGEN_METHODS[method](op.matvec, op.dim, k, tol, max_iter, generator, op.dtype, op.device)
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
            "n_samples": op.n_samples or -1,
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
    mask: Mapping[str, torch.Tensor] | None = None,
    tol: float = 1e-2,
    max_probes: int = 100,
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> xr.Dataset:
    """Hutchinson estimate of the Hessian trace on the subspace: ``trace``, ``trace_stderr``, ``probes``."""
    model, mask, subspace, attrs = _resolve(model, mask, subspace)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(model, data, mask, subspace, dev)
    trace, stderr, n = hutchinson(
        op.matvec,
        op.dim,
        tol,
        max_probes,
        min(10, max_probes),
        torch.Generator().manual_seed(seed),
        op.dtype,
        op.device,
    )
    return xr.Dataset(
        {"trace": trace, "trace_stderr": stderr, "probes": n},
        attrs={**attrs, "subspace": subspace, "dimension": op.dim, "tol": tol, "seed": seed},
    )


def hessian_density(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
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
    grid spanning the nodes (Gaussian kernel of width ``sigma``, default 1% of the node range)."""
    model, mask, subspace, attrs = _resolve(model, mask, subspace)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(model, data, mask, subspace, dev)
    nodes, weights = slq(op.matvec, op.dim, probes, steps, torch.Generator().manual_seed(seed), op.dtype, op.device)
    lo, hi = float(np.nanmin(nodes)), float(np.nanmax(nodes))
    span = max(hi - lo, 1e-12)
    sigma = sigma or 0.01 * span
    t = np.linspace(lo - 0.05 * span, hi + 0.05 * span, grid)
    return xr.Dataset(
        {
            "nodes": (("probe", "node"), nodes),
            "weights": (("probe", "node"), weights),
            "density": ("t", density_on_grid(nodes, weights, t, sigma)),
        },
        coords={"t": t},
        attrs={**attrs, "subspace": subspace, "dimension": op.dim, "sigma": sigma, "steps": steps, "seed": seed},
    )
