"""Eigenvalue, trace and density algorithms as pure functions of an operator's ``matvec``.

* :func:`lanczos` — top-k by Lanczos with full reorthogonalisation;
* :func:`eigsh` — scipy's ARPACK ``eigsh`` on a ``LinearOperator`` (``which="LA"``);
* :func:`power_iteration` — deflated power iteration as PyHessian (largest *magnitude*);
* :func:`hutchinson` — trace with Rademacher probes and a standard-error stopping rule;
* :func:`slq` — stochastic Lanczos quadrature nodes and weights for the spectral density.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

from training.errors import UserError

Matvec = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EigenResult:
    """Top-k eigenpairs: ``eigenvalues`` (descending), ``residuals`` ‖Hv − λv‖ (or Lanczos estimates),
    ``iterations`` (matvecs per eigenvalue for power iteration; Lanczos steps otherwise) and optional
    unit ``eigenvectors`` (k, dim)."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    iterations: np.ndarray
    eigenvectors: torch.Tensor | None = None


def _start(dim: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    v = torch.randn(dim, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    return v / v.norm()


def lanczos(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    return_vectors: bool = False,
    criterion: str = "residual",
) -> EigenResult:
    """Top-k eigenvalues of the symmetric operator ``matvec`` by Lanczos with full reorthogonalisation.

    ``criterion="residual"`` stops when every residual estimate β_m|s_mi| ≤ ``tol``·|θ_i|;
    ``criterion="change"`` stops when the top-k Ritz values change by less than ``tol`` relatively
    between steps (PyHessian's test, for like-for-like comparisons)."""
    if criterion not in ("residual", "change"):
        raise UserError(f"unknown convergence criterion {criterion!r}; choose from: residual, change")
    _check_k(k, dim)
    generator = generator or torch.Generator().manual_seed(0)
    steps = min(max_iter, dim)
    if steps < k:
        raise UserError(f"max_iter {max_iter} is smaller than k = {k}")
    Q = torch.zeros((steps + 1, dim), dtype=dtype, device=device)
    Q[0] = _start(dim, generator, dtype, device)
    alphas: list[float] = []
    betas: list[float] = []
    theta = S = None
    previous = None
    beta = 0.0
    m = 0
    for j in range(steps):
        w = matvec(Q[j])
        alpha = float(torch.dot(w, Q[j]))
        w = w - alpha * Q[j] - (beta * Q[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        m = j + 1
        if m >= k:
            theta, S = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas))
            top = np.argsort(theta)[::-1][:k]
            res = beta * np.abs(S[-1, top])
            if criterion == "residual":
                converged = np.all(res <= tol * np.maximum(np.abs(theta[top]), 1e-12))
            else:
                current = theta[top]
                converged = (
                    previous is not None
                    and len(previous) == len(current)
                    and np.all(np.abs(current - previous) <= tol * np.maximum(np.abs(previous), 1e-12))
                )
                previous = current
            if converged or beta <= 1e-12 * max(1.0, abs(alpha)):
                break
        if beta <= 1e-12 * max(1.0, abs(alpha)):
            break
        betas.append(beta)
        Q[j + 1] = w / beta
    top = np.argsort(theta)[::-1][:k]
    vectors = None
    if return_vectors:
        vectors = torch.from_numpy(S[:, top].T.copy()).to(dtype=dtype, device=device) @ Q[:m]
    return EigenResult(theta[top].copy(), beta * np.abs(S[-1, top]), np.full(k, m), vectors)


def eigsh(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """Top-k eigenvalues by scipy's ARPACK ``eigsh`` on a ``LinearOperator``; residuals ‖Hv − λv‖
    are computed explicitly (k extra products)."""
    _check_k(k, dim)
    if k >= dim:
        raise UserError(f"eigsh needs k < subspace dimension ({dim}); use method lanczos")
    generator = generator or torch.Generator().manual_seed(0)
    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        out = matvec(torch.from_numpy(np.asarray(x).ravel()).to(dtype=dtype, device=device))
        return out.detach().double().cpu().numpy()

    op = scipy.sparse.linalg.LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    v0 = torch.randn(dim, generator=generator, dtype=torch.float64).numpy()
    vals, vecs = scipy.sparse.linalg.eigsh(op, k=k, which="LA", tol=tol, maxiter=max_iter * dim, v0=v0)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    res = np.array([np.linalg.norm(mv(vecs[:, i]) - vals[i] * vecs[:, i]) for i in range(k)])
    return EigenResult(vals, res, np.full(k, count[0]))


def power_iteration(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """Deflated power iteration (PyHessian's algorithm): for each of k eigenvalues, iterate
    v ← Hv/‖Hv‖ orthogonal to those found, until the Rayleigh quotient changes by < ``tol`` relatively."""
    _check_k(k, dim)
    generator = generator or torch.Generator().manual_seed(0)
    found: list[torch.Tensor] = []
    vals, res, iters = [], [], []

    def orth(v: torch.Tensor) -> torch.Tensor:
        for u in found:
            v = v - torch.dot(u, v) * u
        return v / v.norm()

    for _ in range(k):
        v = orth(_start(dim, generator, dtype, device))
        lam = None
        it = 0
        while it < max_iter:
            it += 1
            v = orth(v)
            hv = matvec(v)
            new = float(torch.dot(hv, v))
            r = float((hv - new * v).norm())
            v_next = hv / hv.norm()
            done = lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol
            lam = new
            if done:
                break
            v = v_next
        found.append(orth(v))
        vals.append(lam)
        res.append(r)
        iters.append(it)
    order = np.argsort(vals)[::-1]
    return EigenResult(np.array(vals)[order], np.array(res)[order], np.array(iters)[order])


def hutchinson(
    matvec: Matvec,
    dim: int,
    tol: float = 1e-2,
    max_probes: int = 100,
    min_probes: int = 10,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[float, float, int]:
    """Hutchinson trace estimate with Rademacher probes: ``(trace, standard error, probes)``.
    Stops after at least ``min_probes`` once the standard error is ≤ ``tol · |trace|``."""
    generator = generator or torch.Generator().manual_seed(0)
    samples: list[float] = []
    for i in range(max_probes):
        z = (torch.randint(0, 2, (dim,), generator=generator).to(torch.float64) * 2 - 1).to(dtype=dtype, device=device)
        samples.append(float(torch.dot(z, matvec(z))))
        if i + 1 >= min_probes:
            mean = float(np.mean(samples))
            stderr = float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
            if stderr <= tol * abs(mean):
                break
    mean = float(np.mean(samples))
    stderr = float(np.std(samples, ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else float("nan")
    return mean, stderr, len(samples)


def slq(
    matvec: Matvec,
    dim: int,
    probes: int = 1,
    steps: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature: ``(nodes, weights)`` of shape (probes, m). For each Rademacher
    probe, m ≤ ``steps`` Lanczos steps with full reorthogonalisation; nodes are the Ritz values and
    weights the squared first components of the Ritz vectors (each probe's weights sum to 1)."""
    generator = generator or torch.Generator().manual_seed(0)
    m = min(steps, dim)
    nodes = np.full((probes, m), np.nan)
    weights = np.zeros((probes, m))
    for p in range(probes):
        z = (torch.randint(0, 2, (dim,), generator=generator).to(torch.float64) * 2 - 1).to(dtype=dtype, device=device)
        Q = torch.zeros((m, dim), dtype=dtype, device=device)
        Q[0] = z / z.norm()
        alphas, betas = [], []
        for j in range(m):
            w = matvec(Q[j])
            alpha = float(torch.dot(w, Q[j]))
            for _ in range(2):
                w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            alphas.append(alpha)
            beta = float(w.norm())
            if j + 1 == m or beta <= 1e-10 * max(1.0, abs(alpha)):
                break
            betas.append(beta)
            Q[j + 1] = w / beta
        theta, S = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas))
        nodes[p, : len(theta)] = theta
        weights[p, : len(theta)] = S[0, :] ** 2
    return nodes, weights


def density_on_grid(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """Spectral density on ``grid``: the probe average of Σ_i w_i N(t; θ_i, σ²) (integrates to 1)."""
    ok = ~np.isnan(nodes)
    dens = np.zeros_like(grid, dtype=float)
    for p in range(nodes.shape[0]):
        th, w = nodes[p][ok[p]], weights[p][ok[p]]
        dens += (w[None, :] * np.exp(-((grid[:, None] - th[None, :]) ** 2) / (2 * sigma**2))).sum(1)
    return dens / (nodes.shape[0] * sigma * math.sqrt(2 * math.pi))


def _check_k(k: int, dim: int) -> None:
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if k > dim:
        raise UserError(f"k = {k} is larger than the subspace dimension ({dim})")
