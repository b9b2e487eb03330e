"""Masks that change during training: each updater's invariants on a small model, then the recipes end to
end (FLOPs, history, resume)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.helpers import interrupted_run, tiny_config
from training.config import replace_dotted
from training.dynamic import AlternatingCompressed, Context, DropGrow, Gradual, cubic_sparsity
from training.errors import ConfigError
from training.flops import flop_model
from training.masks import MaskedParameters, full_mask, prunable_names
from training.models import MODELS, build
from training.pruning import prune
from training.run import train


def context(tmp_path, sparsity: float = 0.8, total: int = 100, per_epoch: int = 10):
    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    names = prunable_names(model)
    mask = full_mask(model, names) if sparsity == 0 else prune(model, "random", sparsity, generator=torch.Generator())
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    masked = MaskedParameters(model, mask)
    ctx = Context(model, mask, masked, flop_model(model, (1, 40)), total, per_epoch, 0, 0, tmp_path)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return ctx, opt


def backward(ctx: Context, opt: torch.optim.Optimizer, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 1, 40, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    opt.zero_grad()
    F.cross_entropy(ctx.model(x), y).backward()


def sgd_step(ctx: Context, opt: torch.optim.Optimizer, seed: int) -> None:
    backward(ctx, opt, seed)
    ctx.masked.mask_grads()
    opt.step()
    ctx.masked.mask_weights()


def test_rigl_drops_by_magnitude_grows_by_gradient_and_conserves_every_layer(tmp_path):
    ctx, opt = context(tmp_path)
    for seed in range(3):  # momentum buffers everywhere
        sgd_step(ctx, opt, seed)
    rigl = DropGrow(ctx, grow="gradient", fraction=0.3, interval=10, end=0.75, anneal="cosine")
    before = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
    old = {n: m.clone() for n, m in ctx.mask.items()}
    momentum = {n: opt.state[p]["momentum_buffer"].clone() for n, p in ctx.model.named_parameters()}
    assert not rigl.before_step(9, 16, opt) and ctx.history == []  # not due: the step is taken as usual
    backward(ctx, opt, 7)
    grads = {n: p.grad.detach().clone() for n, p in ctx.model.named_parameters()}
    assert rigl.before_step(10, 16, opt)  # due: the mask is updated instead of the SGD step
    alpha = 0.3 * 0.5 * (1 + math.cos(math.pi * 10 / 75))
    assert rigl.drop_fraction(10) == pytest.approx(alpha)
    for n, new in ctx.mask.items():
        p, o = dict(ctx.model.named_parameters())[n], old[n]
        active = int(o.sum())
        n_drop = int(active * alpha)
        assert int(new.sum()) == active  # per-layer count conserved
        dropped, grown = o & ~new, new & ~o
        assert int(dropped.sum()) == int(grown.sum()) <= n_drop
        # the drop set D: the n_drop smallest magnitudes among the active (reference: a sort)
        magnitudes = torch.where(o, before[n].abs(), math.inf).flatten()
        drop_set = torch.zeros_like(o).flatten()
        drop_set[magnitudes.argsort()[:n_drop]] = True
        drop_set = drop_set.view_as(o)
        survivors = o & ~drop_set
        assert torch.equal(new & survivors, survivors)  # everything outside D stays
        # the grown set S (new entries outside the survivors): the n_drop largest dense gradients there
        chosen, others = new & ~survivors, ~new & ~survivors
        assert int(chosen.sum()) == n_drop
        if others.any():
            assert grads[n].abs()[chosen].min() >= grads[n].abs()[others].max()
        kept = o & new
        assert (p.detach()[grown] == 0).all() and (opt.state[p]["momentum_buffer"][grown] == 0).all()
        assert (p.detach()[dropped] == 0).all() and (opt.state[p]["momentum_buffer"][dropped] == 0).all()
        assert torch.equal(p.detach()[kept], before[n][kept])  # no SGD step was taken
        assert torch.equal(opt.state[p]["momentum_buffer"][kept], momentum[n][kept])
    assert ctx.history[-1]["step"] == 10 and ctx.history[-1]["kind"] == "drop-grow"
    fd, fs = ctx.flops.dense_forward, ctx.flops.forward(ctx.mask)
    assert rigl.take_flops() == pytest.approx(2 * 3 * fs * 16 + (fd - fs) * 16)  # two steps, one dense gradient


def test_a_weight_dropped_and_regrown_in_one_update_keeps_its_value(tmp_path):
    ctx, opt = context(tmp_path)
    sgd_step(ctx, opt, 0)
    name = next(iter(ctx.mask))
    p = dict(ctx.model.named_parameters())[name]
    weakest = torch.where(ctx.mask[name], p.detach().abs(), math.inf).flatten().argmin()
    backward(ctx, opt, 1)
    with torch.no_grad():
        p.grad.view(-1)[weakest] = 1e6  # the weight it will drop has by far the largest gradient
    value = p.detach().view(-1)[weakest].item()
    DropGrow(ctx, grow="gradient", fraction=0.3, interval=10, end=1.0, anneal="constant").before_step(10, 16, opt)
    assert ctx.mask[name].view(-1)[weakest] and p.detach().view(-1)[weakest].item() == value


def test_set_grows_at_random_after_the_step_once_per_interval(tmp_path):
    ctx, opt = context(tmp_path)
    set_ = DropGrow(ctx, grow="random", fraction=0.3, interval=10, end=0.75, anneal="constant")
    counts = {n: int(m.sum()) for n, m in ctx.mask.items()}
    for t in range(20):
        backward(ctx, opt, t)
        assert not set_.before_step(t, 16, opt)  # the SGD step is never skipped
        ctx.masked.mask_grads()
        opt.step()
        ctx.masked.mask_weights()
        set_.after_step(t, opt)
    assert [u["step"] for u in ctx.history] == [9, 19]  # after the steps that end the intervals
    assert {n: int(m.sum()) for n, m in ctx.mask.items()} == counts
    for n, p in ctx.model.named_parameters():  # the enforced factors and the saved mask agree
        if n in ctx.mask:
            assert torch.equal(p.detach() != 0, (p.detach() != 0) & ctx.mask[n])


def test_gmp_follows_the_cubic_schedule_and_masks_only_shrink(tmp_path):
    ctx, opt = context(tmp_path, sparsity=0.0, total=100)
    gmp = Gradual(ctx, final=0.9, start=0.2, end=0.8, interval=10)
    assert (gmp.t0, gmp.n) == (20, 6)
    masks = []
    for t in range(100):
        sgd_step(ctx, opt, t)
        gmp.after_step(t, opt)
        masks.append({n: m.clone() for n, m in ctx.mask.items()})
    assert [u["step"] for u in ctx.history] == [19, 29, 39, 49, 59, 69, 79]  # after the steps reaching t0 + kΔt
    for k, update in enumerate(ctx.history):
        kept = sum(update["densities"][n] * ctx.mask[n].numel() for n in ctx.mask)
        total = sum(m.numel() for m in ctx.mask.values())
        assert 1 - kept / total == pytest.approx(cubic_sparsity(k, 6, 0.0, 0.9), abs=1e-3)
    for a, b in itertools.pairwise(masks):
        assert all(not (b[n] & ~a[n]).any() for n in a)  # monotone
    star = Gradual(context(tmp_path, sparsity=0.0)[0], final=0.9, start=0.2, end=0.8, interval=10, accelerated=0.7)
    assert star.sparsity_at(0) == 0.7 and star.sparsity_at(6) == 0.9
    assert star.sparsity_at(3) == pytest.approx(0.9 + (0.7 - 0.9) * 0.5**3)
    sp = Gradual(context(tmp_path, sparsity=0.0)[0], final=0.9, start=0.2, end=0.8, interval=10, accelerated=0.7,
                 cubic="sparsimony")  # fmt: skip
    assert sp.sparsity_at(3) == pytest.approx(0.9 + (0.7 - 0.9) * (1 - 30 / 80) ** 3) and sp.sparsity_at(6) == 0.9


@pytest.mark.parametrize(
    "epochs, fractions, compressed_starts, decompressed_starts",
    [  # AC/DC's own configurations: CIFAR-100 WRN (pruner [10,40,171], recycler [30,40,161]) and ImageNet
        (200, (0.05, 0.1, 0.1, 0.15), [10, 50, 90, 130, 170], [30, 70, 110, 150]),
        (100, (0.1, 0.05, 0.1, 0.15), [10, 20, 30, 40, 50, 60, 70, 85], [15, 25, 35, 45, 55, 65, 75]),
    ],
)
def test_acdc_phases_equal_the_authors_configurations(tmp_path, epochs, fractions, compressed_starts,
                                                      decompressed_starts):  # fmt: skip
    ctx, _ = context(tmp_path, sparsity=0.0, total=epochs * 10)
    warmup, phase, last, final = fractions
    acdc = AlternatingCompressed(ctx, target=0.9, epochs=epochs, warmup=warmup, phase=phase, last_dense=last,
                                 final=final)  # fmt: skip
    phases = [acdc.phase_of(e) for e in range(epochs)]
    starts = {kind: [e for e in range(epochs) if phases[e] == kind and (e == 0 or phases[e - 1] != kind)]
              for kind in ("compressed", "decompressed")}  # fmt: skip
    assert phases[: int(warmup * epochs)] == ["dense"] * int(warmup * epochs)
    assert starts == {"compressed": compressed_starts, "decompressed": decompressed_starts}


def test_acdc_compresses_from_scratch_and_decompression_resets_all_momentum(tmp_path):
    ctx, opt = context(tmp_path, sparsity=0.0, total=200, per_epoch=10)
    acdc = AlternatingCompressed(ctx, target=0.9, epochs=20, warmup=0.1, phase=0.1, last_dense=0.1, final=0.15)
    expected = ["dense"] * 2 + (["compressed"] * 2 + ["decompressed"] * 2) * 3 + ["compressed"]
    expected += ["decompressed"] * 2 + ["compressed"] * 3  # the last D phase, then the final C
    assert [acdc.phase_of(e) for e in range(20)] == expected
    for epoch in range(7):
        if epoch in (2, 6):  # a compressed phase starts: global magnitude over every weight, from scratch
            reference = prune(ctx.model, "magnitude", 0.9, names=ctx.masked.names)
        acdc.epoch_start(epoch, opt)
        if epoch in (2, 6):
            assert all(torch.equal(ctx.mask[n], reference[n]) for n in reference)
        if epoch == 4:  # decompressed: every weight back, the whole momentum buffer zero
            assert all(m.all() for m in ctx.mask.values())
            assert all(opt.state[p]["momentum_buffer"].abs().sum() == 0 for p in ctx.model.parameters())
        for t in range(3):
            sgd_step(ctx, opt, epoch * 10 + t)
    assert [u["kind"] for u in ctx.history] == ["compress", "decompress", "compress"]
    assert [u["step"] for u in ctx.history] == [20, 40, 60]


def dst_config(name: str, **extra):
    changes = {"recipe.name": name, "schedule.name": "one-cycle", "schedule.cycles": 1, "schedule.epochs": 4}
    if name in ("rigl", "set"):
        changes.update({"mask.distribution": "erk"})
    else:
        changes.update({"mask.method": "none", "mask.sparsity": 0.9})
    return replace_dotted(tiny_config(), {**changes, **extra})


@pytest.mark.parametrize(
    "name, extra",
    [("rigl", {"recipe.dst_interval": 8}), ("set", {}), ("gmp", {"recipe.gmp_interval": 8}),
     ("gmp-star", {"recipe.gmp_interval": 8}), ("acdc", {"schedule.epochs": 10, "recipe.acdc_warmup": 0.1})],
)  # fmt: skip
def test_each_recipe_resumes_bitwise_and_records_its_history_and_flops(tmp_path, monkeypatch, name, extra):
    cfg = dst_config(name, **extra)
    whole = train(cfg, tmp_path / "whole", quiet=True)
    resumed = interrupted_run(cfg, tmp_path / "resumed", 2, monkeypatch)
    for file in ("cycle_1.pt",):
        a, b = (torch.load(r.run_dir / file, weights_only=True) for r in (whole, resumed))
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert all(torch.equal(a["mask"][k], b["mask"][k]) for k in a["mask"])
    histories = [json.loads((r.run_dir / "mask_history.json").read_text()) for r in (whole, resumed)]
    assert histories[0] == histories[1] and histories[0]["updates"]
    flops = [r.metrics["train_flops"].values for r in (whole, resumed)]
    np.testing.assert_array_equal(flops[0], flops[1])
    assert (np.diff(flops[0].ravel()) > 0).all()
    final = whole.metrics["density"].values.ravel()[-1]
    assert final == pytest.approx(0.2 if name in ("rigl", "set") else 0.1, abs=0.02)


def test_recipe_options_are_checked(tmp_path):
    cases = [
        (dst_config("rigl", **{"mask.method": "none", "mask.sparsity": 0.0}), "trains a sparse mask from the start"),
        (dst_config("gmp", **{"mask.method": "random"}), "starts dense and prunes by magnitude"),
        (dst_config("acdc", **{"recipe.dst_fraction": 0.5}), "recipe.dst_fraction does nothing with recipe acdc"),
        (dst_config("gmp", **{"recipe.gmp_accelerated": 0.5}), "recipe.gmp_accelerated is for gmp-star"),
        (dst_config("rigl"), "no mask update fits"),  # 100-step interval in a 64-step run
        (dst_config("gmp"), "the pruning steps span"),
        (dst_config("acdc", **{"schedule.epochs": 2}), "leave no compressed phase"),
    ]
    for cfg, message in cases:
        with pytest.raises(ConfigError, match=message):
            train(cfg, tmp_path, quiet=True)
    assert dataclasses.replace(tiny_config()).run_name == tiny_config().run_name


@pytest.mark.parametrize("name", ["rigl", "set"])
def test_drop_grow_invariants_hold_at_every_step_of_a_real_run(tmp_path, monkeypatch, name):
    """Through the trainer: per-layer counts conserved at every step, the enforced factors equal the saved
    mask, grown weights zero with zero momentum, and (RigL) no SGD step on an update step."""
    seen = {"steps": 0, "updates": 0}
    before_step, after_step = DropGrow.before_step, DropGrow.after_step

    def before(self, t, batch, opt):
        self.snap = {n: p.detach().clone() for n, p in self.params.items()}
        self.old = {n: m.clone() for n, m in self.ctx.mask.items()}
        self.counts = {n: int(m.sum()) for n, m in self.ctx.mask.items()}
        self.skipped = before_step(self, t, batch, opt)
        return self.skipped

    def after(self, t, opt):
        updates = len(self.ctx.history)
        after_step(self, t, opt)
        seen["steps"] += 1
        assert {n: int(m.sum()) for n, m in self.ctx.mask.items()} == self.counts
        changed = self.skipped or len(self.ctx.history) > updates
        seen["updates"] += changed
        for i, n in enumerate(self.ctx.masked.names):
            p, m = self.params[n], self.ctx.mask[n]
            assert torch.equal(self.ctx.masked.factors[i].bool().cpu(), m)
            assert not p.detach()[~m].any()  # pruned weights are exact zeros
            if changed:
                grown = m & ~self.old[n]
                assert not p.detach()[grown].any() and not opt.state[p]["momentum_buffer"][grown].any()
            if self.skipped:  # RigL: the update replaced the SGD step
                kept = m & self.old[n]
                assert torch.equal(p.detach()[kept], self.snap[n][kept])

    monkeypatch.setattr(DropGrow, "before_step", before)
    monkeypatch.setattr(DropGrow, "after_step", after)
    extra = {"recipe.dst_interval": 8} if name == "rigl" else {}
    result = train(dst_config(name, **extra), tmp_path, quiet=True)
    history = json.loads((result.run_dir / "mask_history.json").read_text())["updates"]
    assert seen["steps"] == 64 and seen["updates"] == len(history) == (5 if name == "rigl" else 2)


def test_gmp_and_acdc_through_the_trainer(tmp_path, monkeypatch):
    """GMP: each pruning step's density is the cubic schedule's, per layer; AC/DC: the phase boundaries and
    the whole momentum buffer zero at each decompression."""
    result = train(dst_config("gmp", **{"recipe.gmp_interval": 8}), tmp_path / "gmp", quiet=True)
    history = json.loads((result.run_dir / "mask_history.json").read_text())["updates"]
    total = 64
    t0, n = int(0.2 * total), (int(0.77 * total) - int(0.2 * total)) // 8
    assert [u["step"] for u in history] == [t0 + 8 * k - 1 for k in range(n + 1)]
    sizes = {k: v.numel() for k, v in torch.load(result.run_dir / "cycle_1.pt", weights_only=True)["mask"].items()}
    for k, update in enumerate(history):
        for name, density in update["densities"].items():  # layerwise: round(s·N_l) pruned in each layer
            expected = 1 - cubic_sparsity(k, n, 0.0, 0.9)
            assert density == pytest.approx(expected, abs=0.5 / sizes[name] + 1e-9), (k, name)

    resets = []
    epoch_start = AlternatingCompressed.epoch_start

    def start(self, epoch, opt):
        epoch_start(self, epoch, opt)
        if self.ctx.history and self.ctx.history[-1]["kind"] == "decompress" and self.ctx.history[-1]["epoch"] == epoch:
            resets.append(all(not b["momentum_buffer"].any() for b in opt.state.values()))

    monkeypatch.setattr(AlternatingCompressed, "epoch_start", start)
    acdc = train(
        dst_config("acdc", **{"schedule.epochs": 10, "recipe.acdc_warmup": 0.1}), tmp_path / "acdc", quiet=True
    )
    updates = json.loads((acdc.run_dir / "mask_history.json").read_text())["updates"]
    # 10 epochs: warm-up 1, phases of 1, fine-tune the last round(1.5) = 2, the last decompressed phase 6-7
    assert [(u["epoch"], u["kind"]) for u in updates] == [
        (1, "compress"), (2, "decompress"), (3, "compress"), (4, "decompress"), (5, "compress"), (6, "decompress"),
        (8, "compress"),
    ]  # fmt: skip
    assert resets == [True, True, True]
    dense = acdc.metrics["density"].values.ravel()
    assert dense[0] == 1.0 and dense[-1] == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_every_updater_runs_on_every_registry_model(tmp_path, model_name):
    """One RigL update, one GMP step and one AC/DC compression on each registry model (a batch of two)."""
    shape = (1, 40) if model_name in ("mlp", "cnn1d", "resnet20_1d") else (3, 32, 32)
    torch.manual_seed(0)
    model = build(model_name, 10, input_shape=shape)
    names = prunable_names(model)
    mask = prune(model, "random", 0.9, generator=torch.Generator().manual_seed(0), distribution="erk")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    ctx = Context(model, mask, MaskedParameters(model, mask), flop_model(model, shape), 100, 10, 0, 0, tmp_path)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(2, *shape), torch.tensor([1, 2])
    model.train()
    F.cross_entropy(model(x), y).backward()
    counts = {n: int(m.sum()) for n, m in mask.items()}
    assert DropGrow(ctx, grow="gradient", fraction=0.3, interval=10, end=0.75, anneal="cosine").before_step(10, 2, opt)
    assert {n: int(m.sum()) for n, m in ctx.mask.items()} == counts
    Gradual(ctx, final=0.95, start=0.0, end=0.5, interval=10).after_step(-1, opt)  # k = 0: prune to s_i = 0
    acdc = AlternatingCompressed(ctx, target=0.95, epochs=10, warmup=0.0, phase=0.2, last_dense=0.2, final=0.2)
    acdc.epoch_start(0, opt)  # compressed from scratch
    kept = sum(int(m.sum()) for m in ctx.mask.values())
    assert kept == pytest.approx(0.05 * sum(m.numel() for m in ctx.mask.values()), abs=1)
    assert set(ctx.mask) == set(names)


@pytest.mark.parametrize("schedule, decay", [("one-cycle", "cosine"), ("step", "linear"), ("cyclic", "linear")])
def test_rigl_under_every_schedule(tmp_path, schedule, decay):
    """T_end and the update steps count the whole run's steps, across cycles too."""
    cycles = 2 if schedule == "cyclic" else 1
    cfg = dst_config("rigl", **{"schedule.name": schedule, "schedule.decay": decay, "schedule.cycles": cycles,
                                "schedule.epochs": 4 // cycles, "recipe.dst_interval": 8})  # fmt: skip
    result = train(cfg, tmp_path, quiet=True)
    steps = [u["step"] for u in json.loads((result.run_dir / "mask_history.json").read_text())["updates"]]
    assert steps == [8, 16, 24, 32, 40]  # 64 steps in all, T_end = 48
