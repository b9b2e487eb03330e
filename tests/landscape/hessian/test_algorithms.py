"""Algorithms on operators with known spectra: Lanczos (and its core), eigsh, power iteration, Hutchinson, SLQ."""

import numpy as np
import pytest
import torch

from landscape.hessian import (
    CallableOperator,
    MatrixOperator,
    density_on_grid,
    eigsh,
    hutchinson,
    lanczos,
    lanczos_tridiagonal,
    power_iteration,
    slq,
)
from tests.landscape.hessian.helpers import EIGS, known_matrix
from training.errors import UserError


@pytest.mark.parametrize("algorithm", [lanczos, eigsh])
def test_top_k_on_a_known_spectrum(algorithm):
    op = MatrixOperator(known_matrix(EIGS))
    res = algorithm(op, k=4, tol=1e-10, max_iter=50)
    np.testing.assert_allclose(res.eigenvalues, [10, 7, 5, 3], rtol=1e-8)
    assert np.all(res.residuals < 1e-6)
    assert res.converged and res.matvecs == op.matvecs


def test_lanczos_residual_estimate_matches_true_residual():
    a = known_matrix(EIGS, seed=3)
    res = lanczos(MatrixOperator(a), k=3, tol=1e-3, max_iter=50, return_vectors=True)
    assert res.eigenvectors.shape == (len(EIGS), 3)  # columns, as matmat
    for i in range(3):
        v = res.eigenvectors[:, i]
        true = float((a @ v - res.eigenvalues[i] * v).norm())
        assert true == pytest.approx(res.residuals[i], rel=1e-3, abs=1e-10)
        assert abs(float(v.norm()) - 1) < 1e-8


def test_a_bare_matvec_through_the_adapter():
    a = known_matrix(EIGS)
    op = CallableOperator(lambda v: a @ v, len(EIGS), dtype=torch.float64)
    res = lanczos(op, k=2, tol=1e-10, max_iter=50)
    np.testing.assert_allclose(res.eigenvalues, [10, 7], rtol=1e-8)
    torch.testing.assert_close(op.matmat(torch.eye(len(EIGS), dtype=torch.float64)[:, :3]), a[:, :3])


def test_the_lanczos_core_builds_an_orthonormal_basis_and_T_equal_to_QtHQ():
    a = known_matrix(EIGS, seed=5)
    start = torch.randn(len(EIGS), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = lanczos_tridiagonal(MatrixOperator(a), start, steps=20)
    q = t.basis
    T = np.diag(t.alphas) + np.diag(t.betas, 1) + np.diag(t.betas, -1)
    assert t.m == 20 and t.matvecs == 20 and not t.breakdown
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(20), atol=1e-12)
    np.testing.assert_allclose((q.T @ a @ q).numpy(), T, atol=1e-10)


def test_power_iteration_known_spectrum():
    res = power_iteration(MatrixOperator(known_matrix([10.0, 4.0, 1.0, 0.5, 0.2, 0.1])), k=2, tol=1e-10, max_iter=500)
    np.testing.assert_allclose(res.eigenvalues, [10.0, 4.0], rtol=1e-6)
    assert np.all(res.iterations > 1) and np.all(res.residuals < 1e-3)
    assert res.converged and res.matvecs == res.iterations.sum()


def test_hutchinson_and_slq_on_a_known_spectrum():
    eigs = list(np.linspace(-1, 3, 200))
    op = MatrixOperator(known_matrix(eigs, seed=1))
    tr = hutchinson(op, tol=1e-3, max_probes=400)
    trace, stderr, n = tr.trace, tr.stderr, tr.probes
    assert abs(trace - sum(eigs)) < 4 * stderr and n >= 10
    assert tr.matvecs == n
    res = slq(op, probes=4, steps=60)
    nodes, weights = res.nodes, res.weights
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-10)
    assert np.nanmax(nodes) == pytest.approx(3.0, abs=1e-6) and np.nanmin(nodes) == pytest.approx(-1.0, abs=1e-6)
    # the quadrature's first moment is z^T A z / z^T z, an unbiased estimate of trace / n
    mean = float(np.nanmean([(nodes[p] * weights[p]).sum() for p in range(4)]))
    assert mean == pytest.approx(np.mean(eigs), abs=0.15)
    grid = np.linspace(-2, 4, 2001)
    dens = density_on_grid(nodes, weights, grid, sigma=0.05)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, rel=1e-3)


