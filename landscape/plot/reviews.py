"""Figures of the claim groups added for the papers' reviewers: the cyclic boost against sparsity (every
seed and the mean with its 95% interval) and the per-layer keep ratios of every method against smart
ratios (means over seeds with ± one standard deviation). The accuracy-against-training-FLOPs figure of
the ``budget`` group is :func:`landscape.plot.plot_accuracy_vs_flops`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy import stats

from landscape.plot.style import _style


def plot_boost_vs_sparsity(boosts: pd.DataFrame, slopes: pd.DataFrame | None = None) -> Figure:
    """The paired boost ``d`` = acc(cyclic) − acc(ordinary) in percentage points against sparsity (log
    scale of density: the axis is x = −log10(1 − s), labelled in sparsity): one faint line per seed, the
    mean over seeds with its two-sided 95% t interval, and with ``slopes`` the mean seed-level slope in
    the title. ``boosts``: columns ``seed``, ``sparsity``, ``x``, ``d``."""
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for seed, df in boosts.groupby("seed"):
            df = df.sort_values("x")
            ax.plot(df["x"], 100 * df["d"], color="grey", lw=0.8, alpha=0.6, marker=".", label=f"seed {seed}")
        agg = boosts.groupby("x")["d"].agg(["mean", "std", "count"])
        half = stats.t.ppf(0.975, np.maximum(agg["count"] - 1, 1)) * agg["std"] / np.sqrt(agg["count"])
        ax.errorbar(
            agg.index, 100 * agg["mean"], yerr=100 * half, color="k", marker="o", capsize=3, label="mean, 95% CI"
        )
        ax.axhline(0.0, color="k", lw=0.8, ls=":")
        ticks = sorted(boosts["sparsity"].unique())
        ax.set_xticks(-np.log10(1 - np.asarray(ticks)), [f"{100 * s:g}%" for s in ticks])
        ax.set_xlabel("sparsity (axis: −log10 density)")
        ax.set_ylabel("cyclic − ordinary accuracy (pp)")
        if slopes is not None and len(slopes):
            ax.set_title(f"mean slope {100 * slopes['slope'].mean():+.2f} pp per decade of density", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
        fig.tight_layout()
    return fig


def plot_layer_keep_ratios(layers: pd.DataFrame) -> Figure:
    """Keep ratio per layer (in network order, log scale), one line per method with a ± sd band over
    seeds, one panel per sparsity; smart ratios in black. ``layers``: the ``keep-ratios`` group's layer
    table (``method``, ``sparsity``, ``seed``, ``index``, ``layer``, ``keep_ratio``)."""
    sparsities = sorted(layers["sparsity"].unique())
    methods = list(dict.fromkeys(layers["method"]))
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))
    with _style():
        fig, axes = plt.subplots(1, len(sparsities), figsize=(7 * len(sparsities), 3.8), squeeze=False)
        for ax, s in zip(axes[0], sparsities, strict=True):
            sub = layers[layers["sparsity"] == s]
            for method in methods:
                agg = sub[sub["method"] == method].groupby("index")["keep_ratio"].agg(["mean", "std"]).fillna(0.0)
                if agg.empty:
                    continue
                color = "k" if method == "smart ratio" else palette[method]
                ax.plot(agg.index, agg["mean"], color=color, marker=".", lw=1.2, label=method)
                ax.fill_between(agg.index, agg["mean"] - agg["std"], agg["mean"] + agg["std"], color=color, alpha=0.15)
            names = sub.drop_duplicates("index").sort_values("index")["layer"]
            ax.set_xticks(np.arange(len(names)), list(names), rotation=90, fontsize=5)
            ax.set_yscale("log")
            ax.set_ylabel("keep ratio")
            ax.set_title(f"{100 * s:g}% sparsity", fontsize=9)
            ax.legend(frameon=False, fontsize=7)
        fig.tight_layout()
    return fig
