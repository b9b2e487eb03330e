"""Phases and figures of the claim groups added for the reviewers (see :mod:`landscape.experiments.reproduce`):
which runs each trains, in which order, and the figures beside its effects panel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from matplotlib.figure import Figure

from landscape.experiments import architectures, boost, budget, coupling, keep_ratios, sharpness
from landscape.experiments.phases import Phase, coupling_phases, seed_label
from landscape.experiments.review_settings import COUPLING_ORDINARY_INITS
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult


def coupling_ordinary_tier(tier: Tier) -> Tier:
    """The tier with P1-6's coupling settings restricted to the random and warmup initialisations, each
    under both schedules (cyclic C×E and one cycle of C·E epochs)."""
    return replace(
        tier, coupling=replace(tier.coupling, inits=COUPLING_ORDINARY_INITS, schedules=("cyclic", "one-cycle"))
    )


def coupling_ordinary_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    """P1-6's tickets, then the random and warmup arms under both schedules."""
    return coupling_phases(coupling_ordinary_tier(tier), runs)


def run_coupling_ordinary(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """:func:`landscape.experiments.coupling.run_mask_init_coupling` on :func:`coupling_ordinary_tier`."""
    return coupling.run_mask_init_coupling(coupling_ordinary_tier(tier), runs_dir, quiet=quiet)


def boost_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(f"{lab['arm']} erk@{lab['sparsity']}", c), c) for lab, c in boost.boost_configs(tier)]


def sharpness_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [
        (seed_label(f"{arm} {c.mask.method}@{c.mask.sparsity}", c), c) for arm, c in sharpness.sharpness_configs(tier)
    ]


def budget_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [
        (seed_label(f"{budget.arm_name(lab['method'], lab['budget'])} @{lab['sparsity']}", c), c)
        for lab, c in budget.budget_configs(tier)
    ]


def keep_ratio_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(f"{lab['method']} @{lab['sparsity']}", c), c) for lab, c in keep_ratios.trained_configs(tier)]


def architecture_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [
        (seed_label(f"{lab['model']} {lab['arm']} {lab['method']}", c), c)
        for lab, c in architectures.architecture_configs(tier)
    ]


def group_figures(group: str, result: ExperimentResult) -> dict[str, Figure]:
    """``{file stem suffix: figure}`` drawn beside a group's effects figure (``<group>-<suffix>``)."""
    if group == "budget":
        from landscape.plot import plot_accuracy_vs_flops

        table = budget.budget_figure_table(result.table)
        fig = plot_accuracy_vs_flops(table, group="method", panel="sparsity", budget="budget", dense="dense")
        return {"accuracy-vs-flops": fig}
    if group == "boost-vs-sparsity":
        from landscape.plot.reviews import plot_boost_vs_sparsity

        return {"boost": plot_boost_vs_sparsity(result.tables["boosts"], result.tables["slopes"])}
    if group == "keep-ratios":
        from landscape.plot.reviews import plot_layer_keep_ratios

        return {"layers": plot_layer_keep_ratios(result.tables["layers"])}
    return {}
