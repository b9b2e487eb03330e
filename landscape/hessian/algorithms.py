"""Eigenvalue, trace and density algorithms as pure functions of a :class:`CurvatureOperator`.

Every function takes the operator first and keyword-only options, draws its random vectors on the CPU
from ``generator`` (default: seed 0) and returns a small frozen dataclass that says how many operator
products it made (``matvecs``) and whether it met its stopping rule (``converged``):

* :func:`lanczos` — top-k eigenpairs (:class:`SpectrumResult`), on the Lanczos core
  :func:`~landscape.hessian.lanczos.lanczos_tridiagonal`;
* :func:`slq` — stochastic Lanczos quadrature nodes and weights (:class:`QuadratureResult`);
* :func:`eigsh` — scipy's ARPACK ``eigsh`` (``which="LA"``) with ``max_iter`` bounding the products;
* :func:`power_iteration` — PyHessian's deflated power iteration (largest *magnitude* eigenvalues);
* :func:`hutchinson` — trace with Rademacher probes in blocks (:class:`TraceResult`);
* :func:`density_on_grid` — the SLQ density smoothed by a Gaussian kernel.

Units are those of the operator: for :class:`~landscape.hessian.operators.HessianOperator`, eigenvalues
and traces are curvatures of the mean cross-entropy (nats per squared parameter unit). As in
hessian-eigenthings and curvlinops, the algorithms know nothing about models or data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

from landscape.hessian.lanczos import Tridiagonal, lanczos_tridiagonal
from landscape.hessian.operators import CurvatureOperator
from training.errors import UserError

CRITERIA = ("residual", "change")


@dataclass(frozen=True)
class SpectrumResult:
    """Top-k eigenpairs of a symmetric operator.

    ``eigenvalues`` (k,), descending (NaN where a method returned fewer, e.g. ARPACK not converged);
    ``residuals`` (k,) ‖Hv − λv‖ (Lanczos: the estimate β_m|s_mi|); ``iterations`` (k,) products spent
    per eigenvalue (power iteration) or in all (Lanczos steps, ARPACK products); ``matvecs`` every
    operator product made, residual checks included (-1: unknown); ``converged`` whether the stopping
    rule was met (None: the backend does not say); ``eigenvectors`` (dim, k) unit columns, if asked.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    iterations: np.ndarray
    matvecs: int
    converged: bool | None
    eigenvectors: torch.Tensor | None = None


@dataclass(frozen=True)
class TraceResult:
    """A Hutchinson trace estimate: ``trace`` ± ``stderr`` (standard error of the mean) from ``probes``."""

    trace: float
    stderr: float
    probes: int
    matvecs: int
    converged: bool


@dataclass(frozen=True)
class QuadratureResult:
    """SLQ: ``nodes`` and ``weights`` of shape (probes, m), NaN-padded nodes (zero weights) where a probe's
    Krylov space was exhausted early; each probe's weights sum to 1."""

    nodes: np.ndarray
    weights: np.ndarray
    matvecs: int


def lanczos(
    op: CurvatureOperator,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    criterion: str = "residual",
    return_vectors: bool = False,
) -> SpectrumResult:
    """Top-k (largest algebraic) eigenvalues by Lanczos with full reorthogonalisation, ≤ ``max_iter`` steps.

    ``criterion="residual"`` stops when every residual estimate β_m|s_mi| ≤ ``tol``·|θ_i|;
    ``criterion="change"`` when the top-k Ritz values change by less than ``tol`` relatively between
    steps (PyHessian's test, for like-for-like comparisons). If the Krylov space becomes invariant (an
    operator of low rank, or with repeated eigenvalues, or a tiny subspace) the Ritz values found are
    exact; Lanczos then restarts orthogonally to them until the top k are settled, so k eigenvalues are
    always returned with their multiplicities (a single Krylov space sees each distinct eigenvalue once).
    ``converged`` is False when ``max_iter`` ran out first.
    """
    if criterion not in CRITERIA:
        raise UserError(
            f"unknown convergence criterion {criterion!r}; choose from: {', '.join(CRITERIA)}", param="criterion"
        )
    _check_k(k, op.dim)
    steps = min(max_iter, op.dim)
    if steps < k:
        raise UserError(f"max_iter = {max_iter} is smaller than k = {k}", param="max_iter")
    generator = generator or torch.Generator().manual_seed(0)
    previous: list[np.ndarray] = []

    def settled(t: Tridiagonal) -> bool:
        if t.m < k:
            return False
        if t.breakdown:
            return _restart_adds_nothing(t, k)
        theta, S = t.ritz()
        top = np.argsort(theta)[::-1][:k]
        if criterion == "residual":
            return bool(np.all(t.beta * np.abs(S[-1, top]) <= tol * np.maximum(np.abs(theta[top]), 1e-12)))
        last = previous[-1] if previous else None
        previous.append(theta[top])
        return last is not None and bool(np.all(np.abs(theta[top] - last) <= tol * np.maximum(np.abs(last), 1e-12)))

    t = lanczos_tridiagonal(op, _start(op, generator), steps=steps, restart=True, generator=generator, stop=settled)
    theta, S = t.ritz()
    top = np.argsort(theta)[::-1][:k]
    vectors = None
    if return_vectors:
        vectors = t.basis @ torch.from_numpy(S[:, top].copy()).to(dtype=op.dtype, device=op.device)
    converged = t.stopped or t.m == op.dim
    return SpectrumResult(
        theta[top].copy(), t.beta * np.abs(S[-1, top]), np.full(k, t.m), t.matvecs, converged, vectors
    )


