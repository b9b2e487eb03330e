"""Figure functions. Each returns a matplotlib ``Figure`` and never touches global style state.

:mod:`~landscape.plot.runs` draws training runs, :mod:`~landscape.plot.analyses` the analyses'
Datasets, :mod:`~landscape.plot.experiments` the figure notebooks' tables, :mod:`~landscape.plot.claims`
the reproduction's claim groups; all draw inside one style
(:mod:`~landscape.plot.style`).
"""

from landscape.plot.analyses import (
    plot_accuracy_vs_sparsity,
    plot_barriers,
    plot_checkpoint_eigenvalues,
    plot_density,
    plot_eigenvalues,
    plot_interpolation,
    plot_sign_flip_heatmap,
    plot_surface,
)
from landscape.plot.claims import plot_reproduction
from landscape.plot.connectivity import plot_alignment_and_curves, plot_paths
from landscape.plot.experiments import (
    plot_cyclic_vs_one_cycle,
    plot_lmc_and_sharpness,
    plot_mask_init_coupling,
    plot_sanity_checks,
    plot_sculpting,
)
from landscape.plot.runs import plot_accuracy_vs_flops, plot_keep_ratios, plot_learning_curves, plot_schedules
from landscape.plot.style import _style, mean_sd, save_figure

__all__ = [
    "_style",
    "mean_sd",
    "plot_accuracy_vs_flops",
    "plot_accuracy_vs_sparsity",
    "plot_alignment_and_curves",
    "plot_barriers",
    "plot_checkpoint_eigenvalues",
    "plot_cyclic_vs_one_cycle",
    "plot_density",
    "plot_eigenvalues",
    "plot_interpolation",
    "plot_keep_ratios",
    "plot_learning_curves",
    "plot_lmc_and_sharpness",
    "plot_mask_init_coupling",
    "plot_paths",
    "plot_reproduction",
    "plot_sanity_checks",
    "plot_schedules",
    "plot_sculpting",
    "plot_sign_flip_heatmap",
    "plot_surface",
    "save_figure",
]
