"""The Lanczos core shared by :func:`~landscape.hessian.algorithms.lanczos` (top-k eigenpairs) and
:func:`~landscape.hessian.algorithms.slq` (spectral density): m steps of the Lanczos recurrence with
full reorthogonalisation build an orthonormal basis Q and the tridiagonal T = QᵀHQ.

Full reorthogonalisation (against every previous vector, twice) costs O(m·dim) per step but keeps Q
orthonormal in floating point, so no spurious ("ghost") Ritz values appear; PyHessian's density also
reorthogonalises against every previous vector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from landscape.hessian.operators import CurvatureOperator


@dataclass(frozen=True)
class Tridiagonal:
    """The Lanczos relation ``H Q = Q T + beta q_{m+1} e_m^T`` after m steps.

    ``alphas`` (m,) and ``betas`` (m-1,) are the diagonal and off-diagonal of T; ``basis`` is Q, (dim, m)
    with orthonormal columns. ``blocks`` lists the first step of each Krylov block: a new block starts
    (with ``betas`` 0 there) when the previous one became invariant and the core restarted from a random
    vector orthogonal to Q. ``breakdown``: the last block is invariant (``beta`` was ≈ 0, stored as 0).
    ``stopped``: the caller's stopping rule was met.
    """

    alphas: np.ndarray
    betas: np.ndarray
    basis: torch.Tensor
    beta: float
    blocks: tuple[int, ...]
    breakdown: bool
    stopped: bool
    matvecs: int

    @property
    def m(self) -> int:
        return len(self.alphas)

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors S of T (columns)."""
        return scipy.linalg.eigh_tridiagonal(self.alphas, self.betas)


def lanczos_tridiagonal(
    op: CurvatureOperator,
    start: torch.Tensor,
    *,
    steps: int,
    restart: bool = False,
    generator: torch.Generator | None = None,
    stop: Callable[[Tridiagonal], bool] | None = None,
) -> Tridiagonal:
    """Lanczos from ``start`` with full reorthogonalisation (twice, "twice is enough"), up to ``steps`` steps.

    A breakdown, β ≤ min(1000·eps, 1e-6)·‖T‖ (eps of the operator's dtype; ‖T‖ estimated by the largest
    |α|, β so far), means the Krylov space is invariant to rounding: its Ritz values are exact
    eigenvalues. Without ``restart`` the run ends there (what quadrature needs: the rule is then exact
    for the start vector); with ``restart`` it goes on from a random vector orthogonal to Q (drawn with
    ``generator``), the coupling to the closed block set to 0, so an operator of low rank or with
    repeated eigenvalues still yields as many eigenvalues as asked, with their multiplicities. A β just
    above the threshold (rounding noise, typical in float32) gives a direction that is orthogonalised
    like any other, so the run never stops for want of directions. The run also ends when Q spans the
    space or when ``stop(state)`` (called after every step) returns True.
    """
    dim = op.dim
    steps = min(steps, dim)
    threshold = min(1000 * torch.finfo(op.dtype).eps, 1e-6)
    Q = torch.zeros((steps, dim), dtype=op.dtype, device=op.device)  # rows are the Lanczos vectors
    Q[0] = start.to(dtype=op.dtype, device=op.device) / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    blocks = [0]
    scale = 0.0
    generator = generator or torch.Generator().manual_seed(0)
    for j in range(steps):
        w = op.matvec(Q[j])
        alpha = float(torch.dot(w, Q[j]))
        w = w - alpha * Q[j]
        if j > blocks[-1]:
            w = w - betas[-1] * Q[j - 1]
        for _ in range(2):
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        scale = max(scale, abs(alpha), beta)
        breakdown = beta <= threshold * scale
        state = Tridiagonal(
            np.array(alphas),
            np.array(betas),
            Q[: j + 1].T,
            0.0 if breakdown else beta,
            tuple(blocks),
            breakdown,
            False,
            j + 1,
        )
        if stop is not None and stop(state):
            return dataclasses.replace(state, stopped=True)
        if j + 1 == steps or (breakdown and not restart):
            return state
        if breakdown:
            w = torch.randn(dim, generator=generator, dtype=torch.float64).to(dtype=op.dtype, device=op.device)
            for _ in range(2):
                w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            blocks.append(j + 1)
            betas.append(0.0)
            Q[j + 1] = w / w.norm()
        else:
            betas.append(beta)
            Q[j + 1] = w / beta
    raise AssertionError("unreachable: the loop returns at its last step")


def lanczos_chains(op: CurvatureOperator, starts: torch.Tensor, *, steps: int) -> list[Tridiagonal]:
    """Independent Lanczos runs from the columns of ``starts`` (dim, p), advanced together: each step
    applies the operator to the current vector of every chain still running with one ``matmat`` (one
    pass over the data for all chains). Each chain is the core's run without restart (full
    reorthogonalisation against its own basis, twice; it ends at a breakdown), so the result equals
    ``[lanczos_tridiagonal(op, starts[:, i], steps=steps) for i]`` up to rounding. Memory: p·steps vectors."""
    dim, p = int(starts.shape[0]), int(starts.shape[1])
    steps = min(steps, dim)
    threshold = min(1000 * torch.finfo(op.dtype).eps, 1e-6)
    Q = torch.zeros((p, steps, dim), dtype=op.dtype, device=op.device)
    S = starts.to(dtype=op.dtype, device=op.device)
    Q[:, 0] = (S / torch.linalg.vector_norm(S, dim=0)).T
    alphas: list[list[float]] = [[] for _ in range(p)]
    betas: list[list[float]] = [[] for _ in range(p)]
    scale = [0.0] * p
    final: list[Tridiagonal | None] = [None] * p
    running = list(range(p))
    for j in range(steps):
        W = op.matmat(Q[running, j].T)
        still = []
        for col, c in enumerate(running):
            w = W[:, col]
            alpha = float(torch.dot(w, Q[c, j]))
            w = w - alpha * Q[c, j]
            if j > 0:
                w = w - betas[c][-1] * Q[c, j - 1]
            for _ in range(2):
                w = w - Q[c, : j + 1].T @ (Q[c, : j + 1] @ w)
            beta = float(w.norm())
            alphas[c].append(alpha)
            scale[c] = max(scale[c], abs(alpha), beta)
            breakdown = beta <= threshold * scale[c]
            if breakdown or j + 1 == steps:
                final[c] = Tridiagonal(
                    np.array(alphas[c]),
                    np.array(betas[c]),
                    Q[c, : j + 1].T,
                    0.0 if breakdown else beta,
                    (0,),
                    breakdown,
                    False,
                    j + 1,
                )
            else:
                betas[c].append(beta)
                Q[c, j + 1] = w / beta
                still.append(c)
        running = still
        if not running:
            break
    return [t for t in final if t is not None]
