"""The benchmark suite: every ratio in one run, printed as a table and written to BENCHMARKS.md.

    python benchmarks/run.py [--quick] [--only NAME ...] [--device auto] [--out BENCHMARKS.md]

Each row times our code and its reference side by side in the same process, interleaved
round-robin so that machine noise hits both alike, and reports medians over repeats and their
ratio. These are benchmarks, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the results table."""

    what: str
    against: str
    goal: str
    ours: str
    reference: str
    ratio: float | None
    met: bool | None
    note: str = ""


@dataclass
class Suite:
    device: torch.device
    quick: bool
    rows: list[Row] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        return 3 if self.quick else 5


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, run round-robin ``repeats`` times after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
            _sync(s.device)

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
        _sync(s.device)

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


# ---------------------------------------------------------------------------------------------- Hessian


def bench_hessian(s: Suite) -> None:
    """Top-1 and top-5 vs PyHessian on the same model, batch, subspace (dense) and tolerance."""
    from landscape.hessian import hessian_eigenvalues

    model = _resnet20(s.device)
    batch = [_cifar_batch(128, s.device)]
    truth = hessian_eigenvalues(model, batch, k=5, tol=1e-7, max_iter=300, subspace="dense")["eigenvalue"].values
    for k, goal, ratio_goal, tol_goal in (
        (1, "≤ 0.5× time, within 1%", 0.5, 0.01),
        (5, "≤ 0.3× time, all five within 2%", 0.3, 0.02),
    ):
        results = {}

        def ours(k=k, results=results):
            results["ours"] = hessian_eigenvalues(model, batch, k=k, tol=1e-3, subspace="dense")

        def ours_change(k=k, results=results):
            results["change"] = hessian_eigenvalues(model, batch, k=k, tol=1e-3, subspace="dense", criterion="change")

        def pyh(k=k, results=results):
            results["pyhessian"] = hessian_eigenvalues(
                model, batch, k=k, tol=1e-3, subspace="dense", method="pyhessian"
            )

        t = interleaved({"ours": ours, "change": ours_change, "pyhessian": pyh}, max(1, s.repeats // 2), warmup=0)
        err = {
            n: float(np.max(np.abs(results[n]["eigenvalue"].values - truth[:k]) / np.abs(truth[:k]))) for n in results
        }
        agree = float(
            np.max(
                np.abs(results["ours"]["eigenvalue"].values - results["pyhessian"]["eigenvalue"].values)
                / np.abs(results["pyhessian"]["eigenvalue"].values)
            )
        )
        for label, key in (
            ("Lanczos, residual criterion (default)", "ours"),
            ("Lanczos, PyHessian's change criterion", "change"),
        ):
            r = t[key] / t["pyhessian"]
            s.rows.append(
                Row(
                    f"Hessian top-{k} (resnet20, batch 128, tol 1e-3): {label}",
                    f"PyHessian eigenvalues(top_n={k})",
                    goal,
                    f"{t[key]:.2f} s",
                    f"{t['pyhessian']:.2f} s",
                    r,
                    # accuracy is judged against the converged reference, not against PyHessian, whose
                    # deflated power iteration returns largest-magnitude (possibly negative) eigenvalues
                    r <= ratio_goal and err[key] <= tol_goal,
                    f"rel. error vs converged reference: ours {err[key]:.1e}, PyHessian "
                    f"{err['pyhessian']:.1e}; ours vs PyHessian {agree:.1e}; "
                    f"{int(results[key].attrs['hvp_count'])} HVPs",
                )
            )


_HVP_PROBE = """
import resource, sys, time, torch
from landscape.hessian import HessianOperator
from training.models import build
torch.manual_seed(0)
model = build("resnet20", 10)
g = torch.Generator().manual_seed(0)
n = int(sys.argv[1])
batches = [(torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(n)]
op = HessianOperator(model, batches, cache_single_batch=False)
v = torch.randn(op.dim, generator=g)
op.matvec(v)  # warm-up (thread pools, allocator)
t0 = time.perf_counter()
for _ in range(2):
    op.matvec(v)
data_mb = sum(x.numel() * 4 for x, _ in batches) / 2**20
print((time.perf_counter() - t0) / 2, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - data_mb)
"""


def bench_hessian_batches(s: Suite) -> None:
    """Time (after a warm-up call) and whole-process peak RSS, minus the data itself, of one HVP over
    1, 4 and 16 batches, each in its own subprocess."""
    counts = (1, 4) if s.quick else (1, 4, 16)
    res = {}
    for n in counts:
        out = subprocess.run(
            [sys.executable, "-c", _HVP_PROBE, str(n)], capture_output=True, text=True, check=True, cwd=ROOT
        )
        sec, mb = out.stdout.split()
        res[n] = (float(sec), float(mb))
    lo, hi = counts[0], counts[-1]
    time_ratio = res[hi][0] / res[lo][0]
    mem_ratio = res[hi][1] / max(res[lo][1], 1e-9)
    detail = "; ".join(
        f"{n} batch{'es' if n > 1 else ''}: {res[n][0]:.2f} s per HVP, peak RSS {res[n][1]:.0f} MB (data excluded)"
        for n in counts
    )
    s.rows.append(
        Row(
            f"Hessian HVP over {', '.join(map(str, counts))} batches of 128 (resnet20)",
            "itself",
            "peak memory flat; time linear",
            f"time ×{time_ratio:.1f} for ×{hi // lo} batches",
            f"peak ×{mem_ratio:.2f}",
            None,
            mem_ratio < 1.5 and time_ratio <= 1.3 * hi / lo,
            detail,
        )
    )


# ------------------------------------------------------------------------------------------------- LMC


def bench_lmc(s: Suite) -> None:
    """31-point interpolation with BN recalibration (resnet20) vs its bare forward passes and a naive loop."""
    import landscape
    from training.checkpoint import Checkpoint

    n = 256 if s.quick else 512
    model_a, model_b = _resnet20(s.device), _resnet20(s.device)
    torch.manual_seed(1)
    for p in model_b.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    meta = {"model": "resnet20", "model_kwargs": {}, "num_classes": 10}
    ca = Checkpoint(model_a.cpu(), {}, meta, {k: v.clone() for k, v in model_a.state_dict().items()})
    cb = Checkpoint(model_b.cpu(), {}, meta, {k: v.clone() for k, v in model_b.state_dict().items()})
    g = torch.Generator().manual_seed(0)
    train = [
        (torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(n // 128)
    ]
    test = [
        (torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(n // 128)
    ]
    points = 31
    alphas = np.linspace(0, 1, points)

    def ours():
        landscape.interpolate(ca, cb, {"test": test}, points=points, bn="recalibrate", bn_data=train, device=s.device)

    work = copy.deepcopy(model_a).to(s.device)

    def bare():  # the forward passes interpolation needs, and nothing else
        for _ in alphas:
            work.train()
            with torch.no_grad():
                for x, _ in train:
                    work(x.to(s.device))
                work.eval()
                for x, y in test:
                    F.cross_entropy(work(x.to(s.device)), y.to(s.device), reduction="sum")
        _sync(s.device)

    def naive():  # deep-copy the model per α, load the state, recalibrate and evaluate
        sa, sb = ca.state, cb.state
        for a in alphas:
            m = copy.deepcopy(model_a).to(s.device)
            m.load_state_dict({k: (1 - a) * sa[k] + a * sb[k] if sa[k].is_floating_point() else sa[k] for k in sa})
            torch.optim.swa_utils.update_bn(train, m, device=s.device)
            m.eval()
            with torch.no_grad():
                for x, y in test:
                    F.cross_entropy(m(x.to(s.device)), y.to(s.device), reduction="sum")
        _sync(s.device)

    t = interleaved({"ours": ours, "bare": bare, "naive": naive}, max(1, s.repeats // 2), warmup=0)
    r = t["ours"] / t["bare"]
    s.rows.append(
        Row(
            f"LMC, 31 points, BN recalibration (resnet20, {n} train + {n} test samples)",
            "bare forward passes it needs, timed alone",
            "≤ 1.15×",
            f"{t['ours']:.2f} s",
            f"{t['bare']:.2f} s",
            r,
            r <= 1.15,
        )
    )
    r = t["naive"] / t["ours"]
    s.rows.append(
        Row(
            "LMC",
            "naive loop (deep-copy, load state, update_bn, evaluate per α)",
            "≥ 1.5× faster",
            f"{t['ours']:.2f} s",
            f"{t['naive']:.2f} s",
            r,
            r >= 1.5,
            "ratio = naive time / ours; the forward passes are the same in both and dominate",
        )
    )


# ------------------------------------------------------------------------------------- demo, analyze


def bench_demo(s: Suite) -> None:
    """`landscape demo` end to end in a fresh folder (subprocess, so imports count)."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(sys.executable).parent / "landscape"
        cmd = [str(exe), "demo", "--out", tmp, "--quiet", "--device", str(s.device)]
        t = timed(lambda: subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT))
    s.rows.append(Row("landscape demo end to end", "—", "≤ 3 min on 2 CPU cores", f"{t:.0f} s", "", None, t <= 180))


def bench_analyze(s: Suite) -> None:
    """`analyze` over 10 runs × 4 cycles, then again: the re-run only reads the cache."""
    from landscape.analysis import analyze
    from training.config import DataConfig, MaskConfig, ModelConfig, ScheduleConfig, TrainConfig
    from training.run import train

    runs_n = 4 if s.quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for seed in range(runs_n):
            cfg = TrainConfig(
                data=DataConfig(batch_size=512),
                model=ModelConfig(name="cnn1d", width=8),
                mask=MaskConfig(method="random", sparsity=0.9),
                schedule=ScheduleConfig(name="cyclic", cycles=4, epochs=1),
                seed=seed,
                device="cpu",
            )
            dirs.append(train(cfg, tmp, quiet=True).run_dir)
        first = timed(lambda: analyze(dirs, hessian_k=1, points=11, device=str(s.device)))
        again = timed(lambda: analyze(dirs, hessian_k=1, points=11, device=str(s.device)))
    r = again / first
    s.rows.append(
        Row(
            f"landscape analyze, {runs_n} runs × 4 cycles (LMC, signs, Hessian top-1), re-run",
            "the first run",
            "re-run ≤ 5% of the first",
            f"{again:.2f} s",
            f"{first:.1f} s",
            r,
            r <= 0.05,
        )
    )


def bench_alignment(s: Suite) -> None:
    """Weight matching vs one 31-point interpolation (resnet20); see benchmarks/alignment.py."""
    from alignment import bench_alignment as run_alignment  # this folder is on sys.path when run as a script

    run_alignment(s)


def bench_loader(s: Suite) -> None:
    """Device loader vs DataLoader on CIFAR-shaped arrays (CPU); see benchmarks/data_loading.py."""
    from data_loading import bench_loader as run_loader  # this folder is on sys.path when run as a script

    run_loader(s)


def bench_gpu(s: Suite) -> None:
    """Training throughput, loader share, epoch time and concurrent runs on a GPU; see benchmarks/gpu.py."""
    from gpu import bench_gpu as run_gpu  # this folder is on sys.path when run as a script

    run_gpu(s)


def bench_curvature(s: Suite) -> None:
    """Hessian top-k, trace, warm starts and matmat memory against the peers; see benchmarks/curvature.py."""
    from curvature import bench_curvature as run_curvature  # this folder is on sys.path when run as a script

    run_curvature(s)


BENCHES: dict[str, Callable[[Suite], None]] = {
    "masking": bench_masking,
    "training-loop": bench_training_loop,
    "hessian": bench_hessian,
    "hessian-batches": bench_hessian_batches,
    "lmc": bench_lmc,
    "demo": bench_demo,
    "analyze": bench_analyze,
    "curvature": bench_curvature,
    "alignment": bench_alignment,
    "loader": bench_loader,
    "gpu": bench_gpu,
}


# ---------------------------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = resource.getrlimit(resource.RLIMIT_AS)[0]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"Python {platform.python_version()}; GPU: {gpu}; memory limit {mem if mem > 0 else 'none'}"
    )


def render(s: Suite) -> str:
    lines = ["| what | against | goal | ours | reference | ratio | goal met |", "|---|---|---|---|---|---|---|"]
    for r in s.rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(f"| {r.what} | {r.against} | {r.goal} | {r.ours} | {r.reference} | {ratio} | {met} |")
    notes = [f"- *{r.what}*: {r.note}" for r in s.rows if r.note]
    return "\n".join(lines) + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer repeats and smaller sizes.")
    parser.add_argument("--only", nargs="*", choices=list(BENCHES), help="Run only these benchmarks.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report (default: print only).")
    args = parser.parse_args()
    from training.evaluate import resolve_device

    suite = Suite(resolve_device(args.device), args.quick)
    for name in args.only or list(BENCHES):
        t0 = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        BENCHES[name](suite)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if args.out:  # rewrite the report after every benchmark: a crash later loses nothing finished
            write_report(suite, args.out)
    print(render(suite))


def write_report(suite: Suite, out: Path) -> None:
    """Write the Markdown report for the rows measured so far."""
    from training.fileio import atomic_write_text

    header = (
        f"# Benchmarks\n\nProduced by `python benchmarks/run.py --out {out.name}` on "
        f"{time.strftime('%Y-%m-%d')}.\n\nMachine: {machine()}; device {suite.device.type}.\n\n"
        "Medians over interleaved repeats; ratios are ours / reference unless a note says otherwise.\n\n"
    )
    atomic_write_text(out, header + render(suite) + "\n")


if __name__ == "__main__":
    main()
