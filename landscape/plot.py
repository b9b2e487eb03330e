"""Figure functions. Each returns a matplotlib ``Figure`` and never touches global style state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files
import matplotlib.pyplot as plt
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from training.config import ScheduleConfig
from training.fileio import atomic_path
from training.schedules import schedule_curve


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` atomically; the format follows the suffix (``.png``, ``.pdf``). Closes the figure."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_schedules(schedules: Mapping[str, tuple[ScheduleConfig, float]], steps_per_epoch: int = 32) -> Figure:
    """Learning rate against epoch for ``{label: (schedule config, peak lr)}``."""
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(7, 3))
        for label, (cfg, peak) in schedules.items():
            epochs, lrs = zip(*schedule_curve(cfg, peak, steps_per_epoch), strict=True)
            ax.plot(epochs, lrs, label=label, lw=1.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def plot_learning_curves(metrics: Mapping[str, xr.Dataset]) -> Figure:
    """Train loss and test error against global epoch for ``{label: metrics Dataset}``; cycle
    boundaries of multi-cycle runs are marked with dotted lines."""
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        palette = sns.color_palette("colorblind", len(metrics))
        for color, (label, ds) in zip(palette, metrics.items(), strict=True):
            x = ds["global_epoch"].values.ravel()
            for ax, var in zip(axes, ("train_loss", "test_error"), strict=True):
                ax.plot(x, ds[var].values.ravel(), label=label, color=color, lw=1.5)
            if ds.sizes["cycle"] > 1:
                for boundary in x[:: ds.sizes["epoch"]][1:] - 0.5:
                    for ax in axes:
                        ax.axvline(boundary, color=color, ls=":", lw=0.8)
        axes[0].set_ylabel("train loss (nats)")
        axes[0].set_yscale("log")
        axes[1].set_ylabel("test error")
        for ax in axes:
            ax.set_xlabel("epoch")
        axes[1].legend(frameon=False)
    return fig


def plot_interpolation(curves: Mapping[str, xr.Dataset], split: str = "test") -> Figure:
    """Loss and error along α for ``{label: interpolate() Dataset}``, with barriers in the legend."""
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        palette = sns.color_palette("viridis", len(curves))
        for color, (label, ds) in zip(palette, curves.items(), strict=True):
            sel = ds.sel(split=split)
            axes[0].plot(
                ds["alpha"],
                sel["loss"],
                color=color,
                marker=".",
                label=f"{label} (B={float(sel['loss_barrier']):.3f})",
            )
            axes[1].plot(
                ds["alpha"],
                sel["error"],
                color=color,
                marker=".",
                label=f"{label} (B={float(sel['error_barrier']):.3f})",
            )
        axes[0].set_ylabel(f"{split} loss (nats)")
        axes[1].set_ylabel(f"{split} error")
        for ax in axes:
            ax.set_xlabel("α")
            ax.legend(frameon=False, fontsize=8)
    return fig
