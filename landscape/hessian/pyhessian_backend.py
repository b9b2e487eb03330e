"""The PyHessian package (Yao et al. 2020) as a cross-check backend: dense, every parameter, its own
deflated power iteration with its relative-change stopping rule."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from landscape.hessian.algorithms import SpectrumResult
from training.errors import UserError


def pyhessian_eigenvalues(
    model: nn.Module,
    batches: Sequence,
    *,
    k: int,
    tol: float,
    max_iter: int,
    seed: int,
    device: torch.device,
) -> SpectrumResult:
    """Top-k eigenvalues from ``pyhessian.hessian(...).eigenvalues(maxIter=max_iter, tol=tol, top_n=k)``
    on the mean cross-entropy over ``batches`` (PyHessian puts the model in eval mode itself). PyHessian
    reports neither residuals (NaN), iterations nor products (-1), nor convergence (None)."""
    try:
        from pyhessian import hessian as pyhessian_hessian
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserError("method pyhessian needs the PyHessian package: pip install pyhessian", param="method") from exc
    batches = list(batches)
    net = copy.deepcopy(model).to(device)
    criterion = nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # PyHessian calls backward(create_graph=True); torch's warning about it concerns PyHessian's code, on a
        # copy of the model dropped on return, and would otherwise reach the user after the table.
        warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True", category=UserWarning)
        torch.manual_seed(seed)
        if len(batches) == 1:
            x, y = batches[0]
            h = pyhessian_hessian(net, criterion, data=(x.to(device), y.to(device)), cuda=device.type == "cuda")
        else:
            h = pyhessian_hessian(net, criterion, dataloader=batches, cuda=device.type == "cuda")
        vals, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
    order = np.argsort(vals)[::-1]
    return SpectrumResult(np.array(vals)[order], np.full(k, np.nan), np.full(k, -1), -1, None)
