"""Hessian: algorithms on operators with known spectra, the exact Hessian of tiny models, PyHessian."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from landscape.hessian import (
    HessianOperator,
    density_on_grid,
    eigsh,
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
    hutchinson,
    lanczos,
    power_iteration,
    slq,
)
from training.errors import UserError


def known_operator(eigs, seed=0):
    """A dense symmetric matrix Q diag(eigs) Q^T with a random orthogonal Q, as a matvec."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T
    return (lambda v: a @ v), a


EIGS = [10.0, 7.0, 5.0, 3.0, 2.5, 1.0, 0.5, 0.1, -0.2, -1.0] + [0.01 * i for i in range(40)]


@pytest.mark.parametrize("algorithm", [lanczos, eigsh])
def test_top_k_on_a_known_spectrum(algorithm):
    mv, _ = known_operator(EIGS)
    res = algorithm(mv, len(EIGS), k=4, tol=1e-10, max_iter=50, dtype=torch.float64)
    np.testing.assert_allclose(res.eigenvalues, [10, 7, 5, 3], rtol=1e-8)
    assert np.all(res.residuals < 1e-6)


def test_lanczos_residual_estimate_matches_true_residual():
    mv, a = known_operator(EIGS, seed=3)
    res = lanczos(mv, len(EIGS), k=3, tol=1e-3, max_iter=50, dtype=torch.float64, return_vectors=True)
    for i in range(3):
        v = res.eigenvectors[i]
        true = float((a @ v - res.eigenvalues[i] * v).norm())
        assert true == pytest.approx(res.residuals[i], rel=1e-3, abs=1e-10)
        assert abs(float(v.norm()) - 1) < 1e-8


def test_power_iteration_known_spectrum():
    mv, _ = known_operator([10.0, 4.0, 1.0, 0.5, 0.2, 0.1])
    res = power_iteration(mv, 6, k=2, tol=1e-10, max_iter=500, dtype=torch.float64)
    np.testing.assert_allclose(res.eigenvalues, [10.0, 4.0], rtol=1e-6)
    assert np.all(res.iterations > 1) and np.all(res.residuals < 1e-3)


def test_hutchinson_and_slq_on_a_known_spectrum():
    eigs = list(np.linspace(-1, 3, 200))
    mv, _a = known_operator(eigs, seed=1)
    trace, stderr, n = hutchinson(mv, 200, tol=1e-3, max_probes=400, dtype=torch.float64)
    assert abs(trace - sum(eigs)) < 4 * stderr and n >= 10
    nodes, weights = slq(mv, 200, probes=4, steps=60, dtype=torch.float64)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-10)
    assert np.nanmax(nodes) == pytest.approx(3.0, abs=1e-6) and np.nanmin(nodes) == pytest.approx(-1.0, abs=1e-6)
    # the quadrature's first moment is z^T A z / z^T z, an unbiased estimate of trace / n
    mean = float(np.nanmean([(nodes[p] * weights[p]).sum() for p in range(4)]))
    assert mean == pytest.approx(np.mean(eigs), abs=0.15)
    grid = np.linspace(-2, 4, 2001)
    dens = density_on_grid(nodes, weights, grid, sigma=0.05)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, rel=1e-3)


def test_k_larger_than_the_subspace():
    mv, _ = known_operator([1.0, 2.0])
    with pytest.raises(UserError, match="larger than the subspace dimension"):
        lanczos(mv, 2, k=3)


# ------------------------------------------------------------------------------- exact Hessians


def tiny_model_and_data(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return model, [(x[:15], y[:15]), (x[15:], y[15:])]


def exact_hessian(model, data):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])

    def loss(theta):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = theta[i : i + s.numel()].view(s)
            i += s.numel()
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.func.hessian(loss)(flat)


