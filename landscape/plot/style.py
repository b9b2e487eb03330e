"""The one figure style, saving figures, and the aggregation the figures share.

Every figure function of :mod:`landscape.plot` returns a matplotlib ``Figure`` and never touches
global style state: it draws inside :func:`_style`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt  # no backend is forced: Jupyter keeps inline figures, headless runs get Agg
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from training.fileio import atomic_path


def _style():
    """The one seaborn style every figure uses (applied as a context, never globally)."""
    return sns.axes_style("whitegrid")


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` atomically; the format follows the suffix (``.png``, ``.pdf``). Closes the figure."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def mean_sd(df: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean and sample standard deviation (0 for a single row) of ``value`` per group of ``by``, as
    columns ``mean`` and ``sd`` beside the ``by`` columns, in sorted group order."""
    stats = df.groupby(list(by))[value].agg(["mean", "std"]).reset_index()
    return stats.rename(columns={"std": "sd"}).fillna({"sd": 0.0})
