"""Block Lanczos: k extreme eigenpairs from a block Krylov space, one ``matmat`` (one pass over the data)
per block step, optionally started from given vectors (warm starts).

From an orthonormal start block Q_1 (dim × b) the recurrence ``A Q_j = Q_{j−1} C_{j−1}ᵀ + Q_j A_j +
Q_{j+1} C_j`` builds an orthonormal basis Q of span{Q_1, A Q_1, A² Q_1, ...} and the block-tridiagonal
T = QᵀAQ (Golub & Underwood 1977). As in :func:`~landscape.hessian.lanczos.lanczos_tridiagonal` every new
block is reorthogonalised against the whole basis, twice, so no spurious Ritz values appear. The
remainder W_j = A Q_j − (the basis' part) gives every Ritz vector's residual exactly and cheaply:
``‖A y − θ y‖ = ‖W_j s_last‖`` for ``y = Q s``, from the b × b Gram matrix of W_j.

A remainder of lower rank than b (an invariant subspace found, or a start block with dependent
columns) is completed with random directions orthogonal to the basis, coupled to nothing, as the
single-vector core restarts; so k eigenvalues always come back with their multiplicities.

Started from the Ritz vectors of a nearby operator (the previous checkpoint of a run), the first
block is already a good Rayleigh–Ritz subspace and a few block steps settle the k eigenvalues.
Stopping rules and ``which`` are those of :mod:`landscape.hessian.ritz`.
"""

from __future__ import annotations

import numpy as np
import torch

from landscape.hessian.algorithms import SpectrumResult, _check_k
from landscape.hessian.operators import CurvatureOperator
from landscape.hessian.ritz import check_criterion, check_which, converged, error_bounds, select
from training.errors import UserError


def block_lanczos(
    op: CurvatureOperator,
    *,
    k: int = 1,
    start: torch.Tensor | None = None,
    block_size: int | None = None,
    tol: float = 1e-3,
    max_iter: int = 100,
    criterion: str = "bound",
    which: str = "largest",
    generator: torch.Generator | None = None,
    return_vectors: bool = False,
) -> SpectrumResult:
    """k extreme eigenpairs (``which``) by block Lanczos from ``start`` (dim, b) (default: a Gaussian block
    of ``block_size`` columns, default k), at most ``max_iter`` operator products, stopping by
    ``criterion`` at relative tolerance ``tol`` (checked after every block). ``iterations`` counts the
    products; residuals are exact (not estimates)."""
    check_criterion(criterion)
    check_which(which)
    _check_k(k, op.dim)
    generator = generator or torch.Generator().manual_seed(0)
    dim = op.dim
    if start is None:
        b = min(block_size or k, dim)
        start = torch.randn(dim, b, generator=generator, dtype=torch.float64)
    if start.ndim != 2 or start.shape[0] != dim:
        raise UserError(f"start must have shape (dim, b) = ({dim}, b), got {tuple(start.shape)}", param="start")
    b = min(int(start.shape[1]), dim)
    if b < 1 or max_iter < b:
        raise UserError(f"max_iter = {max_iter} is smaller than the block size {b}", param="max_iter")
    threshold = min(1000 * torch.finfo(op.dtype).eps, 1e-6)
    X = start[:, :b].to(dtype=op.dtype, device=op.device)
    basis = torch.zeros((dim, 0), dtype=op.dtype, device=op.device)
    block, _, _ = _orthonormal_block(X, basis, b, threshold * float(X.norm()), generator)
    T = np.zeros((0, 0))
    previous_q = None
    coupling = None  # C_{j-1}, shape (b_j, b_{j-1})
    history: list[np.ndarray] = []
    products = 0
    stopped = False
    scale = 0.0
    m = 0
    was_deficient = False
    while True:
        W = op.matmat(block)
        products += block.shape[1]
        A = block.T @ W
        A = 0.5 * (A + A.T)
        W = W - block @ A
        if previous_q is not None:
            W = W - previous_q @ coupling.T
        basis = torch.cat([basis, block], dim=1)
        for _ in range(2):
            W = W - basis @ (basis.T @ W)
        T = _extend(T, A.double().cpu().numpy(), None if coupling is None else coupling.double().cpu().numpy())
        theta, S = np.linalg.eigh(T)
        gram = (W.T @ W).double().cpu().numpy()
        last = S[-block.shape[1] :, :]
        residuals = np.sqrt(np.maximum(np.einsum("im,ij,jm->m", last, gram, last), 0.0))
        m = basis.shape[1]
        scale = max(scale, float(np.abs(theta).max()), float(np.sqrt(max(np.trace(gram), 0.0))))
        nxt = min(b, dim - m, max_iter - products)
        new = _orthonormal_block(W, basis, nxt, threshold * scale, generator) if nxt >= 1 else None
        # A remainder of lower rank means an invariant subspace: its Ritz values are exact, but an eigenvalue of
        # higher multiplicity than the block may hide behind it. So random directions go in first, and a
        # deficient step settles only when the previous one was deficient too and its random directions
        # changed none of the kept values.
        deficient = new is not None and new[2] < nxt
        if m >= k:
            kept = select(theta, k, which)
            prev = history[-1] if history else None
            history.append(theta[kept])
            unchanged = prev is not None and bool(np.allclose(theta[kept], prev, rtol=tol, atol=0))
            blocked = deficient and not (was_deficient and unchanged)
            if not blocked and converged(criterion, tol, theta, residuals, kept, prev):
                stopped = True
                break
        was_deficient = deficient
        if new is None:
            break
        previous_q, coupling, block = block, new[1], new[0]
    if m < k:
        raise UserError(f"max_iter = {max_iter} is too small to find k = {k} eigenvalues", param="max_iter")
    kept = select(theta, k, which)
    vectors = None
    if return_vectors:
        vectors = basis @ torch.from_numpy(S[:, kept].copy()).to(dtype=op.dtype, device=op.device)
    return SpectrumResult(
        theta[kept].copy(),
        residuals[kept],
        np.full(k, products),
        products,
        stopped or m == dim,
        vectors,
        error_bounds(theta, residuals)[kept],
    )


