"""GPU benchmark rows (``python benchmarks/run.py --only gpu``); on a machine without CUDA each row says
"not measured: no GPU" and nothing runs.

* training samples per second, with the loader's share of the step time: resnet20 on CIFAR-shaped
  uint8 arrays (50,000, batch 512, crop + flip) and resnet50 on ImageNet-shaped ones (224x224,
  batch 256, flip), both with the device loader, data and model on the GPU;
* a resnet20 CIFAR epoch with the device loader against the ``DataLoader`` path with 0 and 8 workers
  (pinned memory, non-blocking copies);
* aggregate training throughput of N = 1, 2 and 4 resnet20 runs at once on one GPU, each its own
  process (as ``landscape sweep --runs-per-device N`` runs them), timed over the same window.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from suite import ROOT, Row, Suite  # benchmarks/suite.py (this folder is on sys.path when run as a script)
from torch.nn import functional as F

NO_GPU = "not measured: no GPU"
ROWS = {
    "resnet20": ("resnet20 training (CIFAR-shaped, batch 512), device loader", "—", "samples/s; loader share"),
    "resnet50": ("resnet50 training (ImageNet-shaped 224², batch 256), device loader", "—", "samples/s; loader share"),
    "epoch": ("resnet20 CIFAR epoch, device loader", "DataLoader path, 8 workers (0 workers in the note)", "≤ 0.3×"),
    "concurrent": ("4 concurrent resnet20 runs on one GPU, aggregate samples/s", "1 run alone", "≥ 2×"),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def image_bundle(n: int, size: int, *, crop: bool, workers: int = 0, seed: int = 0):
    """A bundle of ``n`` random uint8 ``size`` x ``size`` RGB images (and 1,000 test images) with a
    flip, plus a 4-pixel-padded crop when ``crop``; CIFAR statistics for the normalisation."""
    from training.data import DataBundle, ImageTransform
    from training.data.arrays import ImageArrayDataset

    g = np.random.default_rng(seed)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    train = ImageArrayDataset(
        g.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        np.arange(n) % 10,
        ImageTransform(mean, std, padding=4 if crop else 0, flip=True),
    )
    test = ImageArrayDataset(
        g.integers(0, 256, (100, size, size, 3), dtype=np.uint8), np.arange(100) % 10, train.transform.plain()
    )
    return DataBundle(
        "images", 10, (3, size, size), train, train.replace(transform=train.transform.plain()), test, workers
    )


def _model(name: str, size: int, device: torch.device):
    from training.models import build

    torch.manual_seed(0)
    return build(name, 10, input_shape=[3, size, size]).to(device)


def training_epoch(model, loader, device: torch.device, limit: int | None = None) -> tuple[float, int]:
    """Seconds and samples of one pass of SGD steps over ``loader`` (at most ``limit`` batches)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    n = 0
    _sync(device)
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
        if limit is not None and i + 1 >= limit:
            break
    _sync(device)
    return time.perf_counter() - t0, n


def loader_pass(loader, device: torch.device, limit: int | None = None) -> float:
    """Seconds to draw (at most ``limit``) batches of ``loader``, synchronised."""
    _sync(device)
    t0 = time.perf_counter()
    for i, _ in enumerate(loader):
        if limit is not None and i + 1 >= limit:
            break
    _sync(device)
    return time.perf_counter() - t0


def throughput(name: str, size: int, n: int, batch: int, device: torch.device, limit: int | None) -> tuple:
    """``(samples/s, loader share)`` of training ``name`` with the device loader on ``device``."""
    bundle = image_bundle(n, size, crop=size == 32).to(device)
    model = _model(name, size, device)
    training_epoch(model, bundle.train_loader(batch, 0), device, limit=3)  # warm-up (cuDNN, allocator)
    secs, samples = training_epoch(model, bundle.train_loader(batch, 1), device, limit)
    load = loader_pass(bundle.train_loader(batch, 1), device, limit)
    return samples / secs, load / secs


