"""The cache of :func:`landscape.analysis.analyze`: one netCDF file per piece, named by a key.

A piece is ``<run>/analysis/<kind>-<key>.nc``; the key hashes the checkpoint files' sha256, the
analysis options and the toolkit version, so any change recomputes. An unreadable entry (truncated,
foreign) is recomputed and replaced: every entry carries its own kind and key in its attrs
(``analysis_piece``, ``analysis_key``), and a file without them, or with another's, is not used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr

from landscape.results import load_dataset, save_dataset
from training import __version__
from training.errors import UserError


def cache_key(kind: str, files: list[Path], options: dict[str, Any], hashes: dict[Path, str]) -> str:
    payload = json.dumps(
        {"kind": kind, "files": [hashes[f] for f in files], "options": options, "version": __version__}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class AnalysisCache:
    """Cached pieces of one run folder; counts hits and misses."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.dir = run_dir / "analysis"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def read(self, kind: str, key: str) -> xr.Dataset | None:
        """The cached piece ``kind``/``key``, or ``None`` when it is absent, unreadable, or not that piece."""
        path = self.dir / f"{kind}-{key}.nc"
        if not (self.enabled and path.exists()):
            return None
        try:
            ds = load_dataset(path)
        except UserError:
            return None  # truncated or not netCDF: recomputed
        if ds.attrs.get("analysis_piece") != kind or ds.attrs.get("analysis_key") != key:
            return None  # another file under this name (copied, foreign, from an older toolkit): recomputed
        return ds

    def write(self, kind: str, key: str, ds: xr.Dataset) -> None:
        """Store ``ds`` as piece ``kind``/``key`` (atomically, stamped with both)."""
        if self.enabled:
            stamped = ds.copy()
            stamped.attrs.update(analysis_piece=kind, analysis_key=key)
            save_dataset(stamped, self.dir / f"{kind}-{key}.nc")

    def get(self, kind: str, key: str, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
        """The cached piece, else ``compute()`` (stored); hits and misses are counted."""
        ds = self.read(kind, key)
        if ds is not None:
            self.hits += 1
            return ds
        ds = compute()
        self.misses += 1
        self.write(kind, key, ds)
        return ds
