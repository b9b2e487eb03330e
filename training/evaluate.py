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
    choices = "auto, cpu, cuda or cuda:N"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"unknown device {device!r}; choose from: {choices}", param="device") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}; choose from: {choices}", param="device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)",
            param="device",
        )
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
            out = _forward(model, x) if count == 0 else model(x)
            if count == 0:
                _check_labels(y, out.shape[-1])
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            wrong += (out.argmax(dim=1) != y).sum()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise DataError("cannot evaluate on an empty dataset")
    return float(loss_sum) / count, int(wrong) / count


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The first batch's forward pass: inputs the model cannot take are a :class:`DataError`, not a crash."""
    try:
        return model(x)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"the data does not fit the model: inputs of shape {tuple(x.shape[1:])} ({reason})") from exc


def _check_labels(y: torch.Tensor, classes: int) -> None:
    """Labels outside ``[0, classes)`` are a :class:`DataError` (checked once, on the first batch)."""
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise DataError(f"the data has labels up to {int(y.max())} but the model has {classes} outputs")
