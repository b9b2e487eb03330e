"""What a checkpoint must satisfy before it is used: the types of its meta (checked on every read), finite
tensors and a mask that fits the weights (checked before every analysis).

* :func:`check_meta`: every required meta key has the type the format promises (``model`` and
  ``dataset`` non-empty strings, ``model_kwargs`` a mapping, ``num_classes`` a positive integer,
  ``epoch``/``cycle`` non-negative integers, ``config_hash`` a string, ``format_version`` a positive
  integer; ``data_config``, when present, a mapping), so a hand-edited or foreign file is refused with
  one line instead of failing deep inside an analysis.
* :func:`check_finite`: no NaN or infinite value in any floating-point tensor (parameters and buffers).
  A single NaN would turn every point of an interpolation into NaN and every barrier into a number
  that means nothing, so analyses refuse such checkpoints and name the tensor.
* :func:`check_mask`: a mask names only tensors of the state and has their shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from training.errors import CheckpointError
from training.masks import check_mask_fits


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


META_TYPES: dict[str, tuple[str, Any]] = {
    "model": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "model_kwargs": ("a mapping", lambda v: isinstance(v, Mapping)),
    "dataset": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "num_classes": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "epoch": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
    "cycle": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
    "config_hash": ("a string", lambda v: isinstance(v, str)),
    "format_version": ("a positive integer", lambda v: _is_int(v) and v > 0),
}
OPTIONAL_META_TYPES: dict[str, tuple[str, Any]] = {
    "data_config": ("a mapping", lambda v: v is None or isinstance(v, Mapping)),
    "sparsity": ("a number in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
}


def check_meta(meta: Mapping[str, Any], where: str) -> None:
    """Raise :class:`CheckpointError` unless every key of ``meta`` the format names has its type."""
    for table, required in ((META_TYPES, True), (OPTIONAL_META_TYPES, False)):
        for key, (wanted, ok) in table.items():
            if key not in meta:
                if required:
                    raise CheckpointError(f"{where} is not a landscape checkpoint: meta lacks {key}")
                continue
            if not ok(meta[key]):
                raise CheckpointError(f"{where}: meta {key} must be {wanted}, got {meta[key]!r}")
    if not all(isinstance(k, str) for k in meta["model_kwargs"]):
        raise CheckpointError(f"{where}: meta model_kwargs must have string keys")


def non_finite(tensor: torch.Tensor) -> tuple[int, int]:
    """``(NaN count, infinite count)`` of a tensor (0, 0 for integer and bool tensors)."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0, 0
    nan = int(torch.isnan(tensor).sum())
    return nan, int((~torch.isfinite(tensor)).sum()) - nan


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise :class:`CheckpointError` naming the first tensor of ``state`` with a NaN or infinite value."""
    for name, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            nan, inf = non_finite(tensor)
            counts = " and ".join(f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "infinite")) if n)
            bad = sum(1 for t in state.values() if (t.is_floating_point() or t.is_complex()) and not t.isfinite().all())
            others = f" ({bad - 1} more tensors too)" if bad > 1 else ""
            raise CheckpointError(
                f"{where}: tensor {name} has {counts} values{others}; non-finite weights cannot be analysed"
            )


def check_mask(mask: Mapping[str, torch.Tensor], shapes: Mapping[str, Any], where: str) -> None:
    """Raise :class:`CheckpointError` unless every entry of ``mask`` names a tensor of ``shapes``
    (``{name: tensor or shape}``) and has its shape."""
    check_mask_fits(mask, shapes, f"{where}: mask", error=CheckpointError)


def keys_shown(keys: list[str], limit: int = 3) -> str:
    """At most ``limit`` keys, then how many more: a one-line message never lists a whole state dict."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def state_mismatch(target: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """How ``state`` fails to fit a model whose state dict is ``target``, in one line ("" when it fits):
    the counts of missing, unexpected and other-shaped keys, with at most three keys of each kind."""
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in state if k in target and state[k].shape != target[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({keys_shown(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({keys_shown(unexpected)})")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
            f"{tuple(target[k].shape)} in the model)"
        )
    return f"{'; '.join(parts)} of {len(target)} model keys" if parts else ""
