"""Spectra of curvature matrices of the training loss on a parameter subspace, as Datasets.

Operators (:mod:`landscape.hessian.factory`): the Hessian (default), the generalised Gauss–Newton
matrix, the empirical and the Monte-Carlo Fisher, of the **mean cross-entropy over all of** ``data``
(batch losses weighted by batch size), with the model in **eval mode**, w.r.t. a flat vector of
coordinates. ``subspace="mask"`` (the default when a mask is given) keeps every parameter except the
pruned entries of the masked ones, so a sparse network's spectrum lives on its sparse subspace (rigl's
"sparse spectrum"); ``subspace="dense"`` uses every coordinate, as PyHessian does. ``data`` is read
once into a list of batches (a generator works). ``params``/``per_layer`` give the spectra of principal
sub-blocks, one per parameter group (:mod:`landscape.hessian.groups`), along a ``group`` dimension.

Algorithms (:mod:`landscape.hessian.algorithms`, :mod:`landscape.hessian.block_lanczos`) are pure
functions of the operator:

* ``lanczos`` — Lanczos with full reorthogonalisation; by default it stops when every eigenvalue's
  error bound min(r, r²/δ) is at most ``tol · |θ_i|`` (``criterion="bound"``; ``"residual"`` stops on
  the residual estimate ``β_m |s_{m,i}|`` instead, ``"change"`` on PyHessian's relative change); an
  invariant Krylov space (low rank, repeated eigenvalues) is handled by restarting, so k eigenvalues
  always come back. With ``start`` (Ritz vectors of a nearby operator) it starts from their sum (each
  normalised): one product per step, and the Krylov space holds every previous direction from step 1;
* ``block-lanczos`` — block Lanczos (one pass over the data per block), from ``start`` or at random;
* ``eigsh`` — scipy's ARPACK ``eigsh``, at most ``max_iter`` products;
* ``power`` — deflated power iteration as PyHessian (largest *magnitude*);
* ``pyhessian`` — the PyHessian package itself, as a cross-check (dense Hessian only).

``which``: ``largest`` (algebraic; the default), ``smallest`` (the most negative curvature) or
``magnitude`` (power and pyhessian find only these); results are sorted in that order.
Units: eigenvalues are in nats per squared parameter unit (curvature of the mean loss). Traces,
diagonals and densities are in :mod:`landscape.hessian.estimates`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from landscape.hessian.algorithms import SpectrumResult, _check_k, eigsh, lanczos, power_iteration
from landscape.hessian.block_lanczos import block_lanczos
from landscape.hessian.factory import LOSS, UNITS, group_attrs, make_operator, operator_groups, stack_groups
from landscape.hessian.groups import Params
from landscape.hessian.pyhessian_backend import pyhessian_eigenvalues
from landscape.hessian.ritz import ORDER, check_which
from landscape.hessian.subspace import ModelOperator
from landscape.hessian.vectors import save_ritz_vectors
from training.checkpoint import Checkpoint
from training.checks import AT_LEAST_ONE, POSITIVE, check_number
from training.errors import UserError
from training.outputs import refuse_inputs

METHODS = ("lanczos", "block-lanczos", "eigsh", "power", "pyhessian")
MAGNITUDE_ONLY = ("power", "pyhessian")


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
    criterion: str = "bound",
    operator: str = "hessian",
    which: str | None = None,
    per_layer: bool = False,
    params: Params | None = None,
    return_vectors: bool = False,
    vectors_path: str | os.PathLike | None = None,
    vector_residuals: bool = True,
    start: Mapping[str, Any] | None = None,
    block_size: int | None = None,
    mc_samples: int = 1,
    chunk_size: int = 1,
    loss_fn: Any = None,
) -> xr.Dataset:
    """k extreme eigenvalues of a curvature matrix of the mean cross-entropy over ``data`` (eval mode).

    ``model`` may be a module, a :class:`Checkpoint` or a path (then ``mask`` defaults to its mask).
    ``subspace`` defaults to ``mask`` when a mask is given, else ``dense``. ``operator``: hessian, ggn,
    fisher (empirical) or fisher-mc (``mc_samples`` labels per sample, drawn with ``seed``).
    ``method``: lanczos, block-lanczos, eigsh, power or pyhessian (see the module docstring).
    ``which``: largest (default; power and pyhessian: magnitude), smallest or magnitude. ``max_iter``
    bounds the products (Lanczos steps, ARPACK products; power: per eigenvalue). ``criterion``
    (Lanczos methods): ``bound`` (default; the eigenvalue's error bound is ≤ ``tol``·|θ|), ``residual``
    or ``change``. ``tol`` is relative. ``loss_fn`` (operator hessian only) replaces cross-entropy:
    ``"mse"``, a callable ``(output, target) → batch mean`` or a ``"package.module:callable"`` name.

    ``params`` (names or glob patterns) or ``per_layer`` give one spectrum per parameter group (the
    principal sub-block; :mod:`landscape.hessian.groups`) along a ``group`` dimension labelled with the
    pattern or module names; a group smaller than k has NaN beyond its dimension. ``return_vectors``
    writes the Ritz vectors, as parameter-shaped tensors with zeros off the subspace, and the explicit
    residual of each, to ``vectors_path`` (:mod:`landscape.hessian.vectors`; k more products per group;
    ``vector_residuals=False`` stores the method's own residuals instead). ``start``: such a payload,
    whose vectors start each group's Lanczos (a warm start; groups it lacks start at random).
    ``chunk_size``: vectors per vmapped product.

    Returns a Dataset with ``eigenvalue``, ``residual``, ``error_bound`` and ``iterations`` over ``k``
    (and ``group``), ``vector_residual`` with vectors; attrs include ``hvp_count`` (every product) and
    ``converged`` (1/0; absent for pyhessian, which does not say).
    """
    for name, value, valid in (
        ("k", k, AT_LEAST_ONE), ("tol", tol, POSITIVE), ("max_iter", max_iter, AT_LEAST_ONE),
        ("mc_samples", mc_samples, AT_LEAST_ONE), ("block_size", block_size, AT_LEAST_ONE),
        ("chunk_size", chunk_size, AT_LEAST_ONE),
    ):  # fmt: skip
        check_number(value, name, valid)  # wrong types and NaN too, before any work
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}", param="method")
    which = check_which(which or ("magnitude" if method in MAGNITUDE_ONLY else "largest"))
    if return_vectors and vectors_path is None:
        raise UserError("return_vectors needs vectors_path, the file the Ritz vectors go to", param="vectors_path")
    if return_vectors:  # the API writes too: never over the checkpoint it reads
        given = model.path if isinstance(model, Checkpoint) else model if isinstance(model, str | os.PathLike) else None
        refuse_inputs(vectors_path, [given], "vectors_path")
    if return_vectors and method in MAGNITUDE_ONLY:
        raise UserError(f"method {method} cannot return eigenvectors; use lanczos", param="return_vectors")
    if start is not None and method not in ("lanczos", "block-lanczos"):
        raise UserError(f"a warm start needs method lanczos or block-lanczos, not {method}", param="start")
    op, module, subspace, attrs = make_operator(
        model, data, operator=operator, mask=mask, subspace=subspace, device=device, seed=seed,
        mc_samples=mc_samples, chunk_size=chunk_size, loss_fn=loss_fn,
    )  # fmt: skip
    _check_k(k, op.dim)
    groups, grouped = operator_groups(op, per_layer=per_layer, params=params)
    generator = torch.Generator().manual_seed(seed)
    if method == "pyhessian":
        if subspace != "dense":
            raise UserError("method pyhessian needs subspace dense (it covers every parameter)", param="subspace")
        if operator != "hessian" or grouped:
            raise UserError("method pyhessian computes the Hessian of all parameters only", param="method")
        if op.loss_fn is not None:
            raise UserError("method pyhessian uses cross-entropy; use method lanczos with another loss", param="method")
    parts, payload, flags = [], {}, []
    for label, g in groups:
        kk = min(k, g.dim)
        if method == "pyhessian":
            result = pyhessian_eigenvalues(
                module, op.batches, k=k, tol=tol, max_iter=max_iter, seed=seed, device=op.device
            )
        else:
            block = _start_block(g, start, label)
            options = {"k": kk, "tol": tol, "max_iter": max_iter, "generator": generator, "which": which}
            result = _solve(g, method, block, block_size, criterion, return_vectors, options)
        flags.append(result.converged)
        vector_residual = None
        if return_vectors:
            vector_residual, payload[label] = _vectors(g, result, vector_residuals)
        part = _spectrum_dataset(result, k, vector_residual)
        if grouped:
            part["group_dimension"] = g.dim
            part["hvp_count"] = g.matvecs
            part["converged"] = int(bool(result.converged))
        parts.append(part)
    ds = stack_groups(parts, [label for label, _ in groups], grouped)
    ds.attrs = {
        **attrs,
        **(group_attrs(groups) if grouped else {}),
        "method": method,
        "which": which,
        "order": ORDER[which],
        "subspace": subspace,
        "dimension": op.dim,
        "tol": tol,
        "max_iter": max_iter,
        "hvp_count": int(sum(g.matvecs for _, g in groups)) if method != "pyhessian" else -1,
        "n_samples": op.n_samples,
        "seed": seed,
        "loss": attrs.get("loss", LOSS),
        "warm_start": int(start is not None),
    }
    if method in ("lanczos", "block-lanczos"):
        ds.attrs["criterion"] = criterion
    if method != "pyhessian":
        ds.attrs["converged"] = int(all(flags))
    if return_vectors:
        kind = "explicit" if vector_residuals else "method"
        save_ritz_vectors(vectors_path, {"operator": operator, "which": which, "residual": kind, "groups": payload})
        ds.attrs["vectors_path"] = str(vectors_path)
    ds["eigenvalue"].attrs.update(units=UNITS, order=ORDER[which])
    ds["residual"].attrs["definition"] = "||Av - lambda v|| (Lanczos: the estimate beta_m |s_mi|)"
    ds["error_bound"].attrs["definition"] = (
        "min(r, r^2/gap), or r without a gap: r bounds the distance to some eigenvalue; the gap is estimated from "
        "the other Ritz values (a heuristic: an eigenvalue not yet found can be closer), so it bounds the error of "
        "the k-th eigenvalue only once the better-ranked ones have converged"
    )
    return ds


def _solve(
    g: ModelOperator,
    method: str,
    block: torch.Tensor | None,
    block_size: int | None,
    criterion: str,
    return_vectors: bool,
    options: dict[str, Any],
) -> SpectrumResult:
    if method == "block-lanczos":
        return block_lanczos(
            g, start=block, block_size=block_size, criterion=criterion, return_vectors=return_vectors, **options
        )
    if method == "lanczos":
        # A warm start is one vector, the sum of the normalised previous Ritz vectors, not a block: on a
        # tiny cnn1d run, block Lanczos from the k vectors cost 1.5x the products of a cold start (k per
        # step) while the summed start cost fewer at tol 1e-3 and found the same eigenvalues.
        start = None if block is None else (block / torch.linalg.vector_norm(block, dim=0)).sum(dim=1)
        return lanczos(g, criterion=criterion, return_vectors=return_vectors, start=start, **options)
    if method == "eigsh":
        return eigsh(g, return_vectors=return_vectors, **options)
    return power_iteration(g, **options)


def _start_block(g: ModelOperator, start: Mapping[str, Any] | None, label: str) -> torch.Tensor | None:
    """The warm-start block (dim, b) of group ``label`` from a Ritz-vector payload, or None without one.
    Vectors that cannot start this computation (no such group, another model's parameters or shapes,
    NaN or all-zero vectors) are a :class:`UserError`: a random start would be reported as warm."""
    if start is None:
        return None
    groups = start.get("groups") if isinstance(start, Mapping) else None
    entry = groups.get(label) if isinstance(groups, Mapping) else None
    if not isinstance(entry, Mapping) or not entry.get("vectors"):
        held = ", ".join(map(str, groups)) if isinstance(groups, Mapping) and groups else "none"
        raise UserError(f"the start vectors hold no vectors for group {label!r} (they hold: {held})", param="start")
    params = dict(zip(g.names, g.params, strict=True))
    vectors = {n: t for n, t in entry["vectors"].items() if n in params}
    if not vectors:
        raise UserError("the start vectors name none of this model's parameters (another model)", param="start")
    for n, t in vectors.items():
        if tuple(t.shape[1:]) != tuple(params[n].shape):
            raise UserError(
                f"the start vectors for {n} have shape {tuple(t.shape[1:])}, the parameter {tuple(params[n].shape)}: "
                "they are of another model",
                param="start",
            )
    block = g.pack_named(vectors)
    keep = torch.isfinite(block).all(0) & (torch.linalg.vector_norm(block, dim=0) > 0)
    if not bool(keep.all()):
        raise UserError(
            f"{int((~keep).sum())} of the {block.shape[1]} start vectors are NaN or zero on this subspace",
            param="start",
        )
    return block


def _vectors(g: ModelOperator, result: SpectrumResult, explicit: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Residuals ‖Av − θv‖ of the Ritz vectors (explicit: k products; else the method's) and their payload
    entry (parameter-shaped tensors)."""
    V = result.eigenvectors
    theta = torch.from_numpy(result.eigenvalues.astype(float)).to(dtype=V.dtype, device=V.device)
    finite = torch.isfinite(theta)
    res = np.full(len(theta), np.nan)
    if not explicit:
        res = result.residuals.astype(float).copy()
    elif bool(finite.any()):
        Vf = V[:, finite]
        R = g.matmat(Vf) - Vf * theta[finite]
        res[finite.cpu().numpy()] = torch.linalg.vector_norm(R, dim=0).double().cpu().numpy()
    tensors = {n: t.detach().cpu() for n, t in zip(g.names, g.unpack_block(V), strict=True)}
    entry = {
        "eigenvalue": torch.from_numpy(result.eigenvalues.astype(float)),
        "residual": torch.from_numpy(res),
        "vectors": tensors,
    }
    return res, entry


def _spectrum_dataset(result: SpectrumResult, k: int, vector_residual: np.ndarray | None) -> xr.Dataset:
    def pad(values: np.ndarray | None, fill: float = np.nan) -> np.ndarray:
        out = np.full(k, fill)
        if values is not None:
            out[: len(values)] = values
        return out

    ds = xr.Dataset(
        {
            "eigenvalue": ("k", pad(result.eigenvalues.astype(float))),
            "residual": ("k", pad(result.residuals.astype(float))),
            "error_bound": ("k", pad(None if result.error_bounds is None else result.error_bounds.astype(float))),
            "iterations": ("k", pad(result.iterations, -1).astype(np.int64)),
        },
        coords={"k": np.arange(1, k + 1)},
    )
    if vector_residual is not None:
        ds["vector_residual"] = ("k", pad(vector_residual))
    return ds
