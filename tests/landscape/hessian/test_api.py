"""hessian_eigenvalues, hessian_trace and hessian_density: exact Hessians of tiny models, checkpoints, PyHessian."""

import numpy as np
import pytest
import torch
from torch import nn

from landscape.hessian import hessian_density, hessian_eigenvalues, hessian_trace
from tests.landscape.hessian.helpers import exact_hessian, mask_keep, random_mask, tiny_model_and_data
from training.errors import UserError


@pytest.mark.parametrize("with_mask", [False, True])
def test_lanczos_equals_eigvalsh_of_the_exact_hessian(with_mask):
    model, data = tiny_model_and_data()
    h = exact_hessian(model, data)
    mask = None
    if with_mask:
        mask = random_mask(model)
        h = exact_hessian(model, data)
        keep = mask_keep(model, mask)
        h = h[keep][:, keep]
    ref = torch.linalg.eigvalsh(h).flip(0).numpy()
    ds = hessian_eigenvalues(model, data, k=5, mask=mask, tol=1e-12, max_iter=200)
    assert ds.attrs["dimension"] == h.shape[0] and ds.attrs["subspace"] == ("mask" if with_mask else "dense")
    np.testing.assert_allclose(ds["eigenvalue"].values, ref[:5], rtol=1e-4)
    assert np.all(np.diff(ds["eigenvalue"].values) <= 0)  # descending
    assert ds.attrs["converged"] == 1 and ds.attrs["n_samples"] == 40
    tr = hessian_trace(model, data, mask=mask, tol=1e-2, max_probes=400)
    assert abs(float(tr["trace"]) - float(torch.trace(h))) < 4 * float(tr["trace_stderr"])


@pytest.mark.parametrize("method", ["power", "eigsh"])
def test_other_methods_agree_with_the_exact_hessian(method):
    model, data = tiny_model_and_data(4)
    ref = torch.linalg.eigvalsh(exact_hessian(model, data)).numpy()
    ds = hessian_eigenvalues(model, data, k=1, tol=1e-10, max_iter=2000, method=method)
    target = ref[np.argmax(np.abs(ref))] if method == "power" else ref[-1]
    assert float(ds["eigenvalue"][0]) == pytest.approx(target, rel=1e-4)


def test_density_dataset():
    model, data = tiny_model_and_data()
    ds = hessian_density(model, data, probes=2, steps=30)
    assert ds["density"].dims == ("t",)
    assert np.trapezoid(ds["density"].values, ds["t"].values) == pytest.approx(1, abs=0.02)
    ref = torch.linalg.eigvalsh(exact_hessian(model, data)).numpy()
    assert float(np.nanmax(ds["nodes"])) == pytest.approx(ref[-1], rel=1e-6)


def test_a_low_rank_hessian_gives_all_k_eigenvalues():
    """Before: with fewer samples than directions, Lanczos ran out of them before k steps (TypeError).
    A linear classifier on 2 samples and 3 classes: the Hessian has rank ≤ 4 in 21 dimensions."""
    torch.manual_seed(0)
    model = nn.Linear(6, 3).double()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(2, 6, generator=g, dtype=torch.float64), torch.tensor([0, 2]))]
    ref = torch.linalg.eigvalsh(exact_hessian(model, data)).flip(0).numpy()
    assert np.sum(ref > 1e-10) <= 4
    ds = hessian_eigenvalues(model, data, k=8, tol=1e-10, max_iter=100)
    np.testing.assert_allclose(ds["eigenvalue"].values, ref[:8], atol=1e-10)
    assert ds.attrs["converged"] == 1 and ds.attrs["hvp_count"] < 21


def test_a_generator_of_batches_works_for_every_method():
    """Before: a one-shot iterator was exhausted after the first Hessian-vector product."""
    model, data = tiny_model_and_data(2)
    for method in ("lanczos", "eigsh", "power"):
        ref = hessian_eigenvalues(model, data, k=2, tol=1e-8, max_iter=300, method=method)
        ds = hessian_eigenvalues(model, (b for b in data), k=2, tol=1e-8, max_iter=300, method=method)
        np.testing.assert_allclose(ds["eigenvalue"].values, ref["eigenvalue"].values, rtol=1e-10)
    tr = hessian_trace(model, iter(data), max_probes=20)
    assert tr.attrs["hvp_count"] == int(tr["probes"]) >= 10


def test_errors_name_their_parameter():
    model, data = tiny_model_and_data()
    for kwargs, param, message in [
        ({"k": 500}, "k", "k = 500 is larger than the subspace dimension"),
        ({"method": "newton"}, "method", "unknown method 'newton'"),
        ({"subspace": "sparse"}, "subspace", "unknown subspace"),
        ({"method": "pyhessian", "mask": random_mask(model), "subspace": "mask"}, "subspace", "needs subspace dense"),
        ({"k": 3, "max_iter": 2}, "max_iter", "max_iter = 2 is smaller than k = 3"),
        ({"criterion": "exact"}, "criterion", "unknown convergence criterion"),
    ]:
        with pytest.raises(UserError, match=message) as err:
            hessian_eigenvalues(model, data, **kwargs)
        assert err.value.param == param


def test_checkpoint_input_uses_its_mask(tiny_run):
    from training.config import DataConfig
    from training.data import load_data

    batch = [next(iter(load_data(DataConfig(name="mnist1d")).eval_loader("train", 64)))]
    ds = hessian_eigenvalues(tiny_run.checkpoint(), batch, k=2, tol=1e-4)
    import landscape

    ckpt = landscape.load_checkpoint(tiny_run.checkpoint())
    kept = sum(int(m.sum()) for m in ckpt.mask.values())
    others = sum(p.numel() for n, p in ckpt.model.named_parameters() if n not in ckpt.mask)
    assert ds.attrs["dimension"] == kept + others and ds.attrs["subspace"] == "mask"
    assert ds.attrs["checkpoint_path"].endswith("cycle_2.pt")
    dense = hessian_eigenvalues(tiny_run.checkpoint(), batch, k=1, tol=1e-4, subspace="dense")
    assert dense.attrs["dimension"] > ds.attrs["dimension"]
    # the sparse subspace is a restriction: its top eigenvalue cannot exceed the dense one
    assert float(ds["eigenvalue"][0]) <= float(dense["eigenvalue"][0]) * (1 + 1e-3)


@pytest.mark.slow
def test_within_one_percent_of_pyhessian_on_resnet20():
    pytest.importorskip("pyhessian")
    from training.models import build

    torch.manual_seed(0)
    model = build("resnet20", 10)
    g = torch.Generator().manual_seed(0)
    batch = [(torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))]
    ours = hessian_eigenvalues(model, batch, k=1, tol=1e-3, subspace="dense")
    ref = hessian_eigenvalues(model, batch, k=1, tol=1e-3, method="pyhessian", subspace="dense")
    assert float(ours["eigenvalue"][0]) == pytest.approx(float(ref["eigenvalue"][0]), rel=0.01)
