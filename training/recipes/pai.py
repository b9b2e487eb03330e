"""Recipes that start from a pruning-at-initialisation mask: PaI training (plain or cyclic; arXiv
2406.02773) and SCULPT-ing (the same paper: PaI mask at s₀, C₀ cycles, one magnitude step to the
target, one more cycle)."""

from __future__ import annotations

import dataclasses

from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.recipes.common import final_mask_op, initial_mask, magnitude_step, mask_producing_data
from training.trainer import Stage, StageResult, StageStart, Trainer


def recipe_pai(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Prune at initialisation (scores on the mask-producing data), apply ``mask.mask_op``, then train the
    schedule on the true data (one stage, in the run folder itself)."""
    scoring_data = mask_producing_data(tr, cfg)

    def start() -> StageStart:
        model = tr.fresh_model()
        mask = initial_mask(tr, model, cfg.mask.sparsity, scoring_data)
        state, mask = final_mask_op(tr, model.state_dict(), mask, 0)
        return StageStart(state, mask)

    return [tr.run_stage(Stage(tr.run_dir, cfg.schedule, level=0), start)]


def recipe_sculpt(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """SCULPT-ing: ``level_0`` trains a PaI mask at s₀ for C₀ cycles; ``level_1`` takes one global (or
    layerwise) magnitude step to the target on the trained weights, without rewinding, and trains one
    more cycle.

    Sanity checks: level 0 (which produces the final mask) trains on the mask-producing data, level 1
    on the true data; ``mask.mask_op`` applies once, to the final mask; after ``rearrange``, positions
    the trained level-0 weights lack (pruned at s₀) come from θ₀ (``rearrange_fill`` ``auto`` or
    ``init``; SCULPT has no dense trained network) or stay zero (``zero``).
    """
    r, sched = cfg.recipe, cfg.schedule
    c0 = r.sculpt_cycles or sched.cycles
    name = "cyclic" if (sched.name == "one-cycle" and c0 > 1) else sched.name
    sched0 = dataclasses.replace(sched, name=name, cycles=c0)
    sched1 = dataclasses.replace(sched, cycles=1)
    corrupted = mask_producing_data(tr, cfg)

    def start0() -> StageStart:
        model = tr.fresh_model()
        return StageStart(model.state_dict(), initial_mask(tr, model, r.sculpt_sparsity, corrupted))

    first = tr.run_stage(Stage(tr.run_dir / "level_0", sched0, level=0, data=corrupted), start0)

    def start1() -> StageStart:
        trained = read_checkpoint(first.final)
        mask = magnitude_step(tr, trained, cfg.mask.sparsity)
        fill = None if r.rearrange_fill == "zero" else first.stage.directory / "init.pt"
        state, mask = final_mask_op(tr, dict(trained["model"]), mask, 1, state_mask=trained["mask"], fill=fill)
        return StageStart(state, mask)

    second = tr.run_stage(Stage(tr.run_dir / "level_1", sched1, level=1, epoch_offset=c0 * sched.epochs), start1)
    return [first, second]
