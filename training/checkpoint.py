"""The checkpoint format, a contract other tools rely on.

A checkpoint is one ``.pt`` file that ``torch.load(path, weights_only=True)`` reads as a dict:

* ``model``: the full ``state_dict()`` (parameters and buffers); pruned entries are exact zeros.
* ``mask``: ``{parameter name: bool tensor}`` for every prunable parameter.
* ``meta``: a JSON-compatible dict with at least ``model``, ``model_kwargs``, ``dataset``,
  ``num_classes``, ``epoch`` (epochs trained in total), ``cycle`` (cycles completed), ``config_hash``
  and ``format_version``.

Resume files (``resume.pt``) use the same reader but carry ``optimizer``, ``rng`` and ``progress``
entries too. Writes are atomic; reads never unpickle code.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.errors import CheckpointError
from training.fileio import atomic_path

FORMAT_VERSION = 1
REQUIRED_META = (
    "model",
    "model_kwargs",
    "dataset",
    "num_classes",
    "epoch",
    "cycle",
    "config_hash",
    "format_version",
)


def save_checkpoint(
    path: str | os.PathLike,
    model_state: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    **extra: Any,
) -> Path:
    """Atomically write a checkpoint; tensors are moved to the CPU first. Returns the path."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    payload = {
        "model": {k: v.detach().cpu().clone() for k, v in model_state.items()},
        "mask": {k: v.detach().cpu().to(torch.bool) for k, v in mask.items()},
        # A JSON round trip enforces the contract that meta is JSON-compatible (e.g. TorchVersion -> str).
        "meta": json.loads(json.dumps(dict(meta), default=str)),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint dict with ``weights_only=True``.

    Raises :class:`CheckpointError` with a one-line reason for a missing path, a folder, a file that is
    not a torch file, a truncated file, a file that would need to unpickle code, or a dict that does
    not follow the format.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any GLOBAL (a class or function reference) it does not allow-list
        detail = next((ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln), "")
        if detail:
            raise CheckpointError(
                f"refusing to load {path}: it contains pickled objects that safe (weights_only) loading "
                f"does not allow - {detail}"
            ) from exc
        raise CheckpointError(f"{path} is not a torch checkpoint (unreadable pickle)") from exc
    except Exception as exc:  # torch raises many types (BadZipFile, EOFError, KeyError, RuntimeError, ...)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is truncated, corrupted or not a torch checkpoint ({msg})") from exc
    if not isinstance(obj, dict) or not {"model", "mask", "meta"} <= set(obj):
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a landscape checkpoint: expected keys model, mask, meta; found {keys}")
    meta = obj["meta"]
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not a landscape checkpoint: meta is not a dict")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path} is not a landscape checkpoint: meta lacks {', '.join(missing)}")
    if meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {meta['format_version']}; this landscape reads up to {FORMAT_VERSION}"
        )
    state, mask = obj["model"], obj["mask"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'model' is not a state dict of tensors")
    if not isinstance(mask, dict) or not all(
        isinstance(v, torch.Tensor) and v.dtype == torch.bool for v in mask.values()
    ):
        raise CheckpointError(f"{path}: 'mask' is not a dict of bool tensors")
    for name, m in mask.items():
        if name not in state:
            raise CheckpointError(f"{path}: mask entry {name} has no parameter in the state dict")
        if m.shape != state[name].shape:
            raise CheckpointError(
                f"{path}: mask {name} has shape {tuple(m.shape)} but the weight has {tuple(state[name].shape)}"
            )
    return obj
