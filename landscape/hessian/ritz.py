"""Ritz values: which ones to keep (``which``), error bounds on them, and the stopping rules that use both.

Shared by :func:`~landscape.hessian.algorithms.lanczos` and
:func:`~landscape.hessian.block_lanczos.block_lanczos`.

**Which.** ``"largest"`` (largest algebraic, the default), ``"smallest"`` (smallest algebraic: the most
negative curvature) and ``"magnitude"`` (largest |λ|, what power iteration finds). Results are sorted
in that order: descending, ascending, and by descending magnitude.

**Error bound.** For a Ritz pair (θ, y) with residual ``r = ‖Hy − θy‖`` some eigenvalue λ of H satisfies
``|θ − λ| ≤ r``; if moreover the rest of the spectrum is at least δ away from θ, then
``|θ − λ| ≤ r²/δ`` (Kato–Temple; Parlett, *The Symmetric Eigenvalue Problem*, Thm 11.7.1). The gap is
estimated from the other Ritz values, each widened by its own residual: ``δ_i = min_{j≠i} (|θ_j − θ_i| −
r_j)``; the bound is ``min(r_i, r_i²/δ_i)`` when ``δ_i > r_i`` and ``r_i`` otherwise (or when θ_i has no
neighbour). As for every Krylov stopping rule, an eigenvalue the Krylov space has not seen yet cannot
enter the estimate.

**Stopping rules** (``criterion``): ``"bound"`` (default) stops when every kept Ritz value's error bound
is ≤ ``tol``·|θ_i|, i.e. when the *eigenvalue* is accurate to ``tol`` relatively; ``"residual"`` when
every residual is ≤ ``tol``·|θ_i| (about the square of that accuracy near a gap: at tol 1e-3 it returns
eigenvalues accurate to ~1e-7 while PyHessian at the same tol returns ~1e-4); ``"change"`` when the kept
Ritz values change by less than ``tol`` relatively between steps (PyHessian's test).
"""

from __future__ import annotations

import numpy as np

from training.errors import UserError

WHICH = ("largest", "smallest", "magnitude")
CRITERIA = ("bound", "residual", "change")
ORDER = {"largest": "descending", "smallest": "ascending", "magnitude": "descending magnitude"}
ARPACK_WHICH = {"largest": "LA", "smallest": "SA", "magnitude": "LM"}


def check_which(which: str) -> str:
    if which not in WHICH:
        raise UserError(f"unknown which {which!r}; choose from: {', '.join(WHICH)}", param="which")
    return which


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise UserError(
            f"unknown convergence criterion {criterion!r}; choose from: {', '.join(CRITERIA)}", param="criterion"
        )
    return criterion


def score(theta: np.ndarray, which: str) -> np.ndarray:
    """Larger is preferred: θ, −θ or |θ|."""
    if which == "largest":
        return np.asarray(theta, dtype=float)
    if which == "smallest":
        return -np.asarray(theta, dtype=float)
    return np.abs(np.asarray(theta, dtype=float))


def select(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the k preferred values of ``theta``, in ``which``'s order (ties keep index order)."""
    return np.argsort(-score(theta, which), kind="stable")[:k]


def sort_result(values: np.ndarray, which: str) -> np.ndarray:
    """The permutation that sorts ``values`` in ``which``'s order; NaN last."""
    s = score(values, which)
    return np.argsort(np.where(np.isnan(s), -np.inf, -s), kind="stable")


def error_bounds(theta: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Bounds on |θ_i − λ| for every Ritz pair (see the module docstring); ``theta`` and ``residuals`` cover
    all Ritz pairs of the projection, so that gaps can be estimated."""
    theta = np.asarray(theta, dtype=float)
    r = np.asarray(residuals, dtype=float)
    out = r.copy()
    if len(theta) < 2:
        return out
    dist = np.abs(theta[None, :] - theta[:, None]) - r[None, :]
    np.fill_diagonal(dist, np.inf)
    gap = dist.min(axis=1)
    tight = gap > r
    out[tight] = np.minimum(r[tight], r[tight] ** 2 / gap[tight])
    return out


def converged(
    criterion: str,
    tol: float,
    theta: np.ndarray,
    residuals: np.ndarray,
    kept: np.ndarray,
    previous: np.ndarray | None = None,
) -> bool:
    """Whether the kept Ritz values ``theta[kept]`` meet ``criterion`` at relative tolerance ``tol``."""
    scale = tol * np.maximum(np.abs(theta[kept]), 1e-12)
    if criterion == "bound":
        return bool(np.all(error_bounds(theta, residuals)[kept] <= scale))
    if criterion == "residual":
        return bool(np.all(residuals[kept] <= scale))
    if previous is None or len(previous) != len(kept):
        return False
    return bool(np.all(np.abs(theta[kept] - previous) <= tol * np.maximum(np.abs(previous), 1e-12)))
