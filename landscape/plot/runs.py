"""Figures of training runs: learning-rate schedules, learning curves, the keep ratio per layer, and
accuracy against training FLOPs."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
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


MARKERS = "osD^vPX*ph"


def plot_accuracy_vs_flops(
    table: pd.DataFrame,
    *,
    group: str = "method",
    panel: str | None = None,
    budget: str | None = None,
    dense: str | None = None,
    flops: str = "train_flops",
    accuracy: str = "accuracy",
) -> Figure:
    """Final test accuracy against training FLOPs (log axis), for any set of runs: ``table`` has one row per
    run (:func:`landscape.experiments.runs_table` or an experiment's table) with columns ``group`` (the
    legend: method or recipe), ``flops`` and ``accuracy``, and optionally ``panel`` (one panel per value,
    e.g. the target sparsity) and ``budget`` (points of one group at several budgets, e.g. RigL at 1× and
    2×, joined by a line). Each point is the mean over the runs (seeds) of its group and budget; the band
    (or, for a single budget, the error bars) spans ± one standard deviation of the accuracy over seeds.
    ``dense``: the group value of the dense baseline, drawn as a horizontal line at its mean accuracy and
    a vertical one at its mean FLOPs in every panel."""
    panels = sorted(table[panel].unique()) if panel else [None]
    keys = [group] + ([budget] if budget else [])
    groups = [g for g in dict.fromkeys(table[group]) if g != dense]
    palette = dict(zip(groups, sns.color_palette("colorblind", len(groups)), strict=True))
    baseline = table[table[group] == dense] if dense is not None else table.iloc[0:0]
    with _style():
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
        for ax, value in zip(axes[0], panels, strict=True):
            sub = table if panel is None else table[table[panel] == value]
            stats = (
                sub[sub[group] != dense]
                .groupby(keys)
                .agg(x=(flops, "mean"), y=(accuracy, "mean"), sd=(accuracy, "std"))
            )
            stats = stats.fillna({"sd": 0.0}).reset_index().sort_values("x")
            for name in groups:
                rows = stats[stats[group] == name]
                if rows.empty:
                    continue
                color = palette[name]
                marker = MARKERS[groups.index(name) % len(MARKERS)]  # shape tells close hues apart
                if len(rows) > 1:
                    ax.plot(rows["x"], rows["y"], marker=marker, color=color, label=str(name))
                    ax.fill_between(rows["x"], rows["y"] - rows["sd"], rows["y"] + rows["sd"], color=color, alpha=0.2)
                else:
                    ax.errorbar(
                        rows["x"], rows["y"], yerr=rows["sd"], fmt=marker, color=color, capsize=3, label=str(name)
                    )
            if not baseline.empty:
                base = baseline if panel is None else baseline[baseline[panel] == value]
                base = baseline if base.empty else base  # one dense run serves every panel
                ax.axhline(base[accuracy].mean(), color="0.3", ls="--", lw=1, label=f"{dense} (dense)")
                ax.axvline(base[flops].mean(), color="0.3", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_xlabel("training FLOPs")
            ax.set_ylabel("test accuracy")
            if panel is not None:
                ax.set_title(f"{panel} {value}")
        axes[0][-1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
