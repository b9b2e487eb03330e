"""Result Datasets: provenance attributes and atomic netCDF I/O.

Every Dataset the toolkit writes carries ``landscape_version``, ``torch_version`` and, per
checkpoint involved, its path, sha256 prefix and meta (as JSON text, since netCDF attributes must
be strings or numbers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from training import __version__
from training.checkpoint import Checkpoint
from training.errors import UserError
from training.fileio import atomic_netcdf


def provenance(**checkpoints: Checkpoint) -> dict[str, Any]:
    """Attrs for ``{label: checkpoint}``: ``<label>_path``, ``<label>_sha256`` (16 hex) and ``<label>_meta``."""
    attrs: dict[str, Any] = {"landscape_version": __version__, "torch_version": str(torch.__version__)}
    for label, ckpt in checkpoints.items():
        attrs[f"{label}_path"] = str(ckpt.path) if ckpt.path else ""
        attrs[f"{label}_sha256"] = (ckpt.sha256 or "")[:16]
        attrs[f"{label}_meta"] = json.dumps(ckpt.meta, sort_keys=True, default=str)
    return attrs


def save_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF4 atomically (temporary file, then rename). Returns the path."""
    return atomic_netcdf(ds, path)


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a netCDF result fully into memory (the file is closed on return)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such result file: {path}")
    try:
        return xr.load_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable netCDF file ({exc})") from exc
