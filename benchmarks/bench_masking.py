"""Masked against dense training steps, side by side in one run.

    python benchmarks/bench_masking.py [--model resnet20] [--batch-size 128] [--sparsity 0.9] [--repeats 15]

Times one SGD step (forward, backward, step) of three variants on the same model, data and device,
interleaved round-robin so that machine noise hits all of them alike:

* ``dense``: plain training, no mask;
* ``ours``: stored zeros, gradients masked after backward and weights re-masked after the step
  (``training.masks.MaskedParameters``), as ``landscape train`` does;
* ``torch.prune``: ``torch.nn.utils.prune`` re-parametrisation (``weight_orig * weight_mask`` in a
  forward pre-hook).

Prints medians (ms per step) and ratios to dense; the issue's goal for ``ours`` is <= 1.05x.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.utils.prune as torch_prune
from torch.nn import functional as F

from training.evaluate import resolve_device
from training.masks import MaskedParameters, apply_mask
from training.models import build
from training.pruning import prune


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)

    torch.manual_seed(0)
    base = build(args.model, 10, input_shape=(3, 32, 32))
    mask = prune(base, "random", args.sparsity, generator=torch.Generator().manual_seed(0))
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)

    variants = {}
    dense = copy.deepcopy(base).to(device)
    variants["dense"] = (dense, torch.optim.SGD(dense.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4), None)
    ours = copy.deepcopy(base)
    apply_mask(ours, mask)
    ours.to(device)
    variants["ours"] = (
        ours,
        torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4),
        MaskedParameters(ours, mask),
    )
    ref = copy.deepcopy(base).to(device)
    modules = dict(ref.named_modules())
    for name, m in mask.items():
        torch_prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", m.to(device))
    variants["torch.prune"] = (ref, torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4), None)

    def step(model, opt, masked):
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if masked is not None:
            masked.mask_grads()
        opt.step()
        if masked is not None:
            masked.mask_weights()

    for model, opt, masked in variants.values():
        model.train()
        for _ in range(args.warmup):
            step(model, opt, masked)
    times = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, (model, opt, masked) in variants.items():
            _sync(device)
            t0 = time.perf_counter()
            step(model, opt, masked)
            _sync(device)
            times[name].append(time.perf_counter() - t0)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"# masked vs dense training step: {args.model}, batch {args.batch_size}, sparsity {args.sparsity}, "
        f"{device.type}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'variant':<12} {'ms/step':>9} {'vs dense':>9}")
    for name, t in med.items():
        print(f"{name:<12} {1e3 * t:9.1f} {t / med['dense']:9.3f}x")
    print(f"ours vs torch.prune: {med['ours'] / med['torch.prune']:.3f}x")


if __name__ == "__main__":
    main()
