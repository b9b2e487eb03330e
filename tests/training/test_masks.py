import copy

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from tests.helpers import tiny_config
from training.checkpoint import read_checkpoint
from training.config import replace_dotted
from training.masks import MaskedParameters, apply_mask, density, prunable_names
from training.models import build
from training.pruning import prune
from training.run import train


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


def _train(out, **changes):
    """A tiny cyclic run through the real trainer: SGD with Nesterov momentum 0.9 and weight decay 5e-3,
    a checkpoint after every epoch."""
    cfg = replace_dotted(
        tiny_config(save_every=1),
        {"optim.momentum": 0.9, "optim.nesterov": True, "optim.weight_decay": 5e-3, **changes},
    )
    return train(cfg, out, quiet=True)


def _pruned_nonzero(ckpt):
    """(pruned entries that are not exactly zero, pruned entries) over every masked parameter."""
    model, mask = ckpt["model"], ckpt["mask"]
    return (
        sum(int((model[n][~m] != 0).sum()) for n, m in mask.items()),
        sum(int((~m).sum()) for m in mask.values()),
    )


def test_trainer_keeps_pruned_weights_exactly_zero_in_every_checkpoint(tmp_path, monkeypatch):
    run = _train(tmp_path / "masked")
    paths = sorted(run.run_dir.glob("**/*.pt"))
    assert {p.name for p in paths} == {"init.pt", "epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "epoch_4.pt"} | {
        "cycle_1.pt",
        "cycle_2.pt",
    }
    init = read_checkpoint(run.run_dir / "init.pt")
    assert _pruned_nonzero(init)[1] > 0
    for path in paths:
        ckpt = read_checkpoint(path)
        assert all(torch.equal(ckpt["mask"][n], init["mask"][n]) for n in init["mask"]), path.name
        assert _pruned_nonzero(ckpt)[0] == 0, path.name  # exactly zero, not just small
        if path.name != "init.pt":  # the kept weights did train
            assert all(not torch.equal(ckpt["model"][n][m], init["model"][n][m]) for n, m in init["mask"].items())
    # The same run with the trainer's two masking calls disabled: momentum and weight decay then move the
    # pruned weights, so the check above is one that fails when the enforcement is missing.
    monkeypatch.setattr(MaskedParameters, "mask_grads", lambda self: None)
    monkeypatch.setattr(MaskedParameters, "mask_weights", lambda self: None)
    loose = read_checkpoint(_train(tmp_path / "unmasked").checkpoint())
    nonzero, pruned = _pruned_nonzero(loose)
    assert nonzero > 0.9 * pruned


def test_dense_momentum_rewound_into_a_sparse_level_cannot_revive_pruned_weights(tmp_path, monkeypatch):
    """Weight rewinding loads level 0's dense momentum buffers into the pruned level 1: they are non-zero
    at the coordinates level 1 prunes, and only the post-step re-masking keeps those weights at zero."""
    wr = {
        "recipe.name": "wr",
        "mask.method": "none",
        "mask.sparsity": 0.5,
        "recipe.prune_fraction": 0.5,
        "recipe.rewind_epoch": 1,
        "schedule.cycles": 1,
    }
    run = _train(tmp_path / "masked", **wr)
    rewind = read_checkpoint(run.run_dir / "level_0" / "rewind.pt")
    level1 = sorted((run.run_dir / "level_1").glob("*.pt"))
    assert {p.name for p in level1} >= {"init.pt", "cycle_1.pt"}
    mask = read_checkpoint(level1[0])["mask"]
    params = [n for n, _ in build("cnn1d", 10, input_shape=(1, 40), width=8).named_parameters()]
    momentum = {params[i]: s["momentum_buffer"] for i, s in rewind["optimizer"]["state"].items()}
    assert all(bool((momentum[n][~m] != 0).any()) for n, m in mask.items())  # dense momentum at pruned weights
    for path in level1:
        assert _pruned_nonzero(read_checkpoint(path))[0] == 0, path.name
    # Zeroing the gradients alone does not stop the rewound momentum: without the post-step multiply the
    # pruned weights move.
    monkeypatch.setattr(MaskedParameters, "mask_weights", lambda self: None)
    loose = read_checkpoint(_train(tmp_path / "unmasked", **wr).checkpoint())
    nonzero, pruned = _pruned_nonzero(loose)
    assert nonzero > 0.9 * pruned


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
