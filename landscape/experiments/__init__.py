"""The figure notebooks' experiments as library functions: settings per tier, training of the grids,
tables and the summaries the notebooks write.

A notebook is a few calls::

    from landscape import experiments, plot

    tier = experiments.tier_from_env()               # $LANDSCAPE_TIER: quick (default) or full
    result = experiments.run_cyclic_vs_one_cycle(tier, experiments.runs_dir())
    experiments.save_figure(plot.plot_cyclic_vs_one_cycle(result.table), "01_cyclic_vs_one_cycle")
    experiments.write_summary("01", result.summary)

Every ``run_*`` function trains its grid in this process (runs are named by config hash, so a
re-run only trains what is missing and reads the rest back) and returns an :class:`ExperimentResult`.
"""

from landscape.experiments.alignment import run_alignment_and_curves
from landscape.experiments.connectivity import connectivity_configs, run_lmc_and_sharpness
from landscape.experiments.cost import TrainingCost, training_cost
from landscape.experiments.coupling import coupling_configs, lrr_config, run_mask_init_coupling
from landscape.experiments.cyclic import cyclic_configs, run_cyclic_vs_one_cycle
from landscape.experiments.outputs import figure_dir, runs_dir, save_figure, write_summary
from landscape.experiments.sanity import CHECKS, check_configs, run_sanity_checks, ticket_configs
from landscape.experiments.schedules import schedule_examples
from landscape.experiments.sculpting import run_sculpting, sculpting_configs
from landscape.experiments.settings import TIERS, Tier, get_tier, tier_from_env
from landscape.experiments.surfaces import run_loss_surfaces, surface_configs
from landscape.experiments.tables import (
    ExperimentResult,
    final_level,
    final_value,
    results_table,
    run_grid,
    summarise,
    train_all,
)

__all__ = [
    "CHECKS",
    "TIERS",
    "ExperimentResult",
    "Tier",
    "TrainingCost",
    "check_configs",
    "connectivity_configs",
    "coupling_configs",
    "cyclic_configs",
    "figure_dir",
    "final_level",
    "final_value",
    "get_tier",
    "lrr_config",
    "results_table",
    "run_alignment_and_curves",
    "run_cyclic_vs_one_cycle",
    "run_grid",
    "run_lmc_and_sharpness",
    "run_loss_surfaces",
    "run_mask_init_coupling",
    "run_sanity_checks",
    "run_sculpting",
    "runs_dir",
    "save_figure",
    "schedule_examples",
    "sculpting_configs",
    "summarise",
    "surface_configs",
    "ticket_configs",
    "tier_from_env",
    "train_all",
    "training_cost",
    "write_summary",
]
