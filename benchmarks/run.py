"""The benchmark suite: every ratio in one run, printed as a table and written to BENCHMARKS.md.

    python benchmarks/run.py [--quick] [--only NAME ...] [--device auto] [--out BENCHMARKS.md]

Each row times our code and its reference side by side in the same process, interleaved
round-robin so that machine noise hits both alike, and reports medians over repeats and their
ratio. These are benchmarks, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

# the row modules of this folder (on sys.path when run as a script)
from dst_rows import bench_flop_counting, bench_rigl_step
from foreign import bench_foreign_lmc
from hessian_rows import bench_hessian, bench_hessian_batches
from suite import ROOT, Row, Suite, bare_lmc_passes, interleaved, render, sync, timed, write_report
from torch.nn import functional as F
from training_rows import _resnet20, bench_masking, bench_training_loop

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
        bare_lmc_passes(work, train, test, points, s.device)

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
        sync(s.device)

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
    """Hessian top-1 and top-5 at equal accuracy against the peers; see benchmarks/curvature.py."""
    from curvature import bench_curvature as run_curvature  # this folder is on sys.path when run as a script

    run_curvature(s)


def bench_curvature_trace(s: Suite) -> None:
    """The trace to 1% against curvlinops' Hutchinson and Hutch++; see benchmarks/curvature.py."""
    from curvature import bench_curvature_trace as run

    run(s)


def bench_curvature_warm(s: Suite) -> None:
    """``analyze`` over 8 checkpoints with and without warm starts; see benchmarks/curvature.py."""
    from curvature import bench_curvature_warm as run

    run(s)


def bench_curvature_memory(s: Suite) -> None:
    """Peak memory of a block product by chunk size; see benchmarks/curvature.py."""
    from curvature import bench_curvature_memory as run

    run(s)


BENCHES: dict[str, Callable[[Suite], None]] = {
    "masking": bench_masking,
    "training-loop": bench_training_loop,
    "rigl-step": bench_rigl_step,
    "flop-counting": bench_flop_counting,
    "hessian": bench_hessian,
    "hessian-batches": bench_hessian_batches,
    "lmc": bench_lmc,
    "foreign-lmc": bench_foreign_lmc,
    "demo": bench_demo,
    "analyze": bench_analyze,
    "curvature": bench_curvature,
    "curvature-trace": bench_curvature_trace,
    "curvature-warm": bench_curvature_warm,
    "curvature-memory": bench_curvature_memory,
    "alignment": bench_alignment,
    "loader": bench_loader,
    "gpu": bench_gpu,
}


# ---------------------------------------------------------------------------------------------- report


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


if __name__ == "__main__":
    main()
