"""Figures of training runs: learning-rate schedules, learning curves and the keep ratio per layer."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from landscape.plot.style import _style
from training.config import ScheduleConfig
from training.schedules import schedule_curve


def plot_schedules(schedules: Mapping[str, tuple[ScheduleConfig, float]], steps_per_epoch: int = 32) -> Figure:
    """Learning rate against epoch for ``{label: (schedule config, peak lr)}``."""
    with _style():
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
    with _style():
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


def plot_keep_ratios(masks: Mapping[str, Mapping]) -> Figure:
    """Keep ratio per layer (in module order) for ``{label: mask}``."""
    with _style():
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for label, mask in masks.items():
            names = list(mask)
            ratios = [float(mask[n].float().mean()) for n in names]
            ax.plot(np.arange(len(names)), ratios, marker="o", label=label)
        ax.set_xticks(np.arange(len(names)), names, rotation=90, fontsize=6)
        ax.set_ylabel("keep ratio")
        ax.set_yscale("log")
        ax.legend(frameon=False, fontsize=8)
    return fig
