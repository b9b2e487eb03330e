"""Plot functions return figures whose content reflects the data."""

import matplotlib
import numpy as np
import torch
import xarray as xr

from landscape.plot import (
    plot_accuracy_vs_sparsity,
    plot_barriers,
    plot_density,
    plot_eigenvalues,
    plot_keep_ratios,
    plot_sign_flip_heatmap,
    plot_surface,
    save_figure,
)

matplotlib.use("Agg")


def test_importing_the_plots_keeps_the_users_backend():
    """Jupyter's inline backend (here: svg, chosen by MPLBACKEND) must survive ``import landscape.plot``."""
    import os
    import subprocess
    import sys

    code = "import landscape.plot, matplotlib; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"


def fake_analysis():
    runs = [f"r{i}" for i in range(4)]
    ds = xr.Dataset(
        {
            "test_error": (
                ("run", "point"),
                np.array([[np.nan, 0.3, 0.2], [np.nan, 0.25, 0.22], [np.nan, 0.4, 0.35], [np.nan, 0.38, 0.33]]),
            ),
            "error_barrier": (("run", "point", "split"), np.random.default_rng(0).random((4, 3, 1))),
            "eigenvalue": (("run", "point", "k"), np.random.default_rng(1).random((4, 3, 1)) * 100),
        },
        coords={
            "run": runs,
            "point": [0, 1, 2],
            "split": ["test"],
            "k": [1],
            "level": (("run", "point"), np.zeros((4, 3), dtype=int)),
            "target_sparsity": ("run", [0.5, 0.5, 0.9, 0.9]),
            "seed": ("run", [0, 1, 0, 1]),
            "schedule": ("run", ["cyclic"] * 4),
            "method": ("run", ["random"] * 4),
        },
    )
    return ds


def test_accuracy_vs_sparsity_uses_final_points(tmp_path):
    fig = plot_accuracy_vs_sparsity(fake_analysis())
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0.5, 0.9])
    np.testing.assert_allclose(line.get_ydata(), [1 - 0.21, 1 - 0.34])  # mean over seeds of the final errors
    save_figure(fig, tmp_path / "acc.pdf")
    assert (tmp_path / "acc.pdf").read_bytes()[:4] == b"%PDF"


def test_barrier_and_eigenvalue_plots_have_one_line_per_run():
    ds = fake_analysis()
    assert len(plot_barriers(ds).axes[0].get_lines()) == 4
    assert len(plot_eigenvalues(ds).axes[0].get_lines()) == 4


def test_heatmap_keep_ratios_density_and_surface():
    flips = xr.Dataset(
        {"flip_fraction": (("cycle", "layer"), np.arange(6).reshape(3, 2) / 10)},
        coords={"cycle": [1, 2, 3], "layer": ["a", "b"]},
    )
    fig = plot_sign_flip_heatmap(flips)
    assert fig.axes[0].get_xlabel() == "cycle" and len(fig.axes[0].texts) == 6
    masks = {"m": {"a": torch.tensor([True, False]), "b": torch.tensor([True, True, True, False])}}
    np.testing.assert_allclose(plot_keep_ratios(masks).axes[0].get_lines()[0].get_ydata(), [0.5, 0.75])
    dens = xr.Dataset({"density": ("t", np.ones(5))}, coords={"t": np.arange(5.0)})
    assert len(plot_density(dens).axes[0].get_lines()) == 1
    surf = xr.Dataset({"loss": (("x", "y"), np.ones((3, 4)))}, coords={"x": [0, 1, 2], "y": [0, 1, 2, 3]})
    assert len(plot_surface(surf).axes) == 3  # contour, colour bar, heat map
    line = xr.Dataset({"loss": ("x", [1.0, 0.5, 1.0])}, coords={"x": [-1.0, 0.0, 1.0]})
    np.testing.assert_allclose(plot_surface(line).axes[0].get_lines()[0].get_ydata(), [1, 0.5, 1])