def _orthonormal_block(
    W: torch.Tensor, basis: torch.Tensor, size: int, threshold: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """An orthonormal block of ``size`` columns spanning the numerically independent part of ``W``
    (orthogonal to ``basis``), completed with random directions; the coupling C with ``W ≈ block @ C``
    (rows of the random directions are 0); and the rank kept from ``W``."""
    U, sigma, Vh = torch.linalg.svd(W, full_matrices=False)
    rank = min(int((sigma > threshold).sum()), size)
    block = U[:, :rank]
    coupling = torch.zeros((size, W.shape[1]), dtype=W.dtype, device=W.device)
    coupling[:rank] = sigma[:rank, None] * Vh[:rank]
    if rank < size:
        dim = W.shape[0]
        fill = torch.randn(dim, size - rank, generator=generator, dtype=torch.float64).to(W.dtype).to(W.device)
        known = torch.cat([basis, block], dim=1)
        for _ in range(2):
            fill = fill - known @ (known.T @ fill)
        fill, _ = torch.linalg.qr(fill)
        for _ in range(2):
            fill = fill - known @ (known.T @ fill)
        fill = fill / torch.linalg.vector_norm(fill, dim=0)
        block = torch.cat([block, fill], dim=1)
    return block, coupling, rank


def _extend(T: np.ndarray, A: np.ndarray, C: np.ndarray | None) -> np.ndarray:
    """T with the diagonal block A appended; C (new × previous block) couples it to T's last block."""
    m, n = T.shape[0], A.shape[0]
    out = np.zeros((m + n, m + n))
    out[:m, :m] = T
    out[m:, m:] = A
    if C is not None:
        p = C.shape[1]
        out[m:, m - p : m] = C
        out[m - p : m, m:] = C.T
    return out
