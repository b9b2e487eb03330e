"""which, parameter groups, the eigenvalue-error stopping rule, block Lanczos and SLQ chains."""

import numpy as np
import pytest
import torch

from landscape.hessian import (
    MatrixOperator,
    block_lanczos,
    error_bounds,
    hessian_eigenvalues,
    lanczos,
    lanczos_chains,
    lanczos_tridiagonal,
    parameter_groups,
)
from tests.landscape.hessian.helpers import (
    EIGS,
    exact_ggn,
    exact_hessian,
    known_matrix,
    mask_keep,
    random_mask,
    tiny_model_and_data,
)
from training.errors import UserError


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
@pytest.mark.parametrize("algorithm", [lanczos, block_lanczos])
def test_which_on_a_known_spectrum(which, algorithm):
    op = MatrixOperator(known_matrix(EIGS))
    res = algorithm(op, k=3, tol=1e-10, max_iter=50, which=which, return_vectors=True)
    expected = {"largest": [10, 7, 5], "smallest": [-1, -0.2, 0], "magnitude": [10, 7, 5]}[which]
    np.testing.assert_allclose(res.eigenvalues, expected, atol=1e-9)
    assert np.all(res.error_bounds <= 1e-10 * np.maximum(np.abs(res.eigenvalues), 1e-12))
    v = res.eigenvectors
    true = (op.matrix @ v - v * torch.tensor(res.eigenvalues)).norm(dim=0).numpy()
    np.testing.assert_allclose(true, res.residuals, rtol=1e-3, atol=1e-12)  # the residuals reported are true
    mixed = MatrixOperator(known_matrix([3.0, 1.0, 0.5, -0.2, -4.0, -2.5] + [0.01] * 20, seed=1))
    res = algorithm(mixed, k=3, tol=1e-10, max_iter=26, which="magnitude")
    np.testing.assert_allclose(res.eigenvalues, [-4.0, 3.0, -2.5], atol=1e-9)  # sorted by magnitude