@pytest.mark.parametrize("with_mask", [False, True])
def test_lanczos_equals_eigvalsh_of_the_exact_hessian(with_mask):
    model, data = tiny_model_and_data()
    h = exact_hessian(model, data)
    mask = None
    if with_mask:
        g = torch.Generator().manual_seed(1)
        mask = {n: torch.rand(p.shape, generator=g) > 0.4 for n, p in model.named_parameters() if n.endswith("weight")}
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in mask:
                    p.mul_(mask[n])
        h = exact_hessian(model, data)
        keep = torch.cat(
            [
                mask[n].flatten() if n in mask else torch.ones(p.numel(), dtype=torch.bool)
                for n, p in model.named_parameters()
            ]
        )
        h = h[keep][:, keep]
    ref = torch.linalg.eigvalsh(h).flip(0).numpy()
    ds = hessian_eigenvalues(model, data, k=5, mask=mask, tol=1e-12, max_iter=200)
    assert ds.attrs["dimension"] == h.shape[0] and ds.attrs["subspace"] == ("mask" if with_mask else "dense")
    np.testing.assert_allclose(ds["eigenvalue"].values, ref[:5], rtol=1e-4)
    assert np.all(np.diff(ds["eigenvalue"].values) <= 0)  # descending
    tr = hessian_trace(model, data, mask=mask, tol=1e-2, max_probes=400)
    assert abs(float(tr["trace"]) - float(torch.trace(h))) < 4 * float(tr["trace_stderr"])


def test_operator_matches_exact_matvec_and_is_independent_of_batching():
    model, data = tiny_model_and_data(2)
    h = exact_hessian(model, data)
    op = HessianOperator(model, data)
    v = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op.matvec(v), h @ v, rtol=1e-10, atol=1e-12)
    one = HessianOperator(model, [(torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data]))])
    torch.testing.assert_close(one.matvec(v), h @ v, rtol=1e-10, atol=1e-12)  # cached single-batch graph
    torch.testing.assert_close(one.matvec(2 * v), 2 * (h @ v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["power", "eigsh"])
def test_other_methods_agree_with_the_exact_hessian(method):
    model, data = tiny_model_and_data(4)
    ref = torch.linalg.eigvalsh(exact_hessian(model, data)).numpy()
    ds = hessian_eigenvalues(model, data, k=1, tol=1e-10, max_iter=2000, method=method)
    target = ref[np.argmax(np.abs(ref))] if method == "power" else ref[-1]
    assert float(ds["eigenvalue"][0]) == pytest.approx(target, rel=1e-4)


_MEMORY_PROBE = """
import resource, sys, torch
from landscape.hessian import HessianOperator
from training.models import build
torch.manual_seed(0)
model = build("cnn1d", 10, input_shape=(1, 40), width=128)
g = torch.Generator().manual_seed(0)
batches = [(torch.randn(2048, 1, 40, generator=g), torch.randint(0, 10, (2048,), generator=g))
           for _ in range(int(sys.argv[1]))]
op = HessianOperator(model, batches, cache_single_batch=False)
v = torch.randn(op.dim, generator=g)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
op.matvec(v)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_number_of_batches():
    """Real peak RSS (subprocesses): HVPs over 8 batches must not hold 8 batches' graphs (~8x the memory)."""
    import subprocess
    import sys

    def growth(n):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(n)], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    one, eight = growth(1), growth(8)
    # One batch's graph costs ~0.7 GB here; holding 8 of them would raise the peak ~8x. Measured: ~1.5x.
    assert one > 200_000, one  # KiB: the probe is large enough to see
    assert eight < 2.5 * one, (one, eight)


def test_density_dataset():
    model, data = tiny_model_and_data()
    ds = hessian_density(model, data, probes=2, steps=30)
    assert ds["density"].dims == ("t",)
    assert np.trapezoid(ds["density"].values, ds["t"].values) == pytest.approx(1, abs=0.02)
    ref = torch.linalg.eigvalsh(exact_hessian(model, data)).numpy()
    assert float(np.nanmax(ds["nodes"])) == pytest.approx(ref[-1], rel=1e-6)


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
