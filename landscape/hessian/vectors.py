"""The Ritz-vector file written beside a spectrum Dataset (``<out>.vectors.pt``).

A ``torch.save`` of plain dicts of tensors, numbers and strings (loadable with ``weights_only=True``, so
loading never runs pickled code), written atomically::

    {"format": "landscape-ritz-vectors", "version": 1, "operator": ..., "which": ..., "residual": ...,
     "groups": {label: {"eigenvalue": (k,) float64, "residual": (k,) float64,
                        "vectors": {parameter name: (k, *parameter shape)}}}}

Each vector is a unit vector on the operator's subspace written as full parameter-shaped tensors,
zeros off the subspace (pruned entries, and parameters outside the group). ``residual`` is ‖Av − θv‖ of
each: computed explicitly (top-level ``"residual": "explicit"``) or the method's own (``"method"``).
Without parameter groups the single group is labelled ``"all"``. A payload can warm-start a later
computation (``hessian_eigenvalues(..., start=payload)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import safe_torch_load
from training.errors import CheckpointError, UserError
from training.fileio import atomic_path

FORMAT = "landscape-ritz-vectors"


def save_ritz_vectors(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (see the module docstring) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": 1, **payload}, tmp)


def load_ritz_vectors(path: str | os.PathLike) -> dict[str, Any]:
    """Read a Ritz-vector file (tensors on the CPU); a file of another kind is a :class:`UserError`."""
    try:  # the toolkit's safe loader: one line naming what it refused, never PyTorch's weights_only advice
        payload = safe_torch_load(Path(path))
    except CheckpointError as exc:
        raise UserError(f"cannot read Ritz vectors: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a Ritz-vector file")
    if payload.get("version") != 1:
        raise UserError(f"{path} is a Ritz-vector file of version {payload.get('version')!r}; this landscape reads 1")
    if not isinstance(payload.get("groups"), dict) or not payload["groups"]:
        raise UserError(f"{path} holds no groups of Ritz vectors")
    return payload
