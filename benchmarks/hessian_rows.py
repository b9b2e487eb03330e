"""Benchmark rows of the Hessian: top-1 and top-5 against PyHessian, and the HVP over 1, 4 and 16 batches."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from suite import ROOT, Row, Suite, interleaved  # this folder is on sys.path when run as a script
from training_rows import _cifar_batch, _resnet20

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