def _restart_adds_nothing(t: Tridiagonal, k: int) -> bool:
    """After a breakdown: are the top k settled? The first invariant block holds each distinct eigenvalue
    once, so a restart is always tried; a later block settles them if none of its (exact) eigenvalues
    enters the top k of the blocks before it (later blocks cannot hold larger ones)."""
    b = t.blocks[-1]
    if b == 0:
        return False
    before = np.sort(scipy.linalg.eigvalsh_tridiagonal(t.alphas[:b], t.betas[: b - 1]))[::-1]
    new = scipy.linalg.eigvalsh_tridiagonal(t.alphas[b:], t.betas[b:])
    return len(before) >= k and float(new.max()) <= float(before[k - 1])


def slq(
    op: CurvatureOperator, *, probes: int = 1, steps: int = 100, generator: torch.Generator | None = None
) -> QuadratureResult:
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; PyHessian's density): for each Rademacher
    probe z, m ≤ ``steps`` Lanczos steps from z/‖z‖ (the core, without restarts); nodes are the Ritz
    values and weights the squared first components of T's eigenvectors."""
    if probes < 1 or steps < 1:
        raise UserError(f"probes and steps must be at least 1, got {probes} and {steps}", param="probes")
    generator = generator or torch.Generator().manual_seed(0)
    m = min(steps, op.dim)
    nodes = np.full((probes, m), np.nan)
    weights = np.zeros((probes, m))
    matvecs = 0
    for p in range(probes):
        t = lanczos_tridiagonal(op, _rademacher(op, generator), steps=m)
        theta, S = t.ritz()
        nodes[p, : t.m] = theta
        weights[p, : t.m] = S[0, :] ** 2
        matvecs += t.matvecs
    return QuadratureResult(nodes, weights, matvecs)


def eigsh(
    op: CurvatureOperator,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
) -> SpectrumResult:
    """Top-k eigenvalues by scipy's ARPACK ``eigsh`` (``which="LA"``); ``max_iter`` bounds its products.

    ARPACK makes one product to start, k for the first factorisation and then at most ``ncv − k`` per
    implicit restart, ``maxiter + 1`` times; ``ncv`` (≤ max(2k + 1, 20)) and ``maxiter`` are chosen so
    that this is at most ``max_iter``. Residuals ‖Hv − λv‖ are computed explicitly (one block of k more
    products). If ARPACK does not converge, the eigenvalues it did converge are returned, the rest NaN.
    """
    _check_k(k, op.dim)
    if k >= op.dim:
        raise UserError(f"eigsh needs k < subspace dimension ({op.dim}); use method lanczos", param="k")
    ncv = min(op.dim, max(2 * k + 1, 20))
    while ncv > k + 1 and ncv + 1 + (ncv - k) > max_iter:
        ncv -= 1
    if ncv + 1 + (ncv - k) > max_iter:
        raise UserError(
            f"max_iter = {max_iter} is too small for eigsh with k = {k}; give at least {k + 3}", param="max_iter"
        )
    maxiter = (max_iter - ncv - 1) // (ncv - k)
    generator = generator or torch.Generator().manual_seed(0)
    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        out = op.matvec(torch.from_numpy(np.asarray(x).ravel()).to(dtype=op.dtype, device=op.device))
        return out.detach().double().cpu().numpy()

    linear = scipy.sparse.linalg.LinearOperator((op.dim, op.dim), matvec=mv, dtype=np.float64)
    v0 = torch.randn(op.dim, generator=generator, dtype=torch.float64).numpy()
    try:
        vals, vecs = scipy.sparse.linalg.eigsh(linear, k=k, which="LA", tol=tol, maxiter=maxiter, ncv=ncv, v0=v0)
        converged = True
    except scipy.sparse.linalg.ArpackNoConvergence as exc:
        vals, vecs = exc.eigenvalues, exc.eigenvectors
        converged = False
    arpack = count[0]
    order = np.argsort(vals)[::-1]
    found = len(vals)
    eigenvalues, residuals = np.full(k, np.nan), np.full(k, np.nan)
    eigenvalues[:found] = vals[order]
    if found:
        V = torch.from_numpy(np.ascontiguousarray(vecs[:, order])).to(dtype=op.dtype, device=op.device)
        R = op.matmat(V) - V * torch.from_numpy(eigenvalues[:found]).to(dtype=op.dtype, device=op.device)
        residuals[:found] = torch.linalg.vector_norm(R, dim=0).double().cpu().numpy()
    return SpectrumResult(eigenvalues, residuals, np.full(k, arpack), arpack + found, converged)


