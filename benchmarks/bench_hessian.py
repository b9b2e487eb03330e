"""Hessian top-k: ours (Lanczos on the same operator PyHessian uses) against PyHessian, side by side.

    python benchmarks/bench_hessian.py [--model resnet20] [--batch-size 128] [--repeats 3] [--tol 1e-3]

Both run on the same model (eval mode), the same single batch, the dense subspace (every parameter,
as PyHessian), the same tolerance and iteration cap. Timings are medians over interleaved repeats;
eigenvalues are compared relative to PyHessian's. Also reports the cost of one HVP relative to one
gradient, for double backward (what both use) and forward-over-reverse (torch.func.jvp of grad).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from torch import nn

from landscape.hessian import HessianOperator, hessian_eigenvalues
from training.evaluate import resolve_device
from training.models import build


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def hvp_cost(model: nn.Module, batch, repeats: int = 5) -> dict[str, float]:
    """Median seconds of one gradient, one double-backward HVP and one forward-over-reverse HVP."""
    x, y = batch
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b for n, b in model.named_buffers()}
    model.eval()

    def loss_fn(p):
        out = torch.func.functional_call(model, (p, buffers), (x,))
        return nn.functional.cross_entropy(out, y)

    v = {n: torch.randn_like(p) for n, p in params.items()}
    plist = list(model.parameters())

    def grad():
        loss = nn.functional.cross_entropy(model(x), y)
        return torch.autograd.grad(loss, plist)

    def double_backward():
        loss = nn.functional.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, plist, create_graph=True)
        return torch.autograd.grad(g, plist, grad_outputs=[v[n] for n, _ in model.named_parameters()])

    def forward_over_reverse():
        return torch.func.jvp(torch.func.grad(loss_fn), (params,), (v,))[1]

    out = {}
    for name, fn in (("gradient", grad), ("double backward", double_backward), ("fwd-over-rev", forward_over_reverse)):
        fn()
        out[name] = statistics.median(timed(fn)[0] for _ in range(repeats))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--ks", default="1,5")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build(args.model, 10).to(device)
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randn(args.batch_size, 3, 32, 32, generator=g).to(device),
        torch.randint(0, 10, (args.batch_size,), generator=g).to(device),
    )
    print(
        f"# Hessian top-k: {args.model}, one batch of {args.batch_size}, tol {args.tol}, {device.type}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    costs = hvp_cost(copy.deepcopy(model), batch)
    print(
        f"one gradient {1e3 * costs['gradient']:.0f} ms; HVP double backward "
        f"{costs['double backward'] / costs['gradient']:.2f}x a gradient, forward-over-reverse "
        f"{costs['fwd-over-rev'] / costs['gradient']:.2f}x"
    )
    op = HessianOperator(model, [batch])
    print(f"subspace dimension {op.dim}")
    kmax = max(int(v) for v in args.ks.split(","))
    truth = hessian_eigenvalues(model, [batch], k=kmax, tol=1e-7, max_iter=300, subspace="dense")["eigenvalue"].values
    print(f"converged reference (Lanczos, tol 1e-7): {np.array2string(truth, precision=6)}")
    header = f"{'k':>3} {'criterion':>9} {'ours s':>8} {'PyHessian s':>12} {'ratio':>7} {'HVPs':>5}"
    print(header + f" {'ours max rel err':>17} {'PyHessian max rel err':>22}")
    for k, criterion in ((int(v), c) for v in args.ks.split(",") for c in ("residual", "change")):
        ours_t, ref_t, hvps, errs, ref_errs = [], [], [], [], []
        for r in range(args.repeats):
            t, ours = timed(
                lambda r=r, k=k, c=criterion: hessian_eigenvalues(
                    model, [batch], k=k, tol=args.tol, max_iter=args.max_iter, subspace="dense", seed=r, criterion=c
                )
            )
            ours_t.append(t)
            hvps.append(ours.attrs["hvp_count"])
            errs.append(np.max(np.abs(ours["eigenvalue"].values - truth[:k]) / np.abs(truth[:k])))
            t, ref = timed(
                lambda r=r, k=k: hessian_eigenvalues(
                    model,
                    [batch],
                    k=k,
                    tol=args.tol,
                    max_iter=args.max_iter,
                    subspace="dense",
                    method="pyhessian",
                    seed=r,
                )
            )
            ref_t.append(t)
            ref_errs.append(np.max(np.abs(ref["eigenvalue"].values - truth[:k]) / np.abs(truth[:k])))
        mo, mr = statistics.median(ours_t), statistics.median(ref_t)
        print(
            f"{k:>3} {criterion:>9} {mo:8.2f} {mr:12.2f} {mo / mr:6.2f}x {statistics.median(hvps):5.0f}"
            f" {max(errs):17.2e} {max(ref_errs):22.2e}"
        )


if __name__ == "__main__":
    main()
