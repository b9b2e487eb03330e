"""Recipes: the experiments of the cyclic sparse training paper (arXiv 2406.02773) and of Su et al. 2020
(sanity checks and random tickets) as chains of training stages.

Every recipe writes its run folder ``<out>/<name>-<hash>/`` with ``config.yaml`` and a
``manifest.json`` listing every checkpoint with its level, cycle, epoch and sparsity.

* ``pai`` (default): prune at init with ``mask.method``, train the schedule (one stage, in the run
  folder itself).
* ``imp``: ``level_0`` trains dense; ``level_l`` prunes the previous level's trained weights by global
  magnitude to density (1−f)^l (the last level exactly the target; ``recipe.one_shot``: the target at
  level 1, Su et al.'s LT), rewinds the weights to θ₀ and trains with a fresh optimiser.
* ``wr``: as imp, but rewinds to ``level_0/rewind.pt``: weights, BN buffers and optimiser state after
  ``rewind_epoch`` dense epochs; ``wr_schedule`` full (a new schedule, TurboPrune) or remaining
  (continue the schedule from the rewind epoch, Frankle et al.).
* ``lrr``: as imp, but keeps the trained weights; the schedule restarts and the optimiser is fresh.
* ``sculpt``: ``level_0``: PaI mask at s₀, C₀ cycles; ``level_1``: one global (or layerwise)
  magnitude step to the target on the trained weights, no rewind, one more cycle.
* ``hybrid``: ``level_0`` trains dense; ``level_1`` keeps the top-|w| of each layer with smart-ratio
  budgets (linear layers 30%) and retrains from those values (one shot).
* ``rigl``, ``set``, ``gmp``, ``gmp-star``, ``acdc``: one stage whose mask changes during training
  (:mod:`training.recipes.dst`, :mod:`training.dynamic`).
* ``coupling``: trains the mask of ``mask_from`` from ``coupling_init``: random (fresh θ from a stream
  of its own), rewind-init (θ₀ of the run that made the mask), warmup (θ_warm), warmup-signs
  (|θ_warm| ⊙ sign θ_signs) or random-signs (|θ_rand| ⊙ sign θ_signs).

Data-order seeds follow the global epoch index across stages, so LRR with a prune fraction of 0
reproduces cyclic training bitwise.

Sanity checks (Su et al. 2020): ``recipe.corrupt`` corrupts all the training that produces the mask
(the pruning scores and every level before the final one); the ticket (the final level) trains on
the true data. ``mask.mask_op`` applies once, to the final mask (see :mod:`training.recipes.iterative`
for where rearranged positions take their weights from).

A run folder records the *semantics version* of its recipe (:func:`semantics_version`); a folder
made by an earlier version whose experiment differs is refused rather than silently reused.
"""

from __future__ import annotations

from collections.abc import Callable

from training.config import TrainConfig
from training.recipes.common import initial_mask, level_densities
from training.recipes.coupling import recipe_coupling, run_initialisation
from training.recipes.dst import CUBICS, DST_RECIPES, recipe_dynamic, validate_dynamic
from training.recipes.hybrid import recipe_hybrid
from training.recipes.iterative import recipe_imp, recipe_lrr, recipe_wr
from training.recipes.pai import recipe_pai, recipe_sculpt
from training.trainer import StageResult, Trainer

COUPLING_INITS = ("random", "rewind-init", "warmup", "warmup-signs", "random-signs")
WR_SCHEDULES = ("full", "remaining")
REARRANGE_FILLS = ("auto", "init", "zero")

RECIPES: dict[str, Callable[[Trainer, TrainConfig], list[StageResult]]] = {
    "pai": recipe_pai,
    "imp": recipe_imp,
    "wr": recipe_wr,
    "lrr": recipe_lrr,
    "sculpt": recipe_sculpt,
    "hybrid": recipe_hybrid,
    "coupling": recipe_coupling,
    **dict.fromkeys(DST_RECIPES, recipe_dynamic),  # rigl, set, gmp, gmp-star, acdc: training.recipes.dst
}


def semantics_version(cfg: TrainConfig) -> int:
    """The version of the experiment ``cfg`` runs: 1 where it is what version 0.1 of the toolkit ran, 2
    where version 0.2 fixed what the recipe does (the config hash is the same, the experiment is not):

    * coupling ``random`` and ``random-signs`` draw from a stream of their own (0.1 reused θ₀ of the
      same seed, i.e. the rewind-to-init arm);
    * sanity checks in imp, wr, lrr, sculpt and hybrid: corruption of every mask-producing level and
      the mask operation once, on the final mask (0.1 corrupted level 0 only and re-applied the
      mask operation at every level);
    * smart ratios' 1/l² rule on every network that is not a ResNet (0.1: VGG only), which changes
      random smart-ratio masks and hybrid tickets of cnn1d and mlp.
    """
    r, m = cfg.recipe, cfg.mask
    if r.name == "coupling" and r.coupling_init in ("random", "random-signs"):
        return 2
    if r.name in ("imp", "wr", "lrr", "sculpt", "hybrid") and (r.corrupt != "none" or m.mask_op != "none"):
        return 2
    uses_smart_ratio = r.name == "hybrid" or (m.method == "random" and m.distribution == "smart-ratio")
    name = cfg.model.name
    if uses_smart_ratio and m.smart_ratio_scaling == "non-resnet" and not name.startswith(("resnet", "vgg")):
        return 2
    return 1


__all__ = [
    "COUPLING_INITS",
    "CUBICS",
    "DST_RECIPES",
    "REARRANGE_FILLS",
    "RECIPES",
    "WR_SCHEDULES",
    "initial_mask",
    "level_densities",
    "run_initialisation",
    "semantics_version",
    "validate_dynamic",
]
