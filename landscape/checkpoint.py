"""Loading checkpoints for analysis, and checking that two of them can be compared."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.checkpoint import read_checkpoint
from training.errors import CheckpointError, UserError
from training.fileio import sha256_file
from training.models import build


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``.model`` (built, weights loaded, eval mode, on CPU), ``.mask``, ``.meta``.

    ``.state`` is the raw state dict as stored (pruned entries exact zeros); ``.path`` and ``.sha256``
    identify the file (both ``None`` for an in-memory checkpoint).
    """

    model: nn.Module
    mask: dict[str, torch.Tensor]
    meta: dict[str, Any]
    state: dict[str, torch.Tensor] = field(repr=False)
    path: Path | None = None
    sha256: str | None = None

    @property
    def architecture(self) -> str:
        """``model`` name plus its keyword arguments, e.g. ``cnn1d(input_shape=[1, 40])``."""
        kwargs = ", ".join(f"{k}={v}" for k, v in sorted(self.meta.get("model_kwargs", {}).items()))
        return f"{self.meta['model']}({kwargs})"


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` and rebuild its model.

    Raises :class:`training.errors.CheckpointError` for a missing, unreadable, unsafe or malformed
    file, or one whose state dict does not fit the architecture named in its meta.
    """
    path = Path(path)
    raw = read_checkpoint(path)
    meta = raw["meta"]
    try:
        model = build(meta["model"], int(meta["num_classes"]), **dict(meta.get("model_kwargs") or {}))
    except UserError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    try:
        result = model.load_state_dict(raw["model"], strict=False)
    except RuntimeError as exc:  # shape mismatches raise even with strict=False
        detail = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc))
        raise CheckpointError(f"{path}: state dict does not match model {meta['model']} ({detail})") from exc
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing {', '.join(result.missing_keys[:3])}")
        if result.unexpected_keys:
            parts.append(f"unexpected {', '.join(result.unexpected_keys[:3])}")
        raise CheckpointError(f"{path}: state dict does not match model {meta['model']} ({'; '.join(parts)})")
    model.eval()
    return Checkpoint(model, dict(raw["mask"]), dict(meta), dict(raw["model"]), path, sha256_file(path))


def as_checkpoint(obj: Checkpoint | str | os.PathLike) -> Checkpoint:
    """Pass a :class:`Checkpoint` through; load a path."""
    return obj if isinstance(obj, Checkpoint) else load_checkpoint(obj)


def check_compatible(a: Checkpoint, b: Checkpoint) -> None:
    """Raise :class:`CheckpointError` unless ``a`` and ``b`` have the same architecture, state-dict
    keys and shapes, and masks over the same parameters with the same shapes."""
    name_a = str(a.path) if a.path else "checkpoint A"
    name_b = str(b.path) if b.path else "checkpoint B"
    if a.meta.get("model") != b.meta.get("model") or a.meta.get("model_kwargs") != b.meta.get("model_kwargs"):
        raise CheckpointError(
            f"checkpoints have different architectures: {name_a} is {a.architecture}, {name_b} is {b.architecture}"
        )
    _same_keys_and_shapes("state dict", a.state, b.state, name_a, name_b)
    _same_keys_and_shapes("mask", a.mask, b.mask, name_a, name_b)


def _same_keys_and_shapes(what: str, ta: dict, tb: dict, name_a: str, name_b: str) -> None:
    if set(ta) != set(tb):
        only = sorted(set(ta) ^ set(tb))
        raise CheckpointError(f"checkpoints have different {what} entries (e.g. {only[0]})")
    for key, tensor in ta.items():
        if tensor.shape != tb[key].shape:
            raise CheckpointError(
                f"checkpoint {what}s differ at {key}: shape {tuple(tensor.shape)} in {name_a}, "
                f"{tuple(tb[key].shape)} in {name_b}"
            )
