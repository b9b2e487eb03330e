"""Evaluation: mean cross-entropy and error over an iterable of batches."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import DataError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    from training.errors import ConfigError

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    return dev


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable, device: torch.device | str | None = None) -> tuple[float, float]:
    """``(loss, error)`` of ``model`` in eval mode over all batches of ``data``.

    ``loss`` is the mean cross-entropy per sample (batch means weighted by batch size) in nats;
    ``error`` is 1 - accuracy, a fraction. The model's train/eval mode is restored afterwards.
    Accumulation stays on the device; there is one host synchronisation at the end.
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    try:
        for x, y in data:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            wrong += (out.argmax(dim=1) != y).sum()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise DataError("cannot evaluate on an empty dataset")
    return float(loss_sum) / count, int(wrong) / count