def test_the_error_bound_holds_and_is_far_below_the_residual():
    """Bounds from partly converged Ritz pairs are ≥ the true errors; near a gap they are about r²/δ."""
    eigs = [10.0, 7.0, 5.0, *list(np.linspace(0, 3, 200))]
    a = known_matrix(eigs, seed=3)
    start = torch.randn(len(eigs), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for steps in (6, 10, 14, 20):
        t = lanczos_tridiagonal(MatrixOperator(a), start, steps=steps)
        theta, S = t.ritz()
        r = t.beta * np.abs(S[-1])
        bounds = error_bounds(theta, r)
        for i in (-1, -2, -3):  # the top three Ritz values approximate 10, 7, 5
            err = abs(theta[i] - eigs[-i - 1])
            assert err <= bounds[i] * (1 + 1e-6) + 1e-14 and bounds[i] <= r[i] + 1e-15
    assert bounds[-1] < 1e-3 * r[-1]


def test_the_bound_rule_meets_the_requested_eigenvalue_accuracy_with_fewer_products():
    eigs = [10.0, 9.0, 8.5, *list(np.linspace(0, 8, 300))]
    a = known_matrix(eigs, seed=5)
    for tol in (1e-3, 1e-5):
        bound = lanczos(MatrixOperator(a), k=3, tol=tol, max_iter=300, criterion="bound")
        residual = lanczos(MatrixOperator(a), k=3, tol=tol, max_iter=300, criterion="residual")
        assert bound.converged and residual.converged
        err = np.abs(bound.eigenvalues - [10, 9, 8.5]) / np.array([10, 9, 8.5])
        assert np.all(err <= tol) and np.all(bound.error_bounds <= tol * np.abs(bound.eigenvalues))
        assert np.all(np.abs(bound.eigenvalues - [10, 9, 8.5]) <= bound.error_bounds * (1 + 1e-6) + 1e-12)
        assert bound.matvecs < residual.matvecs  # the residual rule overshoots the requested accuracy


def test_block_lanczos_warm_start_needs_fewer_products():
    a = known_matrix(EIGS)
    prior = lanczos(MatrixOperator(a), k=5, tol=1e-8, max_iter=50, return_vectors=True).eigenvectors
    b = a + 1e-3 * known_matrix(np.linspace(-1, 1, len(EIGS)), seed=9)  # a nearby operator
    exact = np.linalg.eigvalsh(b.numpy())[::-1][:5]
    cold = lanczos(MatrixOperator(b), k=5, tol=1e-6, max_iter=50)
    warm = block_lanczos(MatrixOperator(b), k=5, start=prior, tol=1e-6, max_iter=50)
    np.testing.assert_allclose(warm.eigenvalues, exact, rtol=1e-6)
    np.testing.assert_allclose(cold.eigenvalues, exact, rtol=1e-6)
    assert warm.matvecs < cold.matvecs and warm.matvecs % 5 == 0


def test_block_lanczos_residuals_are_exact_and_dependent_starts_are_completed():
    a = known_matrix(EIGS, seed=2)
    start = torch.randn(len(EIGS), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    start = torch.cat([start, start[:, :1] * 2], dim=1)  # rank 2 in 3 columns
    res = block_lanczos(MatrixOperator(a), k=3, start=start, tol=1e-3, max_iter=50, return_vectors=True)
    v = res.eigenvectors
    true = (a @ v - v * torch.tensor(res.eigenvalues)).norm(dim=0).numpy()
    np.testing.assert_allclose(res.residuals, true, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose((v.T @ v).numpy(), np.eye(3), atol=1e-10)


def test_slq_chains_equal_one_lanczos_run_per_probe():
    a = known_matrix(EIGS, seed=4)
    starts = torch.randn(len(EIGS), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    op = MatrixOperator(a)
    chains = lanczos_chains(op, starts, steps=12)
    assert op.matvecs == 36
    for i, t in enumerate(chains):
        one = lanczos_tridiagonal(MatrixOperator(a), starts[:, i], steps=12)
        np.testing.assert_allclose(t.alphas, one.alphas, rtol=1e-10)
        np.testing.assert_allclose(t.betas, one.betas, rtol=1e-10)


def test_parameter_groups_by_pattern_and_by_layer():
    names = ["conv.weight", "bn.weight", "bn.bias", "layer1.0.conv1.weight", "layer1.0.bn1.weight"]
    names += ["fc.weight", "fc.bias"]
    assert parameter_groups(names) is None
    assert parameter_groups(names, params="fc.*") == [("fc.*", ["fc.weight", "fc.bias"])]
    assert parameter_groups(names, params=["layer1.*", "fc.bias"]) == [
        ("layer1.*", ["layer1.0.conv1.weight", "layer1.0.bn1.weight"]),
        ("fc.bias", ["fc.bias"]),
    ]
    assert parameter_groups(names, params={"norms": ["bn.*", "*bn1*"]}) == [
        ("norms", ["bn.weight", "bn.bias", "layer1.0.bn1.weight"])
    ]
    layers = parameter_groups(names, per_layer=True)
    assert [label for label, _ in layers] == ["conv", "bn", "layer1.0.conv1", "layer1.0.bn1", "fc"]
    assert parameter_groups(names, per_layer=True, params="layer1.*") == [
        ("layer1.0.conv1", ["layer1.0.conv1.weight"]),
        ("layer1.0.bn1", ["layer1.0.bn1.weight"]),
    ]
    with pytest.raises(UserError, match=r"'conv2\.\*' matches no trainable parameter") as err:
        parameter_groups(names, params=["fc.*", "conv2.*"])
    assert err.value.param == "params"


@pytest.mark.parametrize("operator", ["hessian", "ggn"])
def test_per_layer_spectra_are_those_of_the_principal_sub_blocks(operator):
    model, data = tiny_model_and_data(10)
    mask = random_mask(model)
    exact = (exact_hessian if operator == "hessian" else exact_ggn)(model, data)
    keep = mask_keep(model, mask)
    layer = torch.cat([torch.full((p.numel(),), i // 2) for i, p in enumerate(model.parameters())])
    ds = hessian_eigenvalues(
        model, data, k=3, mask=mask, operator=operator, per_layer=True, tol=1e-10, max_iter=200, which="smallest"
    )
    assert ds["eigenvalue"].dims == ("group", "k") and ds["group"].values.tolist() == ["0", "2", "4"]
    for g, label in enumerate(["0", "2", "4"]):
        rows = keep & (layer == g)
        ref = torch.linalg.eigvalsh(exact[rows][:, rows]).numpy()[:3]
        np.testing.assert_allclose(ds["eigenvalue"].sel(group=label).values, ref, rtol=1e-6, atol=1e-12)
        assert int(ds["group_dimension"].sel(group=label)) == int(rows.sum())
    assert ds.attrs["order"] == "ascending" and ds.attrs["hvp_count"] == int(ds["hvp_count"].sum())


def test_a_group_smaller_than_k_is_padded_and_errors_name_their_parameter():
    model, data = tiny_model_and_data()
    ds = hessian_eigenvalues(model, data, k=4, params=["4.bias", "0.*"], tol=1e-8)
    assert np.isnan(ds["eigenvalue"].sel(group="4.bias").values[3]) and int(ds["group_dimension"][0]) == 3
    assert np.isfinite(ds["eigenvalue"].sel(group="0.*").values).all()
    for kwargs, param, message in [
        ({"which": "middle"}, "which", "unknown which"),
        ({"method": "power", "which": "largest"}, "which", "largest magnitude only"),
        ({"return_vectors": True}, "vectors_path", "needs vectors_path"),
        ({"method": "eigsh", "start": {}}, "start", "needs method lanczos"),
        ({"method": "pyhessian", "operator": "ggn", "subspace": "dense"}, "method", "Hessian of all parameters"),
        ({"criterion": "exact"}, "criterion", "unknown convergence criterion"),
    ]:
        with pytest.raises(UserError, match=message) as err:
            hessian_eigenvalues(model, data, **kwargs)
        assert err.value.param == param
