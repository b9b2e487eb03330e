"""Pruning: a registry of methods (random, magnitude, SNIP, GraSP, SynFlow), layer-density rules,
thresholding, and Su et al.'s mask operations for sanity checks.

Conventions:

* Scores live on the prunable parameters (:func:`training.masks.prunable_names`). Every scorer
  returns a *keep score*: larger means more worth keeping.
* ``scope="global"`` pools all keep scores and prunes ``k = round(s * N)`` weights: every score
  ``<= kthvalue(k)`` is pruned, so ties at the threshold are pruned (as Synaptic-Flow's
  ``_global_mask`` and TurboPrune's ``prune_mag``). ``scope="layerwise"`` applies the same rule per
  layer with ``k_l = round(s * N_l)``. With ``k = 0`` nothing new is pruned.
* An existing ``mask`` is respected: its pruned weights get score −inf, so they stay pruned, and
  the sparsity ``s`` is measured over all prunable weights (pruned ones included).
* ``random`` ignores ``scope``: its layer densities come from a ``distribution`` (uniform, erk,
  er-balanced, smart-ratio) and each layer keeps exactly ``round(d_l * N_l)`` weights
  (``floor`` for smart ratios, as Su et al.'s code), drawn among the surviving ones.
"""

from training.pruning.densities import (
    DISTRIBUTIONS,
    ERK_VARIANTS,
    SMART_RATIO_SCALINGS,
    SMART_RATIO_VARIANTS,
    er_balanced_densities,
    erk_densities,
    layer_kinds,
    layer_shapes,
    random_mask,
    smart_ratio_densities,
    smart_ratio_l2_scaling,
    uniform_densities,
)
from training.pruning.methods import (
    METHODS,
    PruningMethod,
    prune,
    prune_checkpoint,
    prune_from_config,
    prune_options,
)
from training.pruning.sanity import MASK_OPS, apply_mask_op, rearrange, shuffle_weights
from training.pruning.scorers import (
    grasp_raw_scores,
    grasp_scores,
    magnitude_scores,
    snip_scores,
    synflow_prune,
    synflow_round_scores,
)
from training.pruning.thresholds import SCOPES, check_sparsity, threshold_mask

__all__ = [
    "DISTRIBUTIONS",
    "ERK_VARIANTS",
    "MASK_OPS",
    "METHODS",
    "SCOPES",
    "SMART_RATIO_SCALINGS",
    "SMART_RATIO_VARIANTS",
    "PruningMethod",
    "apply_mask_op",
    "check_sparsity",
    "er_balanced_densities",
    "erk_densities",
    "grasp_raw_scores",
    "grasp_scores",
    "layer_kinds",
    "layer_shapes",
    "magnitude_scores",
    "prune",
    "prune_checkpoint",
    "prune_from_config",
    "prune_options",
    "random_mask",
    "rearrange",
    "shuffle_weights",
    "smart_ratio_densities",
    "smart_ratio_l2_scaling",
    "snip_scores",
    "synflow_prune",
    "synflow_round_scores",
    "threshold_mask",
    "uniform_densities",
]
