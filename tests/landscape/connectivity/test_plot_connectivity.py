"""Connectivity figures draw the values they are given (read back from the artists), and notebook 07's
summary aggregates its table as documented."""

import numpy as np
import pandas as pd
import xarray as xr

from landscape.connectivity.interpolate import barrier_variables
from landscape.experiments.alignment import _summary
from landscape.plot import plot_alignment_and_curves, plot_paths


def _path(coord: str, error: list[float]) -> xr.Dataset:
    grid = np.linspace(0, 1, len(error))
    err = np.array([error])
    return xr.Dataset(barrier_variables(coord, grid, 2 * err, err), coords={"split": ["test"], coord: grid})


def test_plot_paths_draws_lines_and_curves_with_both_barriers():
    line, curve = _path("alpha", [0.1, 0.5, 0.3]), _path("t", [0.1, 0.2, 0.3])
    fig = plot_paths({"straight": line, "Bezier curve": curve})
    error_axis = fig.axes[1]
    drawn = [ln.get_ydata() for ln in error_axis.get_lines()]
    np.testing.assert_allclose(drawn[0], [0.1, 0.5, 0.3])
    np.testing.assert_allclose(drawn[1], [0.1, 0.2, 0.3])
    labels = [t.get_text() for t in error_axis.get_legend().get_texts()]
    # a monotone path: the endpoint-mean barrier is half the endpoints' difference, the chord barrier 0
    assert labels == ["straight (B=0.300 / 0.300)", "Bezier curve (B=0.100 / 0.000)"]
    assert error_axis.get_xlabel() == "t or α"


def test_plot_alignment_and_curves_bars_are_the_means():
    barriers = pd.DataFrame(
        {
            "kind": ["two seeds"] * 4,
            "pair": ["seed 0↔seed 1"] * 4,
            "path": ["straight", "straight", "Bezier curve", "Bezier curve"],
            "seed": [0, 1, 0, 1],
            "error_barrier_test": [0.2, 0.4, 0.05, 0.07],
        }
    )
    profiles = pd.DataFrame(
        [
            {"kind": "two seeds", "pair": "seed 0↔seed 1", "path": p, "seed": s, "x": x, "error": v + s}
            for p, v in (("straight", 0.5), ("Bezier curve", 0.1))
            for s in (0, 1)
            for x in (0.0, 1.0)
        ]
    )
    fig = plot_alignment_and_curves(barriers, profiles)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == [0.06, 0.3]
    lines = [ln.get_ydata() for ln in fig.axes[1].get_lines()]
    np.testing.assert_allclose(lines[0], [1.0, 1.0])  # mean over the two seeds
    np.testing.assert_allclose(lines[1], [0.6, 0.6])


def test_summary_means_sd_and_connected_fraction():
    table = pd.DataFrame(
        {
            "kind": ["consecutive cycles"] * 2 + ["two seeds"],
            "path": ["straight"] * 3,
            "error_barrier_test": [0.01, 0.03, 0.2],
            "loss_barrier_test": [0.1, 0.3, 1.0],
            "connected_test": [True, False, False],
        }
    )
    out = _summary(table)
    stats = out["barriers"]["consecutive cycles/straight"]
    assert stats["error_barrier_test_mean"] == 0.02 and np.isclose(stats["error_barrier_test_std"], np.sqrt(2e-4))
    assert out["barriers"]["two seeds/straight"]["error_barrier_test_std"] == 0.0  # one pair
    assert out["connected"] == {"consecutive cycles/straight": 0.5, "two seeds/straight": 0.0}
