"""Figures of the reproduction's claim groups (``landscape reproduce``): the paired effect of every
comparison with its 95% interval, the training-loss curves of cyclic runs, and barriers by kind of pair.

``claims`` are the dictionaries of :meth:`landscape.experiments.claims.ClaimResult.as_dict` (keys
``id``, ``label``, ``metric``, ``direction``, ``effect``, ``ci_low``, ``ci_high``, ``n``, ``verdict``).
Effects on accuracy and error are drawn in percentage points, losses in nats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from landscape.plot.style import _style

VERDICT_COLORS = {
    "reproduces": "#009E73",
    "contradicts": "#D55E00",
    "inconclusive": "#7F7F7F",
    "differs": "#0072B2",
    "no difference detected": "#BBBBBB",
}


def metric_scale(metric: str) -> tuple[float, str]:
    """The factor and unit effects on ``metric`` are shown in: percentage points for accuracies and
    errors (fractions), nats for losses."""
    if "loss" in metric:
        return 1.0, "nats"
    if metric.startswith(("lambda", "trace")):
        return 1.0, "eigenvalue units"
    if "flops" in metric:
        return 1.0, "FLOPs"
    if metric == "slope":
        return 100.0, "percentage points per decade of density"
    return 100.0, "percentage points"


def draw_effects(ax: Axes, claims: Sequence[Mapping], metric: str) -> None:
    """One row per comparison on ``metric``: the mean paired effect a − b (dot) and its 95% interval
    (bar), coloured by verdict, with the zero line; the paper's side is marked by an arrow."""
    rows = [c for c in claims if c["metric"] == metric]
    scale, unit = metric_scale(metric)
    y = np.arange(len(rows))[::-1]
    for yi, c in zip(y, rows, strict=True):
        color = VERDICT_COLORS.get(c["verdict"], "k")
        effect = np.nan if c["effect"] is None else c["effect"] * scale
        if c["ci_low"] is not None and c["ci_high"] is not None:
            ax.plot([c["ci_low"] * scale, c["ci_high"] * scale], [yi, yi], color=color, lw=2.5)
        ax.plot([effect], [yi], "o", color=color, ms=6)
        side = {1: "→", -1: "←"}.get(c["direction"], "↔")
        ax.annotate(f"{side} n={c['n']}", (1.0, yi), xycoords=("axes fraction", "data"), fontsize=7, va="center")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(y, [f"{c['id']}: {c['label']}" for c in rows], fontsize=8)
    ax.set_xlabel(f"{metric}: a − b ({unit})")
    shown = {c["verdict"] for c in rows}
    handles = [
        plt.Line2D([], [], color=col, marker="o", lw=2.5, label=v) for v, col in VERDICT_COLORS.items() if v in shown
    ]
    ax.legend(handles=handles, frameon=False, fontsize=7, loc="lower right")


def draw_cycle_losses(ax: Axes, curves: pd.DataFrame, title: str) -> None:
    """The epoch-mean training loss (nats, log scale) against epoch, one line per seed, with the
    training-set loss at the end of each cycle (diamonds) and the restarts dotted. ``curves``: columns
    ``seed``, ``global_epoch``, ``cycle``, ``epoch``, ``train_loss``, ``train_set_loss``."""
    seeds = list(pd.unique(curves["seed"]))
    palette = sns.color_palette("colorblind", len(seeds))
    for color, seed in zip(palette, seeds, strict=True):
        run = curves[curves["seed"] == seed].sort_values("global_epoch")
        ax.plot(run["global_epoch"], run["train_loss"], color=color, lw=1.2, label=f"seed {seed}")
        ends = run[run["epoch"] == run["epoch"].max()]
        ax.plot(ends["global_epoch"], ends["train_set_loss"], "D", color=color, ms=4)
    per_cycle = int(curves["epoch"].max())
    for boundary in range(per_cycle, int(curves["global_epoch"].max()), per_cycle):
        ax.axvline(boundary + 0.5, color="grey", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (nats)")
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=7, title="◆ training-set loss", title_fontsize=7)


def draw_barriers(ax: Axes, barriers: pd.DataFrame) -> None:
    """Mean test error barrier (percentage points, ±1 sd) per kind of pair under both definitions."""
    kinds = list(pd.unique(barriers["kind"]))
    width = 0.38
    for j, (column, label) in enumerate((("error_barrier", "Frankle et al."), ("error_barrier_chord", "chord"))):
        stats = barriers.groupby("kind", sort=False)[column].agg(["mean", "std"]).reindex(kinds).fillna(0.0)
        ax.bar(
            np.arange(len(kinds)) + (j - 0.5) * width,
            stats["mean"] * 100,
            width=width,
            yerr=stats["std"] * 100,
            capsize=2,
            label=label,
            color=sns.color_palette("colorblind")[j],
        )
    ax.axhline(2.0, color="k", ls="--", lw=0.8, label="connected below 2 pp")
    ax.set_xticks(np.arange(len(kinds)), kinds, fontsize=8)
    ax.set_ylabel("test error barrier (pp)")
    ax.legend(frameon=False, fontsize=7)


def plot_reproduction(
    claims: Sequence[Mapping],
    *,
    loss_curves: pd.DataFrame | None = None,
    barriers: pd.DataFrame | None = None,
    title: str = "",
) -> Figure:
    """The figure of one claim group: a panel of effects per metric (:func:`draw_effects`), then one
    panel of training-loss curves per pruning method (``loss_curves`` with a ``method`` column,
    :func:`draw_cycle_losses`) or a panel of barriers (:func:`draw_barriers`). Comparisons that were not
    tested (``tested`` false: the tier has no run of an arm) are left out."""
    claims = [c for c in claims if c.get("tested", True)]
    metrics = list(dict.fromkeys(c["metric"] for c in claims)) or ["accuracy"]  # an empty panel if none
    methods = [] if loss_curves is None else list(pd.unique(loss_curves["method"]))
    extra = len(methods) + (barriers is not None)
    heights = [max(1, sum(c["metric"] == m for c in claims)) for m in metrics]
    with _style():
        fig = plt.figure(figsize=(7 + 5 * extra, 1.2 + 0.45 * sum(heights) + 0.6 * len(metrics)))
        grid = fig.add_gridspec(len(metrics), 1 + extra, height_ratios=heights, width_ratios=[7] + [5] * extra)
        for i, metric in enumerate(metrics):
            draw_effects(fig.add_subplot(grid[i, 0]), claims, metric)
        for j, method in enumerate(methods):
            curves = loss_curves[loss_curves["method"] == method]
            draw_cycle_losses(fig.add_subplot(grid[:, 1 + j]), curves, f"cyclic runs, {method} mask, per epoch")
        if barriers is not None:
            draw_barriers(fig.add_subplot(grid[:, 1 + len(methods)]), barriers)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    return fig
