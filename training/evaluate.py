"""Evaluation: mean loss (cross-entropy, or any loss) and error over an iterable of batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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
def evaluate(
    model: nn.Module,
    data: Iterable,
    device: torch.device | str | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float | None]:
    """``(loss, error)`` of ``model`` in eval mode over all batches of ``data``.

    ``loss`` is the mean loss per sample (batch means weighted by batch size): cross-entropy in nats
    by default, or ``loss_fn(output, target)`` (a batch mean). ``error`` is 1 - accuracy, a fraction,
    when the targets are class labels (integer, one per sample, outputs of shape ``[N, classes]``);
    with a ``loss_fn`` and other targets (regression) it is ``None``. The model's train/eval mode is
    restored afterwards. Accumulation stays on the device; there is one host synchronisation at the end.
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    classify = loss_fn is None
    try:
        for x, y in data:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            out = _forward(model, x) if count == 0 else model(x)
            if count == 0:
                if loss_fn is None:
                    check_class_targets(y)
                classify = classify or is_classification(out, y)
                if classify:
                    _check_labels(y, out.shape[-1])
            if loss_fn is None:
                loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            else:
                loss_sum += _batch_loss(loss_fn, out, y).double() * len(y)
            if classify:
                wrong += (out.argmax(dim=1) != y).sum()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise DataError("cannot evaluate on an empty dataset")
    return float(loss_sum) / count, (int(wrong) / count if classify else None)


def is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether targets are class labels for ``out``: integer, one per sample, outputs ``[N, classes]``."""
    return not y.is_floating_point() and not y.is_complex() and y.dim() == 1 and out.dim() == 2


def _batch_loss(loss_fn: Callable, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss_fn(out, y)`` as a scalar tensor; anything else is a :class:`DataError` naming what it returned."""
    try:
        value = loss_fn(out, y)
    except DataError:
        raise
    except (RuntimeError, ValueError, TypeError) as exc:  # the user's loss refused these outputs or targets
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"the loss raised {type(exc).__name__} on outputs {tuple(out.shape)}, targets "
                        f"{tuple(y.shape)}: {reason}", param="loss_fn") from exc  # fmt: skip
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise DataError(f"the loss must return the batch's mean loss as one number, got {shape}", param="loss_fn")
    return value.reshape(())


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The first batch's forward pass: inputs the model cannot take are a :class:`DataError`, not a crash."""
    try:
        return model(x)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"the data does not fit the model: inputs of shape {tuple(x.shape[1:])} ({reason})") from exc


def check_class_targets(y: Any) -> None:
    """Targets the default loss (cross-entropy) can take as class labels: an integer tensor with one label
    per sample. Anything else (float labels, one-hot or multi-column targets) is a :class:`DataError`
    that says to pass a loss for them."""
    if not isinstance(y, torch.Tensor):
        raise DataError(f"the targets must be a tensor of class labels, got {type(y).__name__}", param="data")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.dim() != 1:
        raise DataError(
            f"cross-entropy needs integer class labels, one per sample; the targets are {str(y.dtype)[6:]} of "
            f"shape {tuple(y.shape)}: convert them (y.long()) or pass a loss_fn (--loss) for other targets",
            param="data",
        )


def _check_labels(y: torch.Tensor, classes: int) -> None:
    """Labels outside ``[0, classes)`` are a :class:`DataError` (checked once, on the first batch)."""
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise DataError(f"the data has labels up to {int(y.max())} but the model has {classes} outputs")
