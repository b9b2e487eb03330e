"""Rows for masks that change during training and for FLOP counting: RigL's update step against the
static-mask step, and the cost of counting training FLOPs against an epoch."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from suite import Row, Suite, interleaved, sync
from torch.nn import functional as F
from training_rows import _cifar_batch, _resnet20


def bench_rigl_step(s: Suite) -> None:
    """RigL's update step (forward, backward, drop and grow on every layer, no SGD step) against the
    static-mask step (forward, backward, masked SGD step), resnet20, batch 128, ERK 90%; amortised over
    ΔT = 100 steps, the cost of an update is (99·static + update) / 100."""
    from training.dynamic import Context, DropGrow
    from training.flops import flop_model
    from training.masks import MaskedParameters, apply_mask
    from training.pruning import prune

    base = _resnet20(s.device)
    mask = prune(base, "random", 0.9, generator=torch.Generator().manual_seed(0), distribution="erk")
    x, y = _cifar_batch(128, s.device)
    fm = flop_model(copy.deepcopy(base).cpu(), (3, 32, 32))

    def make(update: bool):
        model = copy.deepcopy(base)
        apply_mask(model, mask)
        own = {n: m.clone() for n, m in mask.items()}
        masked = MaskedParameters(model, own)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        rigl = DropGrow(Context(model, own, masked, fm, 10_000, 100, 0, 0, Path(tempfile.gettempdir())),
                        grow="gradient", fraction=0.3, interval=100, end=0.75, anneal="cosine")  # fmt: skip
        model.train()
        counter = [100]

        def step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            skip = rigl.before_step(counter[0], len(y), opt) if update else False
            masked.mask_grads()
            if not skip:
                opt.step()
            masked.mask_weights()
            counter[0] += 100  # every call an update step (a multiple of ΔT before T_end)
            sync(s.device)

        return step

    t = interleaved({"static": make(False), "update": make(True)}, 3 * s.repeats, warmup=2)
    amortised = (99 * t["static"] + t["update"]) / 100 / t["static"]
    s.rows.append(
        Row(
            "RigL update step amortised over ΔT = 100 (resnet20, batch 128, ERK 90%)",
            "static-mask training step",
            "≤ 1.1×",
            f"{1e3 * t['update']:.0f} ms per update step",
            f"{1e3 * t['static']:.0f} ms",
            amortised,
            amortised <= 1.1,
            f"an update step alone is {t['update'] / t['static']:.2f}× a static one",
        )
    )


def bench_flop_counting(s: Suite) -> None:
    """What counting training FLOPs adds to an epoch: measuring F_l once per run (one forward pass on one
    sample with hooks) plus the ledger's per-epoch sum, against one epoch of training (resnet20,
    synthetic CIFAR-shaped data through ``landscape train``)."""
    from training.config import DataConfig, MaskConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
    from training.data import load_data
    from training.flops import FlopLedger, flop_model
    from training.masks import full_mask, prunable_names
    from training.run import train

    n_train = 512 if s.quick else 1024
    cfg = TrainConfig(
        data=DataConfig(name="synthetic", batch_size=128, synthetic_train=n_train, synthetic_test=256),
        model=ModelConfig(name="resnet20"),
        mask=MaskConfig(method="random", sparsity=0.9),
        schedule=ScheduleConfig(name="one-cycle", epochs=1),
        optim=OptimConfig(lr=0.1),
        device=str(s.device),
        threads=torch.get_num_threads(),
    )
    data = load_data(cfg.data)
    counter = iter(range(10**6))
    model = _resnet20(torch.device("cpu"))
    mask = full_mask(model, prunable_names(model))

    def epoch():
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, Path(tmp) / str(next(counter)), quiet=True, data=data)

    def counting():
        ledger = FlopLedger(flop_model(model, (3, 32, 32)))
        ledger.add(ledger.model.training(mask, n_train))

    t = interleaved({"epoch": epoch, "counting": counting}, s.repeats)
    r = t["counting"] / t["epoch"]
    s.rows.append(
        Row(
            "counting training FLOPs (resnet20, an epoch of synthetic CIFAR)",
            "the epoch itself (train, evaluate, save)",
            "< 1%",
            f"{1e3 * t['counting']:.1f} ms ({100 * r:.2f}% of the epoch)",
            f"{t['epoch']:.2f} s",
            r,
            r < 0.01,
            "measured once per run (F_l hooks) and summed once per epoch; the epoch includes the run's set-up",
        )
    )
