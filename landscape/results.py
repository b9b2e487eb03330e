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
    """Attrs for ``{label: checkpoint}``: ``<label>_path``, ``<label>_sha256`` (16 hex), ``<label>_meta``,
    and where it came from (:mod:`landscape.sources`): ``<label>_format`` (``landscape``, ``torch-zip``,
    ``pickle``, ``safetensors`` or ``module``), ``_model_spec``, ``_model_args`` (JSON), ``_mask_source``,
    ``_prefix_stripped`` and ``_zeroed_on_load`` (weights at pruned positions set to zero on load)."""
    attrs: dict[str, Any] = {"landscape_version": __version__, "torch_version": str(torch.__version__)}
    for label, ckpt in checkpoints.items():
        attrs[f"{label}_path"] = str(ckpt.path) if ckpt.path else ""
        attrs[f"{label}_sha256"] = (ckpt.sha256 or "")[:16]
        attrs[f"{label}_meta"] = json.dumps(ckpt.meta, sort_keys=True, default=str)
        source = ckpt.meta.get("source") or {}
        attrs[f"{label}_format"] = str(source.get("format", "landscape"))
        attrs[f"{label}_model_spec"] = str(ckpt.meta.get("model", ""))
        attrs[f"{label}_model_args"] = json.dumps(ckpt.meta.get("model_kwargs") or {}, sort_keys=True, default=str)
        attrs[f"{label}_mask_source"] = str(source.get("mask_source", "landscape checkpoint"))
        attrs[f"{label}_prefix_stripped"] = str(source.get("prefix_stripped", ""))
        attrs[f"{label}_zeroed_on_load"] = int(source.get("zeroed_on_load", 0))
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
