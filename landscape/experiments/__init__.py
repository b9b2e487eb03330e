"""The figure notebooks' experiments as library functions: settings per tier, training of the grids,
tables and the summaries the notebooks write.

A notebook is a few calls::

    from landscape import experiments, plot

    tier = experiments.tier_from_env()               # $LANDSCAPE_TIER: quick (default), medium or full
    result = experiments.run_cyclic_vs_one_cycle(tier, experiments.runs_dir())
    experiments.save_figure(plot.plot_cyclic_vs_one_cycle(result.table), "01_cyclic_vs_one_cycle")
    experiments.write_summary("01", result.summary)

Every ``run_*`` function trains its grid in this process (runs are named by config hash, so a
re-run only trains what is missing and reads the rest back) and returns an :class:`ExperimentResult`.

The reproduction protocol (``REPRODUCTION.md``) builds on the same functions: its claims are in
:mod:`~landscape.experiments.protocol`, evaluated by :mod:`~landscape.experiments.claims`; each claim
group is trained and written by :func:`reproduce_group` (``landscape reproduce GROUP``), and
:mod:`~landscape.experiments.report` generates the report's table.
"""

from landscape.experiments.alignment import run_alignment_and_curves
from landscape.experiments.barriers import barrier_configs, run_cycle_barriers
from landscape.experiments.boost import boost_configs, run_boost
from landscape.experiments.budget import budget_configs, budget_figure_table, run_budget
from landscape.experiments.claims import Arm, Claim, ClaimResult, Comparison, evaluate, evaluate_group
from landscape.experiments.connectivity import connectivity_configs, run_lmc_and_sharpness
from landscape.experiments.cost import TrainingCost, training_cost
from landscape.experiments.coupling import coupling_configs, lrr_config, lrr_configs, run_mask_init_coupling
from landscape.experiments.cyclic import cyclic_arms, cyclic_configs, run_cyclic_vs_one_cycle
from landscape.experiments.deviations import full_tier_deviations
from landscape.experiments.keep_ratios import run_keep_ratios
from landscape.experiments.outputs import figure_dir, runs_dir, save_figure, write_summary
from landscape.experiments.parallel import train_parallel
from landscape.experiments.protocol import CLAIMS, GROUPS, claim_table, claims_of
from landscape.experiments.reproduce import reproduce_group
from landscape.experiments.sanity import (
    CHECKS,
    check_configs,
    run_checks,
    run_sanity_checks,
    run_tickets,
    ticket_configs,
)
from landscape.experiments.schedules import schedule_examples
from landscape.experiments.sculpting import run_sculpting, sculpting_configs
from landscape.experiments.settings import TIERS, Tier, get_tier, tier_from_env
from landscape.experiments.sharpness import run_sharpness, sharpness_configs
from landscape.experiments.surfaces import run_loss_surfaces, surface_configs
from landscape.experiments.tables import (
    ExperimentResult,
    final_level,
    final_value,
    results_table,
    run_grid,
    runs_table,
    summarise,
    train_all,
)

__all__ = [
    "CHECKS",
    "CLAIMS",
    "GROUPS",
    "TIERS",
    "Arm",
    "Claim",
    "ClaimResult",
    "Comparison",
    "ExperimentResult",
    "Tier",
    "TrainingCost",
    "barrier_configs",
    "boost_configs",
    "budget_configs",
    "budget_figure_table",
    "check_configs",
    "claim_table",
    "claims_of",
    "connectivity_configs",
    "coupling_configs",
    "cyclic_arms",
    "cyclic_configs",
    "evaluate",
    "evaluate_group",
    "figure_dir",
    "final_level",
    "final_value",
    "full_tier_deviations",
    "get_tier",
    "lrr_config",
    "lrr_configs",
    "reproduce_group",
    "results_table",
    "run_alignment_and_curves",
    "run_boost",
    "run_budget",
    "run_checks",
    "run_cycle_barriers",
    "run_cyclic_vs_one_cycle",
    "run_grid",
    "run_keep_ratios",
    "run_lmc_and_sharpness",
    "run_loss_surfaces",
    "run_mask_init_coupling",
    "run_sanity_checks",
    "run_sculpting",
    "run_sharpness",
    "run_tickets",
    "runs_dir",
    "runs_table",
    "save_figure",
    "schedule_examples",
    "sculpting_configs",
    "sharpness_configs",
    "summarise",
    "surface_configs",
    "ticket_configs",
    "tier_from_env",
    "train_all",
    "train_parallel",
    "training_cost",
    "write_summary",
]
