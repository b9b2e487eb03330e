"""GGN and Fisher operators against explicit matrices; shared subspace, weighting, sub-blocks and blocks."""

import numpy as np
import pytest
import torch

from landscape.hessian import (
    CurvatureOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
    hessian_eigenvalues,
    make_operator,
)
from tests.landscape.hessian.helpers import (
    exact_empirical_fisher,
    exact_ggn,
    exact_hessian,
    mask_keep,
    random_mask,
    tiny_model_and_data,
)
from training.errors import UserError

EXACT = {"hessian": exact_hessian, "ggn": exact_ggn, "fisher": exact_empirical_fisher}


def _restricted(model, mask, matrix):
    keep = mask_keep(model, mask)
    return matrix[keep][:, keep]


@pytest.mark.parametrize("operator", ["hessian", "ggn", "fisher"])
def test_products_equal_the_explicit_matrix_on_the_mask_subspace(operator):
    model, data = tiny_model_and_data(5)
    mask = random_mask(model)
    exact = _restricted(model, mask, EXACT[operator](model, data))
    op, *_ = make_operator(model, data, operator=operator, mask=mask, chunk_size=3)
    assert isinstance(op, CurvatureOperator) and op.dim == exact.shape[0]
    V = torch.randn(op.dim, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    block = op.matmat(V)
    torch.testing.assert_close(block, exact @ V, rtol=1e-10, atol=1e-12)
    columns = torch.stack([op.matvec(V[:, i]) for i in range(7)], dim=1)
    torch.testing.assert_close(block, columns, rtol=0, atol=1e-6)
    assert op.matvecs == 14


@pytest.mark.parametrize("operator", ["ggn", "fisher"])
def test_spectra_equal_eigvalsh_of_the_explicit_matrix(operator):
    model, data = tiny_model_and_data(6)
    mask = random_mask(model)
    exact = _restricted(model, mask, EXACT[operator](model, data))
    ref = torch.linalg.eigvalsh(exact).numpy()
    top = hessian_eigenvalues(model, data, k=4, mask=mask, operator=operator, tol=1e-10, max_iter=200)
    np.testing.assert_allclose(top["eigenvalue"].values, ref[::-1][:4], rtol=1e-6)
    assert top.attrs["operator"] == operator and top.attrs["converged"] == 1
    assert ref.min() > -1e-12  # both are positive semi-definite


def test_the_ggn_equals_the_hessian_for_a_linear_model():
    """Softmax regression is linear in its parameters: the second term of the Hessian vanishes."""
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g))]
    V = torch.randn(18, 4, dtype=torch.float64, generator=g)
    torch.testing.assert_close(GGNOperator(model, data).matmat(V), HessianOperator(model, data).matmat(V))


def test_monte_carlo_fisher_is_seeded_and_unbiased_for_the_ggn():
    model, data = tiny_model_and_data(7)
    V = torch.randn(74, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    one = FisherOperator(model, data, fisher="mc", seed=1)
    again = FisherOperator(model, data, fisher="mc", seed=1)
    other = FisherOperator(model, data, fisher="mc", seed=2)
    torch.testing.assert_close(one.matmat(V), again.matmat(V), rtol=0, atol=0)  # same labels every time
    torch.testing.assert_close(one.matmat(V), one.matmat(V), rtol=0, atol=0)
    assert not torch.allclose(one.matmat(V), other.matmat(V))
    # E[F_MC] = GGN: with many sampled labels per sample the difference shrinks like 1/sqrt(S)
    ggn = exact_ggn(model, data) @ V
    err = [float((FisherOperator(model, data, fisher="mc", mc_samples=s).matmat(V) - ggn).norm()) for s in (4, 400)]
    assert err[1] < 0.25 * err[0]
    assert err[1] < 0.05 * float(ggn.norm())


def test_uneven_batches_are_weighted_by_their_size():
    """The operator is that of the mean over all samples, whatever the batching (15 + 25 samples)."""
    model, data = tiny_model_and_data(8)
    whole = [(torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data]))]
    V = torch.randn(74, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for cls in (GGNOperator, FisherOperator):
        torch.testing.assert_close(cls(model, data).matmat(V), cls(model, whole).matmat(V), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("operator", ["hessian", "ggn", "fisher"])
def test_a_restriction_is_the_principal_sub_block(operator):
    model, data = tiny_model_and_data(9)
    mask = random_mask(model)
    exact = _restricted(model, mask, EXACT[operator](model, data))
    op, *_ = make_operator(model, data, operator=operator, mask=mask)
    names = ["2.weight", "4.bias"]
    sub = op.restrict(names)
    # the coordinates of those parameters in the full subspace vector
    full = torch.zeros(op.dim, dtype=torch.bool)
    offset = 0
    for n, size in zip(op.names, op.sizes, strict=True):
        if n in names:
            full[offset : offset + size] = True
        offset += size
    assert sub.dim == int(full.sum()) and sub.names == names and sub.matvecs == 0
    V = torch.randn(sub.dim, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sub.matmat(V), exact[full][:, full] @ V, rtol=1e-10, atol=1e-12)
    assert op.matvecs == 0  # the restriction counts its own products


def test_bad_operator_options_name_their_parameter():
    model, data = tiny_model_and_data()
    for call, param, message in [
        (lambda: make_operator(model, data, operator="kfac"), "operator", "unknown operator 'kfac'"),
        (lambda: FisherOperator(model, data, fisher="true"), "fisher", "unknown Fisher"),
        (lambda: FisherOperator(model, data, fisher="mc", mc_samples=0), "mc_samples", "at least 1"),
        (lambda: GGNOperator(model, data, params=["nope"]), "params", "does not have"),
        (lambda: GGNOperator(model, []), "data", "empty dataset"),
    ]:
        with pytest.raises(UserError, match=message) as err:
            call()
        assert err.value.param == param
