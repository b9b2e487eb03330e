"""Plot functions return figures whose content reflects the data."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from matplotlib.container import BarContainer

from landscape.plot import (
    plot_accuracy_vs_sparsity,
    plot_barriers,
    plot_cyclic_vs_one_cycle,
    plot_density,
    plot_eigenvalues,
    plot_keep_ratios,
    plot_lmc_and_sharpness,
    plot_mask_init_coupling,
    plot_sanity_checks,
    plot_sculpting,
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


# ------------------------------------------------------------------ figures of the experiment notebooks


def _bars(ax, label=None):
    """Heights of the bar group called ``label`` (the only group when None)."""
    groups = [c for c in ax.containers if isinstance(c, BarContainer)]
    group = groups[0] if label is None else next(c for c in groups if c.get_label() == label)
    return [p.get_height() for p in group.patches]


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_cyclic_vs_one_cycle_draws_means_over_seeds():
    rows = [
        {
            "mask.method": m,
            "mask.sparsity": s,
            "seed": seed,
            "schedule.name": sched,
            "accuracy": acc,
            "train_loss": loss,
        }
        for m, s, seed, sched, acc, loss in [
            ("random", 0.5, 0, "cyclic", 0.8, 0.1),
            ("random", 0.5, 1, "cyclic", 0.6, 0.3),
            ("random", 0.9, 0, "cyclic", 0.5, 0.4),
            ("random", 0.9, 1, "cyclic", 0.3, 0.6),
            ("random", 0.5, 0, "one-cycle", 0.7, 0.05),
            ("random", 0.5, 1, "one-cycle", 0.7, 0.05),
            ("random", 0.9, 0, "one-cycle", 0.4, 0.2),
            ("random", 0.9, 1, "one-cycle", 0.2, 0.2),
            ("snip", 0.5, 0, "cyclic", 0.9, 0.01),
            ("snip", 0.9, 0, "cyclic", 0.85, 0.02),
        ]
    ]
    fig = plot_cyclic_vs_one_cycle(pd.DataFrame(rows))
    acc, loss = fig.axes
    line = _line(acc, "cyclic · random")
    np.testing.assert_allclose(line.get_xdata(), [0.5, 0.9])
    np.testing.assert_allclose(line.get_ydata(), [0.7, 0.4])
    np.testing.assert_allclose(_line(acc, "one-cycle · random").get_ydata(), [0.7, 0.3])
    np.testing.assert_allclose(_line(acc, "cyclic · snip").get_ydata(), [0.9, 0.85])
    np.testing.assert_allclose(_line(loss, "cyclic · random").get_ydata(), [0.2, 0.5])
    assert loss.get_yscale() == "log"
    assert len(acc.get_lines()) == 3  # no line for a (schedule, method) without runs


def test_lmc_and_sharpness_draws_barriers_flips_and_eigenvalues():
    barriers = pd.DataFrame(
        [
            {"seed": seed, "pair": pair, "error_barrier_test": b, "flip_fraction": f}
            for seed, pair, b, f in [
                (0, "1→2", 0.04, 0.1),
                (1, "1→2", 0.02, 0.3),
                (0, "2→3", 0.01, 0.05),
                (1, "2→3", 0.01, 0.05),
                (0, "cyclic→one-cycle", 0.1, 0.4),
                (1, "cyclic→one-cycle", 0.2, 0.2),
            ]
        ]
    )
    eig = pd.DataFrame(
        [
            # two cycles of two epochs; seed 1's eigenvalues are seed 0's (10 per epoch) plus 2
            {
                "seed": seed,
                "epoch": e,
                "cycle": (e + 1) // 2,
                "when": "end" if e % 2 == 0 else "start",
                "lambda_max": 10.0 * e + 2 * seed,
            }
            for seed in (0, 1)
            for e in (1, 2, 3, 4)
        ]
    )
    fig = plot_lmc_and_sharpness(barriers, eig)
    barrier_ax, flip_ax, eig_ax = fig.axes
    np.testing.assert_allclose(_bars(barrier_ax), [0.03, 0.01, 0.15])
    assert [t.get_text() for t in barrier_ax.get_xticklabels()] == ["1→2", "2→3", "cyclic→one-cycle"]
    np.testing.assert_allclose(_bars(flip_ax), [0.2, 0.05, 0.3])
    line = _line(eig_ax, "every epoch")
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(line.get_ydata(), [11.0, 21.0, 31.0, 41.0])
    starts = next(c for c in eig_ax.collections if c.get_label() == "cycle start")
    np.testing.assert_allclose(starts.get_offsets(), [[1, 11.0], [3, 31.0]])
    boundaries = [ln.get_xdata()[0] for ln in eig_ax.get_lines() if ln.get_linestyle() == ":"]
    assert boundaries == [2.5]


def test_mask_init_coupling_draws_grouped_bars_and_the_lrr_line():
    table = pd.DataFrame(
        [
            {"init": init, "schedule": sched, "seed": seed, "accuracy": acc, "flips_vs_lrr": flips}
            for init, sched, seed, acc, flips in [
                ("random", "one-cycle", 0, 0.5, 0.5),
                ("random", "one-cycle", 1, 0.7, 0.3),
                ("random", "cyclic", 0, 0.6, 0.4),
                ("random", "cyclic", 1, 0.6, 0.4),
                ("warmup", "one-cycle", 0, 0.9, 0.1),
                ("warmup", "one-cycle", 1, 0.8, 0.1),
                ("warmup", "cyclic", 0, 0.85, 0.2),
                ("warmup", "cyclic", 1, 0.85, 0.0),
            ]
        ]
    )
    fig = plot_mask_init_coupling(table, lrr_accuracy=0.88)
    acc, flips = fig.axes
    np.testing.assert_allclose(_bars(acc, "one-cycle"), [0.6, 0.85])
    np.testing.assert_allclose(_bars(acc, "cyclic"), [0.6, 0.85])
    np.testing.assert_allclose(_bars(flips, "cyclic"), [0.4, 0.1])
    np.testing.assert_allclose(_line(acc, "LRR").get_ydata(), [0.88, 0.88])
    assert acc.get_ylim()[0] == pytest.approx(0.4)


def test_sculpting_places_each_run_at_its_cost_and_accuracy():
    table = pd.DataFrame(
        [
            {"target": t, "method": m, "seed": s, "accuracy": a, "dense_epochs": c}
            for t, m, s, a, c in [
                (0.9, "lrr", 0, 0.8, 6.0),
                (0.9, "lrr", 1, 0.82, 6.0),
                (0.9, "sculpt s0=0.5", 0, 0.7, 4.8),
                (0.95, "lrr", 0, 0.7, 5.9),
                (0.95, "sculpt s0=0.5", 0, 0.55, 4.6),
            ]
        ]
    )
    fig = plot_sculpting(table)
    assert [ax.get_title() for ax in fig.axes] == ["sparsity 0.9", "sparsity 0.95"]
    lrr = next(c for c in fig.axes[0].collections if c.get_label() == "lrr")
    np.testing.assert_allclose(lrr.get_offsets(), [[6.0, 0.8], [6.0, 0.82]])
    sculpt = next(c for c in fig.axes[1].collections if c.get_label() == "sculpt s0=0.5")
    np.testing.assert_allclose(sculpt.get_offsets(), [[4.6, 0.55]])


def test_sanity_checks_draws_methods_by_check_and_tickets():
    checks = pd.DataFrame(
        [
            {"method": m, "check": c, "seed": s, "accuracy": a}
            for m, c, s, a in [
                ("snip", "original", 0, 0.7),
                ("snip", "original", 1, 0.72),
                ("snip", "rearrange", 0, 0.69),
                ("lrr", "original", 0, 0.93),
                ("lrr", "rearrange", 0, 0.7),
            ]
        ]
    )
    tickets = pd.DataFrame(
        [{"ticket": t, "seed": s, "accuracy": a} for t, s, a in [("snip", 0, 0.7), ("snip", 1, 0.8), ("lrr", 0, 0.9)]]
    )
    fig = plot_sanity_checks(checks, tickets)
    check_ax, ticket_ax = fig.axes
    np.testing.assert_allclose(_bars(check_ax, "original"), [0.71, 0.93])
    np.testing.assert_allclose(_bars(check_ax, "rearrange"), [0.69, 0.7])
    np.testing.assert_allclose(_bars(ticket_ax), [0.75, 0.9])
    assert [t.get_text() for t in ticket_ax.get_xticklabels()] == ["snip", "lrr"]


def test_reproduction_figure_draws_each_tested_comparison_with_its_interval():
    from landscape.plot.claims import VERDICT_COLORS, plot_reproduction

    def claim(label, metric="accuracy", tested=True, **v):
        base = {"id": "P1-2", "label": label, "metric": metric, "direction": 1, "n": 5 if tested else 0}
        return base | {"tested": tested, "effect": None, "ci_low": None, "ci_high": None, "verdict": "inconclusive"} | v

    claims = [
        claim("a vs b", effect=0.012, ci_low=0.004, ci_high=0.020, verdict="reproduces"),
        claim("a vs c", tested=False),  # the tier has no run of c: left out
        claim("loss", metric="train_set_loss", effect=0.002, ci_low=0.001, ci_high=0.003, verdict="contradicts"),
    ]
    fig = plot_reproduction(claims, title="t")
    accuracy, loss = fig.axes[:2]
    assert [t.get_text() for t in accuracy.get_yticklabels()] == ["P1-2: a vs b"]
    interval = next(line for line in accuracy.get_lines() if len(line.get_xdata()) == 2)
    assert np.allclose(interval.get_xdata(), [0.4, 2.0]) and interval.get_color() == VERDICT_COLORS["reproduces"]
    assert [t.get_text() for t in loss.get_yticklabels()] == ["P1-2: loss"] and "nats" in loss.get_xlabel()
    matplotlib.pyplot.close(fig)


def test_accuracy_against_training_flops_of_any_set_of_runs(tmp_path):
    """Real runs read from their folders (runs_table), drawn as means over seeds with bands, on a log axis,
    with the dense baseline marked."""
    from landscape.experiments import runs_table
    from landscape.plot import plot_accuracy_vs_flops
    from tests.helpers import tiny_config
    from training.config import replace_dotted
    from training.run import train

    one = {"schedule.name": "one-cycle", "schedule.cycles": 1, "schedule.epochs": 2}
    configs = [replace_dotted(tiny_config(), {**one, "mask.method": "none", "mask.sparsity": 0.0})]
    for seed in (0, 1):
        configs.append(replace_dotted(tiny_config(), {**one, "seed": seed}))  # random PaI at 80%
        configs.append(replace_dotted(tiny_config(), {**one, "seed": seed, "recipe.name": "rigl",
                                                      "recipe.dst_interval": 4}))  # fmt: skip
    for cfg in configs:
        train(cfg, tmp_path, quiet=True)
    table = runs_table([tmp_path])
    assert len(table) == 5 and table["train_flops"].notna().all()
    table["label"] = table["recipe.name"].where(table["mask.sparsity"] > 0, "dense")
    table["budget"] = 1
    fig = plot_accuracy_vs_flops(table, group="label", budget="budget", dense="dense")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    dense = table[table["label"] == "dense"]
    assert any(np.allclose(line.get_ydata(), float(dense["accuracy"].iloc[0])) for line in ax.lines)
    assert any(np.allclose(line.get_xdata(), float(dense["train_flops"].iloc[0])) for line in ax.lines)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["dense (dense)", "pai", "rigl"]
    rigl = table[table["label"] == "rigl"]
    bars = next(c for c in ax.containers if c.get_label() == "rigl")
    x, y = bars.lines[0].get_xydata()[0]
    assert x == pytest.approx(rigl["train_flops"].mean()) and y == pytest.approx(rigl["accuracy"].mean())
    # several budgets of one group: a line through the means and a band of ± one sd over seeds
    rows = [{"label": "rigl", "budget": b, "seed": s, "train_flops": 1e9 * b, "accuracy": a}
            for b, s, a in [(1, 0, 0.8), (1, 1, 0.82), (2, 0, 0.85), (2, 1, 0.87)]]  # fmt: skip
    fig = plot_accuracy_vs_flops(pd.DataFrame(rows), group="label", budget="budget")
    line = next(line for line in fig.axes[0].lines if line.get_label() == "rigl")
    np.testing.assert_allclose(line.get_xydata(), [[1e9, 0.81], [2e9, 0.86]])
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    sd = float(np.std([0.8, 0.82], ddof=1))
    assert band.min() == pytest.approx(0.81 - sd) and band.max() == pytest.approx(0.86 + sd)
