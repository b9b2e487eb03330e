"""Eigenvalue, trace and density algorithms as pure functions of a :class:`CurvatureOperator`.

Every function takes the operator first and keyword-only options, draws its random vectors on the CPU
from ``generator`` (default: seed 0) and returns a small frozen dataclass that says how many operator
products it made (``matvecs``) and whether it met its stopping rule (``converged``):

* :func:`lanczos` — top-k eigenpairs (:class:`SpectrumResult`), on the Lanczos core
  :func:`~landscape.hessian.lanczos.lanczos_tridiagonal`;
* :func:`slq` — stochastic Lanczos quadrature nodes and weights (:class:`QuadratureResult`);
* :func:`eigsh` — scipy's ARPACK ``eigsh`` (``which="LA"``) with ``max_iter`` bounding the products;
* :func:`power_iteration` — PyHessian's deflated power iteration (largest *magnitude* eigenvalues);
* :func:`density_on_grid` — the SLQ density smoothed by a Gaussian kernel.

Trace and diagonal estimators are in :mod:`landscape.hessian.trace`, the block Lanczos in
:mod:`landscape.hessian.block_lanczos`.

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

from landscape.hessian.lanczos import Tridiagonal, lanczos_chains, lanczos_tridiagonal
from landscape.hessian.operators import CurvatureOperator
from landscape.hessian.ritz import (
    ARPACK_WHICH,
    CRITERIA,
    check_criterion,
    check_which,
    error_bounds,
    score,
    select,
    sort_result,
)
from landscape.hessian.ritz import converged as ritz_converged
from training.errors import UserError

__all__ = [
    "CRITERIA",
    "QuadratureResult",
    "SpectrumResult",
    "density_on_grid",
    "eigsh",
    "lanczos",
    "power_iteration",
    "slq",
]


@dataclass(frozen=True)
class SpectrumResult:
    """k extreme eigenpairs of a symmetric operator.

    ``eigenvalues`` (k,), in the order of the ``which`` asked (descending for the largest; NaN where a
    method returned fewer, e.g. ARPACK not converged); ``residuals`` (k,) ‖Hv − λv‖ (Lanczos: the
    estimate β_m|s_mi|); ``iterations`` (k,) products spent per eigenvalue (power iteration) or in all
    (Lanczos steps, ARPACK products); ``matvecs`` every operator product made, residual checks included
    (-1: unknown); ``converged`` whether the stopping rule was met (None: the backend does not say);
    ``eigenvectors`` (dim, k) unit columns, if asked; ``error_bounds`` (k,) bounds on |θ − λ|
    (:func:`landscape.hessian.ritz.error_bounds`; the residual where no gap is known; None: unknown).
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    iterations: np.ndarray
    matvecs: int
    converged: bool | None
    eigenvectors: torch.Tensor | None = None
    error_bounds: np.ndarray | None = None


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
    criterion: str = "bound",
    which: str = "largest",
    return_vectors: bool = False,
    start: torch.Tensor | None = None,
) -> SpectrumResult:
    """k extreme eigenvalues (``which``: largest, smallest or magnitude; see :mod:`landscape.hessian.ritz`)
    by Lanczos with full reorthogonalisation, at most ``max_iter`` steps, from ``start`` (default: a
    Gaussian vector drawn with ``generator``).

    ``criterion="bound"`` (default) stops when every kept Ritz value's error bound min(r, r²/δ) is ≤
    ``tol``·|θ_i|; ``"residual"`` when every residual estimate β_m|s_mi| ≤ ``tol``·|θ_i|; ``"change"``
    when the kept Ritz values change by less than ``tol`` relatively between steps (PyHessian's test,
    for like-for-like comparisons). If the Krylov space becomes invariant (an operator of low rank, or
    with repeated eigenvalues, or a tiny subspace) the Ritz values found are exact; Lanczos then
    restarts orthogonally to them until the k are settled, so k eigenvalues are always returned with
    their multiplicities (a single Krylov space sees each distinct eigenvalue once). ``converged`` is
    False when ``max_iter`` ran out first.
    """
    check_criterion(criterion)
    check_which(which)
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
            return _restart_adds_nothing(t, k, which)
        theta, S = t.ritz()
        kept = select(theta, k, which)
        last = previous[-1] if previous else None
        previous.append(theta[kept])
        return ritz_converged(criterion, tol, theta, t.beta * np.abs(S[-1]), kept, last)

    v0 = _start(op, generator) if start is None else start.to(dtype=op.dtype, device=op.device)
    t = lanczos_tridiagonal(op, v0, steps=steps, restart=True, generator=generator, stop=settled)
    theta, S = t.ritz()
    kept = select(theta, k, which)
    residuals = t.beta * np.abs(S[-1])
    vectors = None
    if return_vectors:
        vectors = t.basis @ torch.from_numpy(S[:, kept].copy()).to(dtype=op.dtype, device=op.device)
    return SpectrumResult(
        theta[kept].copy(),
        residuals[kept],
        np.full(k, t.m),
        t.matvecs,
        t.stopped or t.m == op.dim,
        vectors,
        error_bounds(theta, residuals)[kept],
    )


