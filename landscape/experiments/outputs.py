"""Where the notebooks read runs and write figures and summaries, and how they write them."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from training.fileio import atomic_path, atomic_write_text

FIGURE_FORMATS = ("png", "pdf")


def figure_dir() -> Path:
    """Where notebooks write figures and summaries: ``$LANDSCAPE_FIGURES`` or ``../figures`` (from
    ``notebooks/``). Created if missing."""
    path = Path(os.environ.get("LANDSCAPE_FIGURES", "../figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Parent folder of the notebooks' run folders: ``$LANDSCAPE_RUNS`` or ``../runs/notebooks``.

    The path is used as given, not resolved: notebook 03's coupling runs name their LRR ticket by a
    path below it, and that path enters their config hash."""
    return Path(os.environ.get("LANDSCAPE_RUNS", "../runs/notebooks"))


def save_figure(fig: Figure, name: str, folder: str | os.PathLike | None = None) -> list[Path]:
    """Write ``fig`` as ``<folder>/<name>.png`` (150 dpi) and ``.pdf`` atomically, then close it.
    ``folder`` defaults to :func:`figure_dir`. The PDF carries no creation date, so an unchanged
    figure gives an unchanged file."""
    folder = Path(folder) if folder is not None else figure_dir()
    paths = []
    for fmt in FIGURE_FORMATS:
        path = folder / f"{name}.{fmt}"
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def write_summary(prefix: str, summary: dict[str, Any], folder: str | os.PathLike | None = None) -> Path:
    """Write ``summary`` as ``<folder>/<prefix>_summary.json`` (indented JSON, atomically); ``folder``
    defaults to :func:`figure_dir`. Non-finite numbers (a standard deviation over one seed) are
    written as ``null``, so the file is strict JSON."""
    folder = Path(folder) if folder is not None else figure_dir()
    path = folder / f"{prefix}_summary.json"
    atomic_write_text(path, json.dumps(_finite_or_none(summary), indent=1, allow_nan=False))
    return path


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
