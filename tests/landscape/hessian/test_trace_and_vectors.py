"""Hutch++, diagonals, per-group traces, the Ritz-vector file and warm starts from it."""

import numpy as np
import pytest
import torch

from landscape.hessian import (
    MatrixOperator,
    diagonal,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_trace,
    hutchinson,
    hutchpp,
    load_ritz_vectors,
)
from tests.landscape.hessian.helpers import (
    exact_empirical_fisher,
    exact_hessian,
    known_matrix,
    mask_keep,
    random_mask,
    tiny_model_and_data,
)
from training.errors import UserError

# a network-like spectrum: a few large outliers over a wide bulk of small ones
OUTLIERS = [400.0, 250.0, 180.0, 90.0, 60.0, *list(np.linspace(-0.5, 2.0, 295))]


def test_hutchpp_is_exact_with_a_full_sketch_and_unbiased_within_its_error():
    a = known_matrix(OUTLIERS, seed=2)
    exact = float(torch.trace(a))
    full = hutchpp(MatrixOperator(a), max_matvecs=600, sketch=300)
    assert full.trace == pytest.approx(exact, rel=1e-10) and full.stderr == 0 and full.converged
    assert full.matvecs == 600 and full.sketch == 300
    hits = 0
    for seed in range(20):
        r = hutchpp(MatrixOperator(a), max_matvecs=60, tol=0, generator=torch.Generator().manual_seed(seed))
        assert r.matvecs == 60 and r.probes == 20 and r.sketch == 20
        hits += abs(r.trace - exact) <= 2 * r.stderr
    assert hits >= 15  # ~95% of 2-sigma intervals cover the truth


def test_hutchpp_needs_far_fewer_products_than_hutchinson_on_outliers():
    a = known_matrix(OUTLIERS, seed=2)
    exact = float(torch.trace(a))
    plain = hutchinson(MatrixOperator(a), tol=0.01, max_probes=20000)
    plus = hutchpp(MatrixOperator(a), tol=0.01, max_matvecs=3000, sketch=10)
    assert plain.converged and plus.converged
    assert abs(plus.trace - exact) <= 4 * plus.stderr and plus.stderr <= 0.01 * abs(plus.trace)
    assert plus.matvecs * 5 < plain.matvecs


@pytest.mark.parametrize("method", ["hutchinson", "diag++"])
def test_the_diagonal_estimate_is_within_its_standard_errors(method):
    a = known_matrix(OUTLIERS[:5] + list(np.linspace(-0.5, 2.0, 95)), seed=1)
    r = diagonal(MatrixOperator(a), method=method, max_matvecs=90)
    z = np.abs(r.diagonal - torch.diag(a).numpy()) / r.stderr
    assert r.matvecs == 90 and np.mean(z <= 2) >= 0.85 and np.all(z < 6)
    exact = diagonal(MatrixOperator(a), method="diag++", max_matvecs=200, sketch=100)
    np.testing.assert_allclose(exact.diagonal, torch.diag(a).numpy(), rtol=1e-10, atol=1e-12)
    assert np.all(exact.stderr == 0) and exact.matvecs == 200


def test_trace_and_diagonal_of_a_masked_network_against_exact_matrices():
    model, data = tiny_model_and_data(11)
    mask = random_mask(model)
    keep = mask_keep(model, mask)
    h = exact_hessian(model, data)[keep][:, keep]
    n = h.shape[0]
    full = hessian_trace(model, data, mask=mask, method="hutchpp", max_probes=2 * n, sketch=n)
    assert float(full["trace"]) == pytest.approx(float(torch.trace(h)), rel=1e-6) and full.attrs["sketch"] == n
    est = hessian_trace(model, data, mask=mask, method="hutchpp", max_probes=60, tol=0)
    assert abs(float(est["trace"]) - float(torch.trace(h))) < 4 * float(est["trace_stderr"])
    assert est.attrs["hvp_count"] == 60 and est.attrs["trace_method"] == "hutchpp"
    f = exact_empirical_fisher(model, data)[keep][:, keep]
    diag = hessian_diagonal(model, data, mask=mask, operator="fisher", method="diag++", max_matvecs=2 * n, sketch=n)
    np.testing.assert_allclose(diag["diagonal"].values, torch.diag(f).numpy(), rtol=1e-6, atol=1e-12)
    # coordinates map back to (parameter, entry of the flattened parameter)
    names = [name for name, _ in model.named_parameters()]
    first = int(np.argmax(diag["parameter_index"].values == names.index("2.weight")))
    assert mask["2.weight"].flatten()[int(diag["flat_index"][first])]


