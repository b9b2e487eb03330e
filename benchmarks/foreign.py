"""Foreign-model LMC benchmark row (``python benchmarks/run.py --only foreign-lmc``).

Two torchvision resnet18s saved as plain state dicts (``torch.save(model.state_dict())``), interpolated
by path with ``model="torchvision:resnet18"``: reading and sniffing the files, building the model,
loading and checking the weights, then 31 points with BatchNorm recalibration on 256 train + 256 test
16×16 images (the endpoints are also evaluated as stored, two test passes the reference lacks). The
reference is the forward passes that interpolation needs and nothing else (the
same model, train-mode passes over the training batches and eval-mode passes over the test batches at
every α), timed alone. Goal: a foreign model costs what a native one does, ≤ 1.05× its forward passes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torchvision
from suite import Row, Suite, bare_lmc_passes, interleaved  # benchmarks/suite.py (this folder is on sys.path)


def bench_foreign_lmc(s: Suite) -> None:
    """11-point LMC of two torchvision resnet18s loaded from plain state dicts vs their bare forward passes."""
    import landscape

    n, points, size = (128, 11, 16) if s.quick else (256, 31, 16)
    g = torch.Generator().manual_seed(0)

    def batches() -> list:
        return [
            (torch.randn(64, 3, size, size, generator=g), torch.randint(0, 10, (64,), generator=g))
            for _ in range(n // 64)
        ]

    train, test = batches(), batches()
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            paths.append(Path(folder) / f"resnet18-{seed}.pt")
            torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), paths[-1])
        spec = {"model": "torchvision:resnet18", "model_args": {"num_classes": 10}}
        work = torchvision.models.resnet18(num_classes=10).to(s.device)

        def ours():
            landscape.interpolate(*paths, {"test": test}, points=points, bn_data=train, device=s.device, **spec)

        def bare():  # the forward passes interpolation needs, and nothing else
            bare_lmc_passes(work, train, test, points, s.device)

        t = interleaved({"ours": ours, "bare": bare}, max(1, s.repeats // 2), warmup=1)
    r = t["ours"] / t["bare"]
    s.rows.append(
        Row(
            f"LMC of a foreign model: torchvision resnet18 from plain state dicts, {points} points, BN recalibration "
            f"({n} train + {n} test {size}×{size} images)",
            "bare forward passes it needs, timed alone",
            "≤ 1.05×",
            f"{t['ours']:.2f} s",
            f"{t['bare']:.2f} s",
            r,
            r <= 1.05,
            "ours includes reading both files (sha256, sniffing, weights_only: about 0.3 s per 45 MB file, of which "
            "0.11 s builds torchvision's resnet18 with its random init), the checks, and evaluating both endpoints as "
            "stored (2 test passes beyond the reference's)",
        )
    )
