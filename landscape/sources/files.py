"""Reading a weights file safely: the format is sniffed from the file's bytes, never its extension.

Formats (first bytes):

* ``PK\\x03\\x04``: a zip. ``torch.save``'s format, unless it holds a ``code/`` folder or
  ``constants.pkl``, which make it a TorchScript archive: refused (loading one runs its code).
* ``\\x80``: a pickle (``torch.save``'s legacy format, or a plain pickle).
* an 8-byte little-endian header length, then ``{``: safetensors (read with ``safetensors.torch``).

Torch files are read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which
refuses every global it does not allow. One class is allowed besides: ``argparse.Namespace``, which
torchvision's reference training scripts (and timm's) store as ``args``; it holds only options, and
we never read it. Anything else refused is named in one line (:func:`~training.checkpoint.safe_torch_load`); nothing is
ever unpickled with code execution, and PyTorch's advice to pass ``weights_only=False`` is never shown.
"""

from __future__ import annotations

import argparse
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import safe_torch_load
from training.errors import CheckpointError

SAFE_EXTRA_GLOBALS = (argparse.Namespace,)


def sniff(path: Path) -> str:
    """The file's format from its bytes: ``torch-zip``, ``torchscript``, ``pickle``, ``safetensors``.

    Raises :class:`CheckpointError` for a missing path, a folder, an empty file or unknown bytes."""
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    size = path.stat().st_size
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"{path} is truncated, corrupted or not a torch checkpoint ({exc})") from exc
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        return "torch-zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    shown = head[:8].hex() if head else "an empty file"
    raise CheckpointError(f"{path} is not a torch checkpoint or safetensors file (unknown format, first bytes {shown})")


def read_file(path: str | Path) -> tuple[Any, str, dict[str, str]]:
    """``(object, format, metadata)`` of a weights file: the loaded object (a dict for every format
    read here), the sniffed format, and safetensors' string metadata (empty for torch files)."""
    path = Path(path)
    kind = sniff(path)
    if kind == "torchscript":
        raise CheckpointError(
            f"{path} is a TorchScript archive; loading one runs its code, so it is refused: save the model's "
            "state_dict() with torch.save instead"
        )
    if kind == "safetensors":
        return _read_safetensors(path), kind, _read_safetensors_meta(path)
    return safe_torch_load(path, allowed=SAFE_EXTRA_GLOBALS), kind, {}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise CheckpointError(f"{path} is a safetensors file; install safetensors to read it") from exc
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated or malformed files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is a truncated or malformed safetensors file ({msg})") from exc


def _read_safetensors_meta(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (a str → str dict), read as JSON without the tensors."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}
