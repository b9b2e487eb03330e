"""Against curvlinops (an independent implementation) on a trained checkpoint, and on every registry model."""

import numpy as np
import pytest
import torch

from landscape.hessian import hessian_eigenvalues, make_operator
from training.models import MODELS, build
from training.pruning import prune

SMALL = {
    "mlp": {"width": 16, "input_shape": (40,)},
    "cnn1d": {"width": 8, "input_shape": (1, 40)},
    "resnet20_1d": {"width": 4, "input_shape": (1, 40)},
    "resnet20": {"width": 4, "input_shape": (3, 8, 8)},
    "resnet32": {"width": 4, "input_shape": (3, 8, 8)},
    "resnet56": {"width": 4, "input_shape": (3, 8, 8)},
    "resnet18": {"input_shape": (3, 8, 8)},
    "vgg16": {"width": 8, "input_shape": (3, 32, 32)},
    "vgg19": {"width": 8, "input_shape": (3, 32, 32)},
    "resnet50": {"input_shape": (3, 32, 32)},
    "vit": {"width": 24, "input_shape": (3, 8, 8)},  # the Hessian through attention: its math kernel
    "mobilenetv2": {"width": 8, "input_shape": (3, 8, 8)},
}
LARGE = ("resnet18", "resnet50")


def test_every_registry_model_is_covered():
    assert set(SMALL) == set(MODELS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in sorted(SMALL)])
def test_every_operator_on_every_registry_model(name):
    """Hessian, GGN and Fisher spectra on a pruned registry model are finite and sorted, those of the GGN
    and the Fisher non-negative; a block product equals column-by-column products."""
    torch.manual_seed(0)
    kwargs = dict(SMALL[name])
    shape = kwargs.pop("input_shape")
    model = build(name, 5, input_shape=shape, **kwargs)
    mask = prune(model, "random", 0.5, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(6, *shape, generator=g), torch.randint(0, 5, (6,), generator=g))]
    for operator in ("hessian", "ggn", "fisher"):
        ds = hessian_eigenvalues(model, data, k=2, mask=mask, operator=operator, tol=1e-2, max_iter=12)
        vals = ds["eigenvalue"].values
        assert np.isfinite(vals).all() and vals[0] >= vals[1], (operator, vals)
        if operator != "hessian":
            assert vals[1] >= -1e-4 * abs(vals[0])
    op, *_ = make_operator(model, data, operator="ggn", mask=mask, chunk_size=2)
    V = torch.randn(op.dim, 3, generator=g)
    block = op.matmat(V)
    columns = torch.stack([op.matvec(V[:, i]) for i in range(3)], dim=1)
    assert float((block - columns).abs().max()) <= 1e-6 * max(float(columns.abs().max()), 1.0)


@pytest.mark.parametrize("operator", ["hessian", "ggn"])
def test_top_three_agree_with_curvlinops_on_a_trained_checkpoint(tiny_run, operator):
    """curvlinops' HessianLinearOperator / GGNLinearOperator on all parameters, restricted to the mask's
    coordinates (SubmatrixLinearOperator), with scipy's eigsh; ours on the mask subspace."""
    curvlinops = pytest.importorskip("curvlinops")
    import scipy.sparse.linalg

    from training.checkpoint import load_checkpoint
    from training.data import load_data

    ckpt = load_checkpoint(tiny_run.checkpoint())
    batch = [next(iter(load_data(tiny_run.config.data).eval_loader("train", 128)))]
    model = ckpt.model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    keep = torch.cat(
        [ckpt.mask[n].flatten() if n in ckpt.mask else torch.ones(p.numel(), dtype=torch.bool)
         for n, p in model.named_parameters()]
    )  # fmt: skip
    idx = keep.nonzero().squeeze(1).tolist()
    cls = curvlinops.HessianLinearOperator if operator == "hessian" else curvlinops.GGNLinearOperator
    full = cls(model, torch.nn.CrossEntropyLoss(), params, batch, check_deterministic=False)
    sub = curvlinops.SubmatrixLinearOperator(full, idx, idx).to_scipy(dtype=np.float64)
    ref = np.sort(scipy.sparse.linalg.eigsh(sub, k=3, which="LA", tol=1e-10, return_eigenvectors=False))[::-1]
    ours = hessian_eigenvalues(ckpt, batch, k=3, operator=operator, tol=1e-7, max_iter=200)
    assert ours.attrs["dimension"] == len(idx)
    np.testing.assert_allclose(ours["eigenvalue"].values, ref, rtol=1e-4)
