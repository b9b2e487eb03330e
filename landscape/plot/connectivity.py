"""Figures of connectivity beyond the straight line: paths between two checkpoints (straight, aligned,
along a trained curve) and notebook 07's barriers per kind of pair and path."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from landscape.plot.experiments import _bars, _order, _rotate_ticks
from landscape.plot.style import _style, mean_sd


def _position(ds: xr.Dataset) -> tuple[str, xr.DataArray]:
    return ("α", ds["alpha"]) if "alpha" in ds.coords else ("t", ds["t"])


def plot_paths(paths: Mapping[str, xr.Dataset], split: str = "test") -> Figure:
    """Loss (left) and error (right) along each path of ``{label: Dataset}``: ``interpolate`` Datasets
    (against α; aligned or not) and ``curve`` Datasets (against t) side by side, e.g. aligned against
    unaligned lines, or a trained curve against the straight line. The legend gives each path's
    barriers under both definitions (endpoint-mean / chord)."""
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        palette = sns.color_palette("colorblind", len(paths))
        names = set()
        for color, (label, ds) in zip(palette, paths.items(), strict=True):
            name, x = _position(ds)
            names.add(name)
            sel = ds.sel(split=split)
            for ax, metric in zip(axes, ("loss", "error"), strict=True):
                b1, b2 = float(sel[f"{metric}_barrier_endpoint_mean"]), float(sel[f"{metric}_barrier_chord"])
                ax.plot(x, sel[metric], color=color, marker=".", label=f"{label} (B={b1:.3f} / {b2:.3f})")
        axes[0].set_ylabel(f"{split} loss (nats)")
        axes[1].set_ylabel(f"{split} error")
        for ax in axes:
            ax.set_xlabel(" or ".join(sorted(names)))
            ax.legend(frameon=False, fontsize=8, title="barrier: endpoint-mean / chord", title_fontsize=8)
    return fig


def plot_alignment_and_curves(barriers: pd.DataFrame, profiles: pd.DataFrame) -> Figure:
    """Notebook 07: the test error barrier per kind of pair, one bar per path (left; mean ± sd over
    pairs), and the test error along each path for the first pair of each kind (right panels; mean
    over seeds). ``barriers``: columns ``kind``, ``path``, ``error_barrier_test``; ``profiles``:
    ``kind``, ``pair``, ``path``, ``x`` (α or t), ``error``."""
    kinds = _order(barriers["kind"])
    paths = _order(barriers["path"])
    palette = dict(zip(paths, sns.color_palette("colorblind", len(paths)), strict=True))
    with _style():
        fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(5 + 3.6 * len(kinds), 3.8), squeeze=False)
        axes = axes[0]
        _bars(axes[0], barriers, "kind", "error_barrier_test", hue="path", order=kinds)
        axes[0].set_ylabel("test error barrier")
        axes[0].set_xlabel("")
        axes[0].legend(frameon=False, fontsize=8)
        _rotate_ticks(axes[0], 15)
        for ax, kind in zip(axes[1:], kinds, strict=True):
            sub = profiles[profiles["kind"] == kind]
            first = _order(sub["pair"])[0]
            sub = sub[sub["pair"] == first]
            for path in paths:
                stats = mean_sd(sub[sub["path"] == path], ["x"], "error")
                ax.plot(stats["x"], stats["mean"], marker=".", color=palette[path], label=path)
            ax.set_title(kind if first == kind else f"{kind}: {first}", fontsize=9)
            ax.set_xlabel("α (lines) or t (curve)")
            ax.set_ylabel("test error")
    return fig