def _restart_adds_nothing(t: Tridiagonal, k: int, which: str = "largest") -> bool:
    """After a breakdown: are the k kept Ritz values settled? The first invariant block holds each distinct
    eigenvalue once, so a restart is always tried; a later block settles them if none of its (exact)
    eigenvalues enters the k kept of the blocks before it (later blocks cannot hold preferred ones)."""
    b = t.blocks[-1]
    if b == 0:
        return False
    before = np.sort(score(scipy.linalg.eigvalsh_tridiagonal(t.alphas[:b], t.betas[: b - 1]), which))[::-1]
    new = score(scipy.linalg.eigvalsh_tridiagonal(t.alphas[b:], t.betas[b:]), which)
    return len(before) >= k and float(new.max()) <= float(before[k - 1])


def slq(
    op: CurvatureOperator, *, probes: int = 1, steps: int = 100, generator: torch.Generator | None = None
) -> QuadratureResult:
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; PyHessian's density): for each Rademacher
    probe z, m ≤ ``steps`` Lanczos steps from z/‖z‖ (the core, without restarts); nodes are the Ritz
    values and weights the squared first components of T's eigenvectors. The probes' chains advance
    together (:func:`~landscape.hessian.lanczos.lanczos_chains`): one block product per step."""
    if probes < 1 or steps < 1:
        raise UserError(f"probes and steps must be at least 1, got {probes} and {steps}", param="probes")
    generator = generator or torch.Generator().manual_seed(0)
    m = min(steps, op.dim)
    nodes = np.full((probes, m), np.nan)
    weights = np.zeros((probes, m))
    starts = torch.stack([_rademacher(op, generator) for _ in range(probes)], dim=1)
    chains = lanczos_chains(op, starts, steps=m)
    for p, t in enumerate(chains):
        theta, S = t.ritz()
        nodes[p, : t.m] = theta
        weights[p, : t.m] = S[0, :] ** 2
    return QuadratureResult(nodes, weights, sum(t.matvecs for t in chains))


def eigsh(
    op: CurvatureOperator,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    which: str = "largest",
    return_vectors: bool = False,
) -> SpectrumResult:
    """k extreme eigenvalues by scipy's ARPACK ``eigsh`` (``which``: largest "LA", smallest "SA" or
    magnitude "LM"); ``max_iter`` bounds its products.

    ARPACK makes one product to start, k for the first factorisation and then at most ``ncv − k`` per
    implicit restart, ``maxiter + 1`` times; ``ncv`` (≤ max(2k + 1, 20)) and ``maxiter`` are chosen so
    that this is at most ``max_iter``. Residuals ‖Hv − λv‖ are computed explicitly (one block of k more
    products). If ARPACK does not converge, the eigenvalues it did converge are returned, the rest NaN.
    The error bounds are the residuals (no gap to the unreturned spectrum is known).
    """
    check_which(which)
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
        vals, vecs = scipy.sparse.linalg.eigsh(
            linear, k=k, which=ARPACK_WHICH[which], tol=tol, maxiter=maxiter, ncv=ncv, v0=v0
        )
        converged = True
    except scipy.sparse.linalg.ArpackNoConvergence as exc:
        vals, vecs = exc.eigenvalues, exc.eigenvectors
        converged = False
    arpack = count[0]
    order = sort_result(np.asarray(vals), which)
    found = len(vals)
    eigenvalues, residuals = np.full(k, np.nan), np.full(k, np.nan)
    eigenvalues[:found] = vals[order]
    vectors = torch.full((op.dim, k), float("nan"), dtype=op.dtype, device=op.device) if return_vectors else None
    if found:
        V = torch.from_numpy(np.ascontiguousarray(vecs[:, order])).to(dtype=op.dtype, device=op.device)
        R = op.matmat(V) - V * torch.from_numpy(eigenvalues[:found]).to(dtype=op.dtype, device=op.device)
        residuals[:found] = torch.linalg.vector_norm(R, dim=0).double().cpu().numpy()
        if vectors is not None:
            vectors[:, :found] = V
    return SpectrumResult(
        eigenvalues, residuals, np.full(k, arpack), arpack + found, converged, vectors, residuals.copy()
    )


def power_iteration(
    op: CurvatureOperator,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    which: str = "magnitude",
) -> SpectrumResult:
    """Deflated power iteration (PyHessian's algorithm): for each of k eigenvalues, iterate v ← Hv/‖Hv‖
    orthogonal to those found, at most ``max_iter`` times, until the Rayleigh quotient changes by less
    than ``tol`` relatively. It finds the eigenvalues of largest *magnitude*, possibly negative, so
    ``which`` must be ``"magnitude"``; they are returned by descending magnitude. The error bounds are
    the residuals."""
    if check_which(which) != "magnitude":
        raise UserError(f"power iteration finds the largest magnitude only, not which={which!r}", param="which")
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
    order = sort_result(np.array(vals), "magnitude")
    res_sorted = np.array(res)[order]
    return SpectrumResult(
        np.array(vals)[order], res_sorted, np.array(iters)[order], sum(iters), converged, error_bounds=res_sorted
    )


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
