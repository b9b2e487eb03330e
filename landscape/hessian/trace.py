"""Trace and diagonal estimators of a :class:`~landscape.hessian.operators.CurvatureOperator`, each with a
budget of operator products and a standard error.

* :func:`hutchinson` — Hutchinson's estimator with Rademacher probes (Girard 1989; Hutchinson 1989);
* :func:`hutchpp` — Hutch++ (Meyer, Musco, Musco & Woodruff 2021): the exact trace on a sketch of the
  dominant range plus Hutchinson on the deflated rest, with adaptive stopping;
* :func:`diagonal` — the diagonal by Hutchinson's ``E[z ⊙ Az]`` (Bekas, Kokiopoulou & Saad 2007), or
  by Diag++ (Baston & Nakatsukasa 2022), its Hutch++-style deflation.

All probes go through ``matmat`` in blocks, one pass over the data per block for the model operators.
Standard errors are those of the sample mean over probes; with a sketch Q they are conditional on Q,
given which the estimators are unbiased. Random vectors are drawn on the CPU from ``generator``
(default: seed 0). Units are those of the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from landscape.hessian.algorithms import _rademacher, _stderr
from landscape.hessian.operators import CurvatureOperator
from training.errors import UserError

TRACE_METHODS = ("hutchinson", "hutchpp")
DIAGONAL_METHODS = ("hutchinson", "diag++")


@dataclass(frozen=True)
class TraceResult:
    """A trace estimate: ``trace`` ± ``stderr`` (standard error) from ``probes`` Hutchinson probes after a
    sketch of ``sketch`` vectors (Hutch++; 0 for Hutchinson), ``matvecs`` products in all."""

    trace: float
    stderr: float
    probes: int
    matvecs: int
    converged: bool
    sketch: int = 0
    method: str = "hutchinson"


@dataclass(frozen=True)
class DiagonalResult:
    """A diagonal estimate (dim,) with per-coordinate standard errors (dim,) (0 where it is exact)."""

    diagonal: np.ndarray
    stderr: np.ndarray
    probes: int
    matvecs: int
    sketch: int = 0
    method: str = "hutchinson"


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


def hutchpp(
    op: CurvatureOperator,
    *,
    tol: float = 1e-2,
    max_matvecs: int = 99,
    sketch: int | None = None,
    min_probes: int = 10,
    block_size: int = 10,
    generator: torch.Generator | None = None,
) -> TraceResult:
    """Hutch++: ``tr(A) = tr(QᵀAQ) + tr((I − QQᵀ) A (I − QQᵀ))`` with Q an orthonormal basis of ``A S``
    for a Rademacher sketch S of ``sketch`` columns (default ``max_matvecs // 3``, Meyer et al.'s split);
    the first term is exact (``sketch`` more products), the second is Hutchinson's estimate with probes
    projected off Q, in blocks of ``block_size``, until its standard error is ≤ ``tol``·|trace| (after
    ``min_probes``) or the budget of ``max_matvecs`` products is spent. With ``sketch`` ≥ dim the
    estimate is exact (standard error 0). A spectrum dominated by a few large eigenvalues, as a
    network's Hessian is, loses most of its variance to the sketch.
    """
    s = max_matvecs // 3 if sketch is None else int(sketch)
    s = min(s, op.dim)
    if s < 1 or max_matvecs < 2 * s + (s < op.dim) or block_size < 1:
        raise UserError(
            f"max_matvecs = {max_matvecs} cannot pay for a sketch of {s} (2 x sketch + at least one probe)",
            param="max_matvecs",
        )
    generator = generator or torch.Generator().manual_seed(0)
    S = torch.stack([_rademacher(op, generator) for _ in range(s)], dim=1)
    Q, _ = torch.linalg.qr(op.matmat(S))
    exact = float((Q * op.matmat(Q)).sum())
    matvecs = 2 * s
    samples: list[float] = []
    converged = s == op.dim
    budget = max_matvecs - matvecs
    while not converged and len(samples) < budget:
        b = min(block_size, budget - len(samples))
        Z = torch.stack([_rademacher(op, generator) for _ in range(b)], dim=1)
        Z = Z - Q @ (Q.T @ Z)
        samples.extend((Z * op.matmat(Z)).sum(0).double().cpu().tolist())
        if len(samples) >= min(min_probes, budget) and len(samples) > 1:
            converged = _stderr(samples) <= tol * abs(exact + float(np.mean(samples)))
    matvecs += len(samples)
    if s == op.dim:
        return TraceResult(exact, 0.0, 0, matvecs, True, s, "hutchpp")
    stderr = _stderr(samples) if len(samples) > 1 else float("nan")
    return TraceResult(exact + float(np.mean(samples)), stderr, len(samples), matvecs, converged, s, "hutchpp")


def diagonal(
    op: CurvatureOperator,
    *,
    method: str = "hutchinson",
    max_matvecs: int = 100,
    sketch: int | None = None,
    block_size: int = 10,
    generator: torch.Generator | None = None,
) -> DiagonalResult:
    """The diagonal of the operator from ``max_matvecs`` products.

    ``method="hutchinson"``: the mean of ``z ⊙ Az`` over Rademacher probes (unbiased, since z_i² = 1).
    ``method="diag++"``: with Q an orthonormal basis of ``A S`` (``sketch`` columns, default
    ``max_matvecs // 3``), ``diag(A) = diag(Q (AQ)ᵀ) + diag((I − QQᵀ) A)``; the first term is exact
    (rows of ``Q ⊙ AQ``), the second is Hutchinson's with the rest of the budget. Exact when the sketch
    spans the space. Standard errors are per coordinate.
    """
    if method not in DIAGONAL_METHODS:
        raise UserError(
            f"unknown diagonal method {method!r}; choose from: {', '.join(DIAGONAL_METHODS)}", param="method"
        )
    generator = generator or torch.Generator().manual_seed(0)
    base = torch.zeros(op.dim, dtype=torch.float64)
    Q = None
    s = 0
    if method == "diag++":
        s = min(max_matvecs // 3 if sketch is None else int(sketch), op.dim)
        if s < 1 or max_matvecs < 2 * s:
            raise UserError(f"max_matvecs = {max_matvecs} cannot pay for a sketch of {s}", param="max_matvecs")
        S = torch.stack([_rademacher(op, generator) for _ in range(s)], dim=1)
        Q, _ = torch.linalg.qr(op.matmat(S))
        base = (Q * op.matmat(Q)).sum(1).double().cpu()
    probes = 0 if s == op.dim else max_matvecs - 2 * s
    if probes < 2 and s < op.dim:
        raise UserError(f"max_matvecs = {max_matvecs} leaves fewer than 2 probes", param="max_matvecs")
    total = torch.zeros(op.dim, dtype=torch.float64)
    squares = torch.zeros(op.dim, dtype=torch.float64)
    done = 0
    while done < probes:
        b = min(block_size, probes - done)
        Z = torch.stack([_rademacher(op, generator) for _ in range(b)], dim=1)
        AZ = op.matmat(Z)
        if Q is not None:
            AZ = AZ - Q @ (Q.T @ AZ)
        x = (Z * AZ).double().cpu()
        total += x.sum(1)
        squares += (x * x).sum(1)
        done += b
    if probes == 0:
        return DiagonalResult(base.numpy(), np.zeros(op.dim), 0, 2 * s, s, method)
    mean = total / probes
    var = ((squares - probes * mean * mean) / (probes - 1)).clamp_min(0)
    stderr = (var / probes).sqrt()
    return DiagonalResult((base + mean).numpy(), stderr.numpy(), probes, 2 * s + probes, s, method)
