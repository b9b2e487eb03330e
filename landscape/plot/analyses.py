"""Figures of analyses: interpolation curves, accuracy against sparsity, barriers, Hessian eigenvalues
and densities, sign-flip heat maps and loss surfaces."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from landscape.plot.style import _style


def plot_interpolation(curves: Mapping[str, xr.Dataset], split: str = "test") -> Figure:
    """Loss and error along α for ``{label: interpolate() Dataset}``, with barriers in the legend."""
    with _style():
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


def _final_points(analysis: xr.Dataset, var: str) -> list[dict]:
    rows = []
    for run in analysis["run"].values:
        sel = analysis.sel(run=run)
        values = sel[var].values
        ok = np.where(np.isfinite(values))[0]
        if not len(ok):
            continue
        rows.append(
            {
                "run": str(run),
                "value": float(values[ok[-1]]),
                **{
                    c: sel[c].item()
                    for c in ("method", "target_sparsity", "seed", "schedule", "recipe")
                    if c in sel.coords
                },
            }
        )
    return rows


def plot_accuracy_vs_sparsity(analysis: xr.Dataset, hue: str = "schedule", var: str = "test_error") -> Figure:
    """Final test accuracy (1 − ``var``) against target sparsity, one line per ``hue`` value, with a
    band of ±1 standard deviation over seeds. ``analysis`` is a :func:`landscape.analysis.analyze` Dataset."""
    import pandas as pd

    df = pd.DataFrame(_final_points(analysis, var))
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if not df.empty:
            df["accuracy"] = 1.0 - df["value"]
            sns.lineplot(
                df, x="target_sparsity", y="accuracy", hue=hue if hue in df else None, marker="o", errorbar="sd", ax=ax
            )
        ax.set_xlabel("sparsity")
        ax.set_ylabel("test accuracy")
    return fig


def plot_barriers(analysis: xr.Dataset, split: str = "test", var: str = "error_barrier") -> Figure:
    """Barrier between consecutive checkpoints (or against init) at each point of each run."""
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for run in analysis["run"].values:
            sel = analysis.sel(run=run, split=split)
            ok = sel["level"].values >= 0
            ax.plot(np.arange(ok.sum()), sel[var].values[ok], marker="o", label=str(run))
        ax.set_xlabel("checkpoint (init, cycles, levels in order)")
        ax.set_ylabel(f"{split} {var.replace('_', ' ')}")
        ax.legend(frameon=False, fontsize=7)
    return fig


def plot_eigenvalues(analysis: xr.Dataset, k: int = 1) -> Figure:
    """The k-th Hessian eigenvalue at each checkpoint of each run."""
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for run in analysis["run"].values:
            sel = analysis.sel(run=run, k=k)
            ok = sel["level"].values >= 0
            ax.plot(np.arange(ok.sum()), sel["eigenvalue"].values[ok], marker="o", label=str(run))
        ax.set_xlabel("checkpoint (init, cycles, levels in order)")
        ax.set_ylabel(f"Hessian eigenvalue λ{k}")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.legend(frameon=False, fontsize=7)
    return fig


def plot_checkpoint_eigenvalues(hessian: xr.Dataset, k: int = 1) -> Figure:
    """Bar chart of the k-th eigenvalue over a ``checkpoint`` dimension (e.g. init, cycles, one-cycle)."""
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [str(c) for c in hessian["checkpoint"].values]
        ax.bar(labels, hessian["eigenvalue"].sel(k=k).values, color=sns.color_palette("colorblind")[0])
        ax.set_ylabel(f"top Hessian eigenvalue λ{k}")
        ax.tick_params(axis="x", rotation=30)
    return fig


def plot_density(density: xr.Dataset) -> Figure:
    """Hessian eigenvalue density from :func:`landscape.hessian.hessian_density` (log scale)."""
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.semilogy(density["t"], np.maximum(density["density"], 1e-12))
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
    return fig


def plot_sign_flip_heatmap(flips: xr.Dataset, var: str = "flip_fraction") -> Figure:
    """Heat map of ``var`` over (layer × ``cycle``), e.g. ``xr.concat([overlap(init, c_k) ...], "cycle")``."""
    with _style():
        other = next(d for d in flips[var].dims if d != "layer")
        data = flips[var].transpose("layer", other)
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * data.sizes[other], 0.35 * data.sizes["layer"] + 1.2))
        sns.heatmap(
            data.to_pandas(),
            ax=ax,
            cmap="rocket_r",
            vmin=0,
            annot=data.sizes[other] <= 12,
            fmt=".2f",
            cbar_kws={"label": var.replace("_", " ")},
        )
        ax.set_xlabel(other)
        ax.set_ylabel("layer")
    return fig


def plot_surface(surface: xr.Dataset, var: str = "loss") -> Figure:
    """A 1-D slice as a line, or a 2-D surface as filled contours beside a heat map; a plane's
    checkpoints are marked."""
    with _style():
        if surface[var].ndim == 1:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ax.plot(surface["x"], surface[var], marker=".")
            ax.set_xlabel("x")
            ax.set_ylabel(var)
            return fig
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        z = surface[var].transpose("y", "x").values
        cs = axes[0].contourf(
            surface["x"], surface["y"], np.log(np.maximum(z, 1e-12)) if var == "loss" else z, levels=20, cmap="viridis"
        )
        fig.colorbar(cs, ax=axes[0], label=f"log {var}" if var == "loss" else var)
        axes[1].imshow(
            z,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            extent=[
                float(surface["x"].min()),
                float(surface["x"].max()),
                float(surface["y"].min()),
                float(surface["y"].max()),
            ],
        )
        if "point_x" in surface:
            for ax in axes:
                ax.scatter(surface["point_x"], surface["point_y"], c="white", edgecolors="black", zorder=3)
                for p, px, py in zip(
                    surface["point"].values, surface["point_x"].values, surface["point_y"].values, strict=True
                ):
                    ax.annotate(str(p).upper(), (px, py), xytext=(4, 4), textcoords="offset points", color="white")
        for ax in axes:
            ax.set_xlabel("x")
            ax.set_ylabel("y")
    return fig