def test_k_larger_than_the_subspace():
    op = MatrixOperator(torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64)))
    with pytest.raises(UserError, match="larger than the subspace dimension") as err:
        lanczos(op, k=3)
    assert err.value.param == "k"


# ------------------------------------------------------------------ regressions


@pytest.mark.parametrize(
    ("eigs", "k", "expected"),
    [
        ([0.0] * 6, 3, [0, 0, 0]),  # the zero operator: the Krylov space is invariant after one step
        ([4.0, 1.0] + [0.0] * 8, 4, [4, 1, 0, 0]),  # rank 2: invariant after three steps, k = 4
        ([5.0, 5.0, 1.0], 2, [5, 5]),  # a repeated eigenvalue: one Krylov space sees 5 only once
        ([3.0, 3.0, 3.0, 2.0, 2.0, -1.0, -1.0, -1.0], 6, [3, 3, 3, 2, 2, -1]),
    ],
)
def test_lanczos_returns_k_eigenvalues_when_the_krylov_space_is_invariant(eigs, k, expected):
    """Before: fewer than k Lanczos steps before β = 0 crashed (theta None -> TypeError), and a repeated
    eigenvalue was silently reported once ([5, 1] for the top 2 of diag(5, 5, 1))."""
    op = MatrixOperator(known_matrix(eigs, seed=2))
    res = lanczos(op, k=k, tol=1e-8, max_iter=100, return_vectors=True)
    np.testing.assert_allclose(res.eigenvalues, expected, atol=1e-10)
    assert res.converged and np.all(res.residuals < 1e-8)
    v = res.eigenvectors
    np.testing.assert_allclose((v.T @ v).numpy(), np.eye(k), atol=1e-8)  # distinct vectors for repeats
    np.testing.assert_allclose((op.matrix @ v - v * torch.tensor(res.eigenvalues)).norm(dim=0), 0, atol=1e-8)


def test_slq_stops_at_an_invariant_krylov_space_without_restarting():
    eigs = [4.0, 1.0] + [0.0] * 8
    op = MatrixOperator(known_matrix(eigs, seed=2))
    res = slq(op, probes=2, steps=8)
    assert np.isnan(res.nodes[:, 3:]).all() and np.all(res.weights[:, 3:] == 0)  # three distinct eigenvalues
    np.testing.assert_allclose(np.sort(res.nodes[:, :3], axis=1), [[0, 1, 4]] * 2, atol=1e-10)
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, rtol=1e-12)
    assert res.matvecs == 6


@pytest.mark.parametrize(("k", "max_iter"), [(1, 25), (1, 60), (3, 40), (2, 5)])
def test_eigsh_max_iter_bounds_the_products(k, max_iter):
    """Before: ARPACK got ``maxiter=max_iter*dim`` restarts, so ``max_iter`` bounded nothing."""
    eigs = list(np.linspace(1, 1.001, 5)) + list(np.linspace(0, 0.999, 295))  # a tight top cluster: slow
    op = MatrixOperator(known_matrix(eigs, seed=4))
    res = eigsh(op, k=k, tol=1e-14, max_iter=max_iter)
    assert res.iterations[0] <= max_iter and res.matvecs <= max_iter + k and res.matvecs == op.matvecs
    assert not res.converged
    found = ~np.isnan(res.eigenvalues)
    assert np.all(res.eigenvalues[found] <= 1.001 + 1e-12) and np.all(np.isnan(res.residuals[~found]))


def test_eigsh_refuses_a_budget_it_cannot_keep():
    op = MatrixOperator(known_matrix(EIGS))
    with pytest.raises(UserError, match="max_iter = 4 is too small") as err:
        eigsh(op, k=2, max_iter=4)
    assert err.value.param == "max_iter"