def power_iteration(
    op: CurvatureOperator,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
) -> SpectrumResult:
    """Deflated power iteration (PyHessian's algorithm): for each of k eigenvalues, iterate v ← Hv/‖Hv‖
    orthogonal to those found, at most ``max_iter`` times, until the Rayleigh quotient changes by less
    than ``tol`` relatively. It finds the eigenvalues of largest *magnitude*, possibly negative."""
    _check_k(k, op.dim)
    generator = generator or torch.Generator().manual_seed(0)
    found: list[torch.Tensor] = []
    vals, res, iters = [], [], []
    converged = True

    def orth(v: torch.Tensor) -> torch.Tensor:
        for u in found:
            v = v - torch.dot(u, v) * u
        return v / v.norm()

    for _ in range(k):
        v = orth(_start(op, generator))
        lam = None
        it = 0
        done = False
        while it < max_iter:
            it += 1
            v = orth(v)
            hv = op.matvec(v)
            new = float(torch.dot(hv, v))
            r = float((hv - new * v).norm())
            v_next = hv / hv.norm()
            done = lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol
            lam = new
            if done:
                break
            v = v_next
        converged = converged and done
        found.append(orth(v))
        vals.append(lam)
        res.append(r)
        iters.append(it)
    order = np.argsort(vals)[::-1]
    return SpectrumResult(np.array(vals)[order], np.array(res)[order], np.array(iters)[order], sum(iters), converged)


def hutchinson(
    op: CurvatureOperator,
    *,
    tol: float = 1e-2,
    max_probes: int = 100,
    min_probes: int = 10,
    block_size: int = 10,
    generator: torch.Generator | None = None,
) -> TraceResult:
    """Hutchinson's trace estimate, the mean of zᵀHz over Rademacher probes z.

    Probes are applied ``block_size`` at a time (one ``matmat``, so one pass over the data for a
    :class:`~landscape.hessian.operators.HessianOperator`); after each block, once at least
    ``min_probes`` are in, it stops if the standard error is ≤ ``tol · |trace|`` (``converged``).
    """
    if max_probes < 1 or block_size < 1:
        raise UserError(
            f"max_probes and block_size must be at least 1, got {max_probes}, {block_size}", param="max_probes"
        )
    generator = generator or torch.Generator().manual_seed(0)
    samples: list[float] = []
    converged = False
    while len(samples) < max_probes and not converged:
        b = min(block_size, max_probes - len(samples))
        Z = torch.stack([_rademacher(op, generator) for _ in range(b)], dim=1)
        samples.extend((Z * op.matmat(Z)).sum(0).double().cpu().tolist())
        if len(samples) >= min(min_probes, max_probes) and len(samples) > 1:
            converged = _stderr(samples) <= tol * abs(float(np.mean(samples)))
    stderr = _stderr(samples) if len(samples) > 1 else float("nan")
    return TraceResult(float(np.mean(samples)), stderr, len(samples), len(samples), converged)


def density_on_grid(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, *, sigma: float) -> np.ndarray:
    """Spectral density on ``grid``: the probe average of Σ_i w_i N(t; θ_i, σ²) (integrates to 1)."""
    ok = ~np.isnan(nodes)
    dens = np.zeros_like(grid, dtype=float)
    for p in range(nodes.shape[0]):
        th, w = nodes[p][ok[p]], weights[p][ok[p]]
        dens += (w[None, :] * np.exp(-((grid[:, None] - th[None, :]) ** 2) / (2 * sigma**2))).sum(1)
    return dens / (nodes.shape[0] * sigma * math.sqrt(2 * math.pi))


def _stderr(samples: list[float]) -> float:
    return float(np.std(samples, ddof=1) / math.sqrt(len(samples)))


def _start(op: CurvatureOperator, generator: torch.Generator) -> torch.Tensor:
    """A unit Gaussian vector, drawn in float64 on the CPU (the same for every dtype and device)."""
    v = torch.randn(op.dim, generator=generator, dtype=torch.float64).to(dtype=op.dtype, device=op.device)
    return v / v.norm()


def _rademacher(op: CurvatureOperator, generator: torch.Generator) -> torch.Tensor:
    z = torch.randint(0, 2, (op.dim,), generator=generator).to(torch.float64) * 2 - 1
    return z.to(dtype=op.dtype, device=op.device)


def _check_k(k: int, dim: int) -> None:
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}", param="k")
    if k > dim:
        raise UserError(f"k = {k} is larger than the subspace dimension ({dim})", param="k")