def test_per_group_traces_are_traces_of_the_sub_blocks():
    model, data = tiny_model_and_data(12)
    h = exact_hessian(model, data)
    names = [n for n, p in model.named_parameters() for _ in range(p.numel())]
    ds = hessian_trace(model, data, params=["0.*", "4.*"], method="hutchpp", max_probes=200, sketch=70)
    for label, prefix in (("0.*", "0."), ("4.*", "4.")):
        rows = torch.tensor([n.startswith(prefix) for n in names])
        assert float(ds["trace"].sel(group=label)) == pytest.approx(float(torch.trace(h[rows][:, rows])), rel=1e-6)
    with pytest.raises(UserError, match="unknown trace method") as err:
        hessian_trace(model, data, method="xtrace")
    assert err.value.param == "method"


def test_ritz_vectors_are_written_parameter_shaped_and_warm_start_a_later_run(tmp_path):
    model, data = tiny_model_and_data(13)
    mask = random_mask(model)
    path = tmp_path / "h.vectors.pt"
    ds = hessian_eigenvalues(model, data, k=3, mask=mask, tol=1e-8, return_vectors=True, vectors_path=path)
    assert ds.attrs["vectors_path"] == str(path)
    payload = load_ritz_vectors(path)  # weights_only: no pickled code
    entry = payload["groups"]["all"]
    assert payload["which"] == "largest" and payload["residual"] == "explicit"
    np.testing.assert_allclose(entry["eigenvalue"].numpy(), ds["eigenvalue"].values)
    vectors = entry["vectors"]
    assert {n: tuple(t.shape) for n, t in vectors.items()} == {n: (3, *p.shape) for n, p in model.named_parameters()}
    for n, m in mask.items():
        assert torch.all(vectors[n][:, ~m] == 0)  # zeros off the subspace
    flat = torch.cat([vectors[n].reshape(3, -1) for n, _ in model.named_parameters()], dim=1)
    np.testing.assert_allclose(flat.norm(dim=1).numpy(), 1, rtol=1e-10)
    keep = mask_keep(model, mask)
    h = exact_hessian(model, data)[keep][:, keep]
    on = flat[:, keep]
    true = (on @ h - on * entry["eigenvalue"][:, None]).norm(dim=1).numpy()  # H is symmetric
    np.testing.assert_allclose(ds["vector_residual"].values, true, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(entry["residual"].numpy(), true, rtol=1e-6, atol=1e-12)
    # a warm start from the same operator's vectors settles at once
    again = hessian_eigenvalues(model, data, k=3, mask=mask, tol=1e-8, start=payload)
    np.testing.assert_allclose(again["eigenvalue"].values, ds["eigenvalue"].values, rtol=1e-8)
    assert again.attrs["warm_start"] == 1 and again.attrs["hvp_count"] < ds.attrs["hvp_count"] - 3
    (tmp_path / "bad.pt").write_bytes(b"not a file of vectors")
    with pytest.raises(UserError, match="cannot read Ritz vectors"):
        load_ritz_vectors(tmp_path / "bad.pt")
    import datetime  # a pickled global that safe loading refuses: named, and PyTorch's advice is never shown

    torch.save({"format": "x", "when": datetime.date(2026, 1, 1)}, tmp_path / "unsafe.pt")
    with pytest.raises(UserError, match=r"refusing to load .*unsafe.pt: it pickles .*datetime.date") as exc:
        load_ritz_vectors(tmp_path / "unsafe.pt")
    assert "weights_only" not in str(exc.value) and "\n" not in str(exc.value)