def epoch_times(n: int, batch: int, device: torch.device, limit: int | None = None) -> dict[str, float]:
    """A resnet20 epoch with the device loader and with the DataLoader path (0 and 8 workers)."""
    base = image_bundle(n, 32, crop=True)
    loaders = {
        "device": base.to(device).train_loader(batch, 0),
        "dataloader-0": dataclasses.replace(base, loader="torch").train_loader(batch, 0, pin=device.type == "cuda"),
        "dataloader-8": dataclasses.replace(base, loader="torch", num_workers=8).train_loader(
            batch, 0, pin=device.type == "cuda"
        ),
    }
    model = _model("resnet20", 32, device)
    training_epoch(model, loaders["device"], device, limit=3)
    return {k: training_epoch(model, loader, device, limit)[0] for k, loader in loaders.items()}


_CONCURRENT_PROBE = """
import pathlib, sys, time, torch
sys.path.insert(0, "benchmarks")
from gpu import image_bundle, _model, _sync
from torch.nn import functional as F
device, folder, seconds = torch.device(sys.argv[1]), pathlib.Path(sys.argv[2]), float(sys.argv[3])
bundle = image_bundle(10_000, 32, crop=True).to(device)
model = _model("resnet20", 32, device)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
def batches():
    epoch = 0
    while True:
        yield from bundle.train_loader(512, epoch)
        epoch += 1
stream = batches()
def step():
    x, y = next(stream)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
for _ in range(5):
    step()
_sync(device)
(folder / f"ready-{sys.argv[4]}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
t0, n = time.perf_counter(), 0
while time.perf_counter() - t0 < seconds:
    step()
    n += 512
_sync(device)
print(n / (time.perf_counter() - t0))
"""


def concurrent_throughput(runs: int, device: torch.device, seconds: float) -> float:
    """Aggregate samples/s of ``runs`` resnet20 training processes sharing ``device``, timed together."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CONCURRENT_PROBE, str(device), tmp, str(seconds), str(i)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(runs)
        ]
        deadline = time.time() + 600
        while len(list(Path(tmp).glob("ready-*"))) < runs:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                for p in procs:
                    p.kill()
                raise RuntimeError("a concurrent-run probe failed to start")
            time.sleep(0.05)
        (Path(tmp) / "go").touch()
        rates = [float(p.communicate()[0].split()[-1]) for p in procs]
    return sum(rates)


def bench_gpu(s: Suite) -> None:
    """The GPU rows, or "not measured: no GPU" rows."""
    if s.device.type != "cuda":
        print(f"[gpu] {NO_GPU} (device {s.device}); the GPU rows are left unmeasured", file=sys.stderr)
        for what, against, goal in ROWS.values():
            s.rows.append(Row(what, against, goal, NO_GPU, "", None, None))
        return
    device = s.device
    limit = 20 if s.quick else None
    for name, size, n, batch in (("resnet20", 32, 50_000, 512), ("resnet50", 224, 2_560, 256)):
        rate, share = throughput(name, size, n, batch, device, limit)
        what, against, goal = ROWS[name]
        s.rows.append(
            Row(
                what,
                against,
                goal,
                f"{rate:.0f} samples/s",
                "",
                None,
                None,
                f"loader {100 * share:.1f}% of the step time",
            )
        )
    t = epoch_times(50_000, 512, device, limit)
    r = t["device"] / t["dataloader-8"]
    what, against, goal = ROWS["epoch"]
    note = f"DataLoader 0 workers: {t['dataloader-0']:.2f} s ({t['device'] / t['dataloader-0']:.2f}×)"
    s.rows.append(Row(what, against, goal, f"{t['device']:.2f} s", f"{t['dataloader-8']:.2f} s", r, r <= 0.3, note))
    seconds = 8.0 if s.quick else 20.0
    rates = {n: concurrent_throughput(n, device, seconds) for n in (1, 2, 4)}
    r = rates[4] / rates[1]
    what, against, goal = ROWS["concurrent"]
    note = "; ".join(f"{n} run{'s' if n > 1 else ''}: {rates[n]:.0f} samples/s" for n in rates)
    s.rows.append(Row(what, against, goal, f"{rates[4]:.0f} samples/s", f"{rates[1]:.0f} samples/s", r, r >= 2, note))
