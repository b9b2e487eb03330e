"""The PyHessian package as a cross-check backend (dense, every parameter, power iteration)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from landscape.hessian.algorithms import EigenResult
from training.errors import UserError


def _pyhessian(
    model: nn.Module, data: Iterable, k: int, tol: float, max_iter: int, seed: int, device: torch.device
) -> EigenResult:
    try:
        from pyhessian import hessian as pyhessian_hessian
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserError("method pyhessian needs the PyHessian package: pip install pyhessian") from exc
    batches = list(data)
    net = copy.deepcopy(model).to(device)
    criterion = nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if len(batches) == 1:
            x, y = batches[0]
            h = pyhessian_hessian(net, criterion, data=(x.to(device), y.to(device)), cuda=device.type == "cuda")
        else:
            h = pyhessian_hessian(net, criterion, dataloader=batches, cuda=device.type == "cuda")
        vals, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
    order = np.argsort(vals)[::-1]
    return EigenResult(np.array(vals)[order], np.full(k, np.nan), np.full(k, -1))
