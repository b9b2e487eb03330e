import copy

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from training.masks import (
    MaskedParameters,
    apply_mask,
    density,
    prunable_names,
    weight_density,
)
from training.models import build
from training.pruning import prune


def test_prunable_names_options():
    model = build("resnet20", 10)
    names = prunable_names(model)
    shortcuts = [n for n in names if "shortcut" in n]
    assert len(shortcuts) == 2 and "fc.weight" in names
    assert len(names) == 19 + 2 + 1  # 19 3x3 convs, 2 shortcut convs, fc
    assert not any("bn" in n or n.endswith("bias") for n in names)
    no_sc = prunable_names(model, prune_shortcuts=False)
    assert len(no_sc) == 20 and not any("shortcut" in n for n in no_sc)
    no_last = prunable_names(model, prune_last=False)
    assert "fc.weight" not in no_last and len(no_last) == 21
    tv = prunable_names(build("resnet50", 1000), prune_shortcuts=False)
    assert not any("downsample" in n for n in tv)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_uniform_random_mask_exact_counts(sparsity):
    model = build("cnn1d", 10, input_shape=(1, 40))
    names = prunable_names(model)
    mask = prune(model, "random", sparsity, generator=torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    for n in names:
        assert mask[n].dtype == torch.bool and mask[n].shape == params[n].shape
        assert int(mask[n].sum()) == max(1, round((1 - sparsity) * params[n].numel()))
    assert density(mask) == pytest.approx(1 - sparsity, abs=1e-3)


def test_mask_is_seeded():
    model = build("mlp", 10, input_shape=(40,))
    m1 = prune(model, "random", 0.7, generator=torch.Generator().manual_seed(1))
    m2 = prune(model, "random", 0.7, generator=torch.Generator().manual_seed(1))
    m3 = prune(model, "random", 0.7, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    assert not all(torch.equal(m1[k], m3[k]) for k in m1)


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(1, 12),
    sparsity=st.floats(0.0, 0.99),
    seed=st.integers(0, 1000),
    method=st.sampled_from(["random", "magnitude"]),
)
def test_prune_property_counts_dtypes_and_idempotence(width, sparsity, seed, method):
    torch.manual_seed(seed)
    model = build("mlp", 3, input_shape=(1, 6), width=width)
    options = {"generator": torch.Generator().manual_seed(seed)} if method == "random" else {}
    mask = prune(model, method, sparsity, **options)
    params = dict(model.named_parameters())
    for n, m in mask.items():
        assert m.dtype == torch.bool and m.shape == params[n].shape
        if method == "random":
            assert int(m.sum()) == max(1, min(m.numel(), round((1 - sparsity) * m.numel())))
    if method == "magnitude":
        total = sum(m.numel() for m in mask.values())
        assert total - sum(int(m.sum()) for m in mask.values()) >= round(sparsity * total)  # ties are pruned
    options = {"generator": torch.Generator().manual_seed(seed + 1)} if method == "random" else {}
    again = prune(model, method, sparsity, mask=mask, **options)
    assert all(torch.equal(again[n], mask[n]) for n in mask)  # pruning again at the same sparsity is a no-op


def _sgd_steps(model, masked, optimizer, mask, steps=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 1, 40, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        masked.mask_grads()
        for name, p in zip(masked.names, masked.params, strict=True):
            # pruned coordinates receive no gradient
            assert torch.all(p.grad[~mask[name]] == 0)
        optimizer.step()
        masked.mask_weights()


@pytest.mark.parametrize("nesterov", [False, True])
def test_masked_weights_stay_exactly_zero(nesterov):
    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    mask = prune(model, "random", 0.9, generator=torch.Generator().manual_seed(0))
    apply_mask(model, mask)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masked = MaskedParameters(model, mask)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, nesterov=nesterov, weight_decay=5e-3)
    _sgd_steps(model, masked, opt, mask)
    params = dict(model.named_parameters())
    for n, m in mask.items():
        assert torch.all(params[n][~m] == 0), n  # exactly zero, not just small
        assert not torch.equal(params[n][m], before[n][m])  # the kept weights did train
        state = opt.state[params[n]]["momentum_buffer"]
        assert torch.all(state[~m] == 0)  # momentum never accumulates at pruned coordinates
    assert weight_density(model, list(mask)) == pytest.approx(density(mask))


def test_dense_momentum_cannot_revive_pruned_weights():
    # An optimiser state from elsewhere (e.g. a rewound dense run) has momentum at pruned coordinates.
    torch.manual_seed(0)
    model = build("mlp", 10, input_shape=(1, 40), width=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    dense = MaskedParameters(model, {})
    _sgd_steps(model, dense, opt, {}, steps=2)  # dense steps fill the momentum buffers everywhere
    mask = prune(model, "random", 0.8, generator=torch.Generator().manual_seed(1))
    apply_mask(model, mask)
    _sgd_steps(model, MaskedParameters(model, mask), opt, mask, steps=3)
    params = dict(model.named_parameters())
    assert all(torch.all(params[n][~m] == 0) for n, m in mask.items())


def test_masked_training_matches_torch_prune_reparametrisation():
    """Independent reference: torch.nn.utils.prune trains w_orig * mask; the effective weights must
    match ours (which store exact zeros and mask gradients) step for step."""
    torch.manual_seed(0)
    ours = build("mlp", 10, input_shape=(1, 40), width=32)
    ref = copy.deepcopy(ours)
    mask = prune(ours, "random", 0.75, generator=torch.Generator().manual_seed(4))
    apply_mask(ours, mask)
    modules = dict(ref.named_modules())
    for name, m in mask.items():
        torch_prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", m.float())
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    masked = MaskedParameters(ours, mask)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        x, y = torch.randn(32, 40, generator=g), torch.randint(0, 10, (32,), generator=g)
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            if model is ours:
                masked.mask_grads()
            opt.step()
            if model is ours:
                masked.mask_weights()
    for name in mask:
        module = modules[name.rsplit(".", 1)[0]]
        effective = module.weight_orig * module.weight_mask  # module.weight is only refreshed by forward
        torch.testing.assert_close(dict(ours.named_parameters())[name], effective, rtol=1e-5, atol=1e-6)


def test_masked_parameters_rejects_unknown_names():
    from training.errors import ConfigError

    model = nn.Linear(3, 2)
    with pytest.raises(ConfigError, match="does not have"):
        MaskedParameters(model, {"nope.weight": torch.ones(2, 3, dtype=torch.bool)})
