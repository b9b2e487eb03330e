"""HessianOperator: exact products of tiny models, blocks, subspaces, data handling and memory."""

import warnings

import pytest
import torch
from torch import nn

from landscape.hessian import CurvatureOperator, HessianOperator, MatrixOperator
from tests.landscape.hessian.helpers import exact_hessian, mask_keep, random_mask, tiny_model_and_data
from training.errors import UserError


def test_operators_satisfy_the_protocol():
    model, data = tiny_model_and_data()
    assert isinstance(HessianOperator(model, data), CurvatureOperator)
    assert isinstance(MatrixOperator(torch.eye(3)), CurvatureOperator)


def test_operator_matches_exact_matvec_and_is_independent_of_batching():
    model, data = tiny_model_and_data(2)
    h = exact_hessian(model, data)
    op = HessianOperator(model, data)
    v = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op.matvec(v), h @ v, rtol=1e-10, atol=1e-12)
    one = HessianOperator(model, [(torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data]))])
    torch.testing.assert_close(one.matvec(v), h @ v, rtol=1e-10, atol=1e-12)  # cached single-batch graph
    torch.testing.assert_close(one.matvec(2 * v), 2 * (h @ v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 3, 8])
@pytest.mark.parametrize("single_batch", [False, True])
def test_matmat_equals_column_by_column_matvec(with_mask, chunk_size, single_batch):
    model, data = tiny_model_and_data(3)
    mask = random_mask(model) if with_mask else None
    if single_batch:
        data = [(torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data]))]
    op = HessianOperator(model, data, mask=mask, chunk_size=chunk_size)
    V = torch.randn(op.dim, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    block = op.matmat(V)
    assert block.shape == (op.dim, 7) and op.matvecs == 7  # a block of k counts k
    columns = torch.stack([op.matvec(V[:, i]) for i in range(7)], dim=1)
    assert op.matvecs == 14
    torch.testing.assert_close(block, columns, rtol=0, atol=1e-6)
    h = exact_hessian(model, data)
    if with_mask:
        keep = mask_keep(model, mask)
        h = h[keep][:, keep]
    torch.testing.assert_close(block, h @ V, rtol=1e-10, atol=1e-12)


class _Cube(torch.autograd.Function):
    """x³/3 whose backward calls :class:`_ScaledSquare`, whose own backward reads a value on the host
    (``float``): the double-backward then cannot run under vmap."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3 / 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return _ScaledSquare.apply(x, g)


class _ScaledSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g):
        ctx.save_for_backward(x, g)
        return g * x * x

    @staticmethod
    def backward(ctx, go):
        x, g = ctx.saved_tensors
        assert float(go.abs().sum()) >= 0
        return go * 2 * x * g, go * x * x


class _CubeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return _Cube.apply(self.fc(x))


def test_matmat_falls_back_to_a_loop_where_vmap_cannot_batch():
    torch.manual_seed(0)
    model = _CubeNet().double()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g))]
    op = HessianOperator(model, data, chunk_size=4)
    V = torch.randn(op.dim, 5, dtype=torch.float64, generator=g)
    with pytest.warns(RuntimeWarning, match="vector by vector"):
        block = op.matmat(V)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = op.matmat(V)  # warns once per operator
    columns = torch.stack([op.matvec(V[:, i]) for i in range(5)], dim=1)
    torch.testing.assert_close(block, columns, rtol=0, atol=1e-10)
    torch.testing.assert_close(again, columns, rtol=0, atol=1e-10)


def test_a_one_shot_iterator_is_read_once():
    """Before: the operator iterated ``data`` on every product, so a generator was empty at the second
    product ("cannot compute a Hessian on an empty dataset")."""
    model, data = tiny_model_and_data(2)
    h = exact_hessian(model, data)
    op = HessianOperator(model, (batch for batch in data), cache_single_batch=False)
    assert op.n_samples == 40 and len(op.batches) == 2
    v = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        torch.testing.assert_close(op.matvec(v), h @ v, rtol=1e-10, atol=1e-12)


def test_bad_input_names_its_parameter():
    model, data = tiny_model_and_data()
    for kwargs, param, message in [
        ({"data": []}, "data", "empty dataset"),
        ({"subspace": "sparse"}, "subspace", "unknown subspace"),
        ({"mask": {"nope": torch.ones(1, dtype=torch.bool)}}, "mask", "does not have"),
        ({"chunk_size": 0}, "chunk_size", "at least 1"),
    ]:
        with pytest.raises(UserError, match=message) as err:
            HessianOperator(model, kwargs.pop("data", data), **kwargs)
        assert err.value.param == param


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
# the peak's growth over the resident set just before (the peak so far can exceed it: imports, building)
before = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
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

    # measured from the resident set, not the earlier peak: under pytest-xdist the peak before the product
    # was once so high that one batch seemed to add 155-180 MB instead of ~750 MB
    one, eight = growth(1), growth(8)
    # One batch's graph costs ~0.7 GB here; holding 8 of them would raise the peak ~8x. Measured: ~1.3x.
    assert one > 200_000, one  # KiB: the probe is large enough to see
    assert eight < 2.5 * one, (one, eight)
