"""Hybrid tickets (Su et al. 2020): train dense, keep the top-|w| of each layer with smart-ratio layer
budgets (linear layers 30%), retrain from those values with the full schedule (one shot)."""

from __future__ import annotations

import math

from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.pruning import layer_kinds, smart_ratio_densities, smart_ratio_l2_scaling, threshold_mask
from training.recipes.common import dense_level0, final_mask_op
from training.trainer import Stage, StageResult, StageStart, Trainer


def recipe_hybrid(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Hybrid tickets. Level 0 (dense, it produces the mask) trains on the mask-producing data; the
    ticket (level 1) on the true data; ``mask.mask_op`` applies to the final mask (the trained dense
    weights lack nothing, so ``rearrange`` keeps their values)."""
    sched = cfg.schedule
    first = dense_level0(tr, cfg)

    def start1() -> StageStart:
        trained = read_checkpoint(first.final)
        model = tr.fresh_model()
        model.load_state_dict(trained["model"])
        names = list(trained["mask"])
        params = dict(model.named_parameters())
        shapes = {n: params[n].shape for n in names}
        dens = smart_ratio_densities(
            shapes,
            1.0 - cfg.mask.sparsity,
            layer_kinds(model, names),
            variant=cfg.mask.smart_ratio_variant,
            l2_scaling=smart_ratio_l2_scaling(model, cfg.mask.smart_ratio_scaling),
        )
        mask = {}
        for n in names:  # per layer keep the floor(p_l N_l) largest |w|
            keep = max(1, math.floor(dens[n] * params[n].numel()))
            sparsity_l = 1.0 - keep / params[n].numel()
            mask.update(threshold_mask({n: params[n].detach().abs()}, {n: trained["mask"][n]}, sparsity_l))
        return StageStart(*final_mask_op(tr, dict(trained["model"]), mask, 1))

    second = tr.run_stage(
        Stage(tr.run_dir / "level_1", sched, level=1, epoch_offset=sched.cycles * sched.epochs), start1
    )
    return [first, second]
