"""Figures of the experiment families in :mod:`landscape.experiments` (the figure notebooks).

Each function takes the tables an ``experiments.run_*`` function returns (one row per run, or per
pair of checkpoints) and draws means over seeds with ±1 sample standard deviation (bands or error
bars; 0 for one seed). Lines and bar groups carry their group as the label, so the drawn values can
be read back from the returned ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from landscape.plot.style import _style, mean_sd

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", ":", "-.")


def _order(values: pd.Series) -> list:
    """Distinct values in order of first appearance."""
    return list(pd.unique(values))


def _band(ax: Axes, x: pd.Series, stats: pd.DataFrame, color) -> None:
    """A ±1 sd band around the ``mean`` column of ``stats``."""
    ax.fill_between(x, stats["mean"] - stats["sd"], stats["mean"] + stats["sd"], color=color, alpha=0.15)


def _rotate_ticks(ax: Axes, degrees: float = 20) -> None:
    """Slanted x tick labels, right-aligned under their ticks."""
    plt.setp(ax.get_xticklabels(), rotation=degrees, ha="right", rotation_mode="anchor")


def _mean_lines(ax: Axes, df: pd.DataFrame, x: str, y: str, hue: str, style: str | None = None) -> None:
    """One line per (hue, style) group: the mean of ``y`` over the rest (seeds) against ``x``, with a
    ±1 sd band. Colour follows ``hue``, line style and marker follow ``style``; labels are
    ``"<hue>"`` or ``"<hue> · <style>"``."""
    hues = _order(df[hue])
    styles = _order(df[style]) if style else [None]
    palette = sns.color_palette("colorblind", len(hues))
    for (i, h), (j, st) in ((a, b) for a in enumerate(hues) for b in enumerate(styles)):
        sub = df[(df[hue] == h) & ((df[style] == st) if style else True)]
        if sub.empty:
            continue
        stats = mean_sd(sub, [x], y)
        label = f"{h}" if style is None else f"{h} · {st}"
        kw = {"color": palette[i], "ls": LINESTYLES[j % len(LINESTYLES)], "marker": MARKERS[j % len(MARKERS)]}
        ax.plot(stats[x], stats["mean"], label=label, lw=1.5, **kw)
        ax.fill_between(
            stats[x], stats["mean"] - stats["sd"], stats["mean"] + stats["sd"], color=palette[i], alpha=0.15
        )


def _bars(ax: Axes, df: pd.DataFrame, x: str, y: str, hue: str | None = None, order: Sequence | None = None) -> None:
    """Bars of the mean of ``y`` per ``x`` value (in ``order``, default first appearance) with ±1 sd
    error bars; with ``hue``, one labelled group of bars per ``hue`` value side by side."""
    order = list(order) if order is not None else _order(df[x])
    hues = _order(df[hue]) if hue else [None]
    palette = sns.color_palette("colorblind", len(hues))
    width = 0.8 / len(hues)
    positions = np.arange(len(order))
    for j, h in enumerate(hues):
        sub = df[df[hue] == h] if hue else df
        stats = mean_sd(sub, [x], y).set_index(x).reindex(order)
        offset = (j - (len(hues) - 1) / 2) * width
        ax.bar(
            positions + offset,
            stats["mean"].to_numpy(),
            width=width,
            yerr=stats["sd"].to_numpy(),
            capsize=2,
            color=palette[j],
            label=str(h) if hue else y,
        )
    ax.set_xticks(positions, [str(v) for v in order])
    ax.set_xlabel(x)


def plot_cyclic_vs_one_cycle(table: pd.DataFrame) -> Figure:
    """Notebook 01: final test accuracy (left) and final training loss (right, nats, log scale) against
    sparsity, one line per (arm, pruning method). ``table``: columns ``mask.method``, ``mask.sparsity``,
    ``arm`` (else ``schedule.name``), ``accuracy``, ``train_loss`` (one row per run)."""
    hue = "arm" if "arm" in table else "schedule.name"
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for ax, y in zip(axes, ("accuracy", "train_loss"), strict=True):
            _mean_lines(ax, table, "mask.sparsity", y, hue=hue, style="mask.method")
            ax.set_xlabel("sparsity")
        axes[0].set_ylabel("test accuracy")
        axes[1].set_ylabel("final train loss (nats)")
        axes[1].set_yscale("log")
        axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_lmc_and_sharpness(barriers: pd.DataFrame, eigenvalues: pd.DataFrame) -> Figure:
    """Notebook 02: the test error barrier (left) and the fraction of kept weights that flip sign
    (middle) for each pair of checkpoints, and the top Hessian eigenvalue at every epoch (right; cycle
    starts and ends marked, cycle boundaries dotted). ``barriers``: columns ``pair``,
    ``error_barrier_test``, ``flip_fraction``; ``eigenvalues``: ``epoch``, ``cycle``, ``when``
    (``start``, ``end`` or empty), ``lambda_max``; one row per seed and pair or epoch."""
    with _style():
        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
        _bars(axes[0], barriers, "pair", "error_barrier_test")
        axes[0].set_ylabel("test error barrier")
        _bars(axes[1], barriers, "pair", "flip_fraction")
        axes[1].set_ylabel("sign flips (fraction of kept weights)")
        for ax in axes[:2]:
            ax.set_xlabel("checkpoints (cycles)")
            _rotate_ticks(ax)
        ax = axes[2]
        stats = mean_sd(eigenvalues, ["epoch"], "lambda_max")
        color = sns.color_palette("colorblind")[0]
        ax.plot(stats["epoch"], stats["mean"], color=color, lw=1.5, label="every epoch")
        ax.fill_between(
            stats["epoch"], stats["mean"] - stats["sd"], stats["mean"] + stats["sd"], color=color, alpha=0.15
        )
        for when, marker in (("start", "^"), ("end", "o")):
            pts = stats[stats["epoch"].isin(eigenvalues.loc[eigenvalues["when"] == when, "epoch"])]
            ax.scatter(pts["epoch"], pts["mean"], marker=marker, zorder=3, label=f"cycle {when}")
        for boundary in eigenvalues.groupby("cycle")["epoch"].max().to_numpy()[:-1]:
            ax.axvline(boundary + 0.5, ls=":", c="grey")
        ax.set_xlabel("epoch")
        ax.set_ylabel("top Hessian eigenvalue")
        ax.legend(frameon=False, fontsize=8)
    return fig


def plot_mask_init_coupling(table: pd.DataFrame, lrr_accuracy: float) -> Figure:
    """Notebook 03: final test accuracy (left, with the LRR ticket's as a dashed line) and sign flips
    against the LRR weights (right) per initialisation, one bar per schedule. ``table``: columns
    ``init``, ``schedule``, ``accuracy``, ``flips_vs_lrr`` (one row per run)."""
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        _bars(axes[0], table, "init", "accuracy", hue="schedule")
        axes[0].axhline(lrr_accuracy, c="k", ls="--", label="LRR")
        axes[0].set_ylim(max(0.0, float(table["accuracy"].min()) - 0.1), 1)
        axes[0].set_ylabel("test accuracy")
        axes[0].legend(frameon=False, fontsize=8)
        _bars(axes[1], table, "init", "flips_vs_lrr", hue="schedule")
        axes[1].set_ylabel("sign flips against the LRR weights")
        axes[1].legend(frameon=False, fontsize=8)
        for ax in axes:
            _rotate_ticks(ax, 15)
    return fig


def plot_sculpting(table: pd.DataFrame) -> Figure:
    """Notebook 04: final test accuracy against training cost (training FLOPs in dense epochs, 3·f_D·N
    each; :func:`landscape.experiments.training_cost`), one panel per target sparsity, one marker per run
    coloured by method. ``table``: columns ``target``, ``method``, ``accuracy``, ``dense_epochs`` (one
    row per run)."""
    targets = _order(table["target"])
    methods = _order(table["method"])
    palette = sns.color_palette("colorblind", len(methods))
    with _style():
        fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 3.8), squeeze=False)
        for ax, target in zip(axes[0], targets, strict=True):
            sub = table[table["target"] == target]
            for i, method in enumerate(methods):
                rows = sub[sub["method"] == method]
                ax.scatter(
                    rows["dense_epochs"],
                    rows["accuracy"],
                    s=50,
                    color=palette[i],
                    marker=MARKERS[i % len(MARKERS)],
                    label=method,
                )
            ax.set_title(f"sparsity {target}")
            ax.set_xlabel("training FLOPs (dense epochs)")
            ax.set_ylabel("test accuracy")
        axes[0][-1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_sanity_checks(checks: pd.DataFrame, tickets: pd.DataFrame) -> Figure:
    """Notebook 05: final test accuracy of each pruning method under each sanity check (left) and of
    each ticket (right; one bar per sparsity when ``tickets`` has several in its ``sparsity`` column).
    ``checks``: columns ``method``, ``check``, ``accuracy``; ``tickets``: ``ticket``, ``accuracy``
    (one row per run)."""
    several = "sparsity" in tickets and tickets["sparsity"].nunique() > 1
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
        _bars(axes[0], checks, "method", "accuracy", hue="check")
        axes[0].set_ylim(max(0.0, float(checks["accuracy"].min()) - 0.1), 1)
        axes[0].legend(frameon=False, fontsize=7)
        _bars(axes[1], tickets, "ticket", "accuracy", hue="sparsity" if several else None)
        if several:
            axes[1].legend(frameon=False, fontsize=7, title="sparsity", title_fontsize=7)
        _rotate_ticks(axes[1])
        axes[1].set_ylim(max(0.0, float(tickets["accuracy"].min()) - 0.1), 1)
        for ax in axes:
            ax.set_ylabel("test accuracy")
    return fig
