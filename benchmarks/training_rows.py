"""Benchmark rows of the training core: the masked step against the dense step and against
``torch.nn.utils.prune``, and the training loop against a minimal hand-written loop."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
import torch.nn.utils.prune as torch_prune
from suite import Row, Suite, interleaved, sync  # this folder is on sys.path when run as a script
from torch import nn
from torch.nn import functional as F


def _resnet20(device: torch.device) -> nn.Module:
    from training.models import build

    torch.manual_seed(0)
    return build("resnet20", 10).to(device)


def _cifar_batch(n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device)


# ------------------------------------------------------------------------------------------ masking


def bench_masking(s: Suite) -> None:
    """Masked vs dense vs torch.nn.utils.prune training steps (resnet20, batch 128, 90% sparse)."""
    from training.masks import MaskedParameters, apply_mask
    from training.pruning import prune

    base = _resnet20(s.device)
    mask = prune(base, "random", 0.9, generator=torch.Generator().manual_seed(0))
    x, y = _cifar_batch(128, s.device)

    def make(kind: str):
        model = copy.deepcopy(base)
        masked = None
        if kind == "ours":
            apply_mask(model, mask)
            masked = MaskedParameters(model, mask)
        if kind == "torch.prune":
            modules = dict(model.named_modules())
            for name, m in mask.items():
                torch_prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", m.to(s.device))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        model.train()

        def step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if masked is not None:
                masked.mask_grads()
            opt.step()
            if masked is not None:
                masked.mask_weights()
            sync(s.device)

        return step

    t = interleaved({k: make(k) for k in ("dense", "ours", "torch.prune")}, 3 * s.repeats, warmup=2)
    r = t["ours"] / t["dense"]
    s.rows.append(
        Row(
            "masked training step (resnet20, batch 128, 90% sparse)",
            "dense step, same loop",
            "≤ 1.05×",
            f"{1e3 * t['ours']:.0f} ms",
            f"{1e3 * t['dense']:.0f} ms",
            r,
            r <= 1.05,
        )
    )
    r = t["ours"] / t["torch.prune"]
    s.rows.append(
        Row(
            "masked training step",
            "torch.nn.utils.prune re-parametrisation",
            "faster (< 1×)",
            f"{1e3 * t['ours']:.0f} ms",
            f"{1e3 * t['torch.prune']:.0f} ms",
            r,
            r < 1.0,
        )
    )


# ------------------------------------------------------------------------------------ training loop


def bench_training_loop(s: Suite) -> None:
    """Samples/s of `landscape train` (synthetic CIFAR-shaped data, dense resnet20: masking has its own
    row) vs a minimal loop doing the same epochs of training and test evaluation."""
    from training.config import DataConfig, MaskConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
    from training.data import load_data
    from training.run import train

    n_train, epochs = (512, 2) if s.quick else (1024, 3)
    cfg = TrainConfig(
        data=DataConfig(name="synthetic", batch_size=128, synthetic_train=n_train, synthetic_test=256),
        model=ModelConfig(name="resnet20"),
        mask=MaskConfig(method="none"),  # dense: masking has its own row
        schedule=ScheduleConfig(name="one-cycle", epochs=epochs),
        optim=OptimConfig(lr=0.1),
        device=str(s.device),
        threads=torch.get_num_threads(),  # the minimal loop's count: the same work on the same threads
    )
    data = load_data(cfg.data)
    counter = iter(range(10**6))

    def ours():
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, Path(tmp) / str(next(counter)), quiet=True, data=data)

    def minimal():
        torch.manual_seed(0)
        model = _resnet20(s.device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        x, y = data.train
        xt, yt = data.test
        total = epochs * ((len(y) + 127) // 128)
        step = 0
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(len(y))
            for i in range(0, len(y), 128):
                idx = perm[i : i + 128]
                for group in opt.param_groups:
                    group["lr"] = 0.1 * (1 - step / total)
                loss = F.cross_entropy(model(x[idx].to(s.device)), y[idx].to(s.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
            model.eval()
            with torch.no_grad():
                for i in range(0, len(yt), 1000):
                    F.cross_entropy(model(xt[i : i + 1000].to(s.device)), yt[i : i + 1000].to(s.device))
        sync(s.device)

    t = interleaved({"ours": ours, "minimal": minimal}, s.repeats)
    samples = n_train * epochs
    r = t["minimal"] / t["ours"]
    s.rows.append(
        Row(
            f"training loop throughput (resnet20, synthetic {n_train}×{epochs} epochs, eval each epoch)",
            "minimal hand-written loop, same work",
            "≥ 0.95× its throughput",
            f"{samples / t['ours']:.0f} samples/s",
            f"{samples / t['minimal']:.0f} samples/s",
            r,
            r >= 0.95,
            "ours also writes init/cycle/resume checkpoints and metrics.nc every epoch",
        )
    )
