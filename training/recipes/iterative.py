"""Iterative magnitude pruning: IMP (rewind to θ₀; Frankle & Carbin 2019), weight rewinding (Frankle
et al. 2020) and learning-rate rewinding (Renda et al. 2020), with Su et al.'s sanity checks.

``level_0`` trains dense; ``level_l`` prunes the previous level's trained weights by global magnitude
to density (1−f)^l (the last level exactly the target; ``recipe.one_shot``: the target at level 1),
sets the starting weights by the recipe's rule and trains with a fresh optimiser.

Sanity checks (Su et al. 2020): ``recipe.corrupt`` applies to every level before the final one (the
training that produces the mask); the final level (the ticket) trains on the true data.
``mask.mask_op`` applies once, to the final mask. After ``rearrange``, positions of the new mask that
the starting state lacks are filled by ``recipe.rearrange_fill``: ``auto`` takes them from the state
the recipe rewinds to (θ₀ for IMP, the rewind point for WR, both dense, so nothing is lacking) and,
for LRR, from the dense trained network of level 0; ``init`` takes them from θ₀; ``zero`` leaves the
zeros of the pruned positions.
"""

from __future__ import annotations

from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.recipes.common import dense_level0, final_mask_op, level_densities, magnitude_step, mask_producing_data
from training.trainer import Stage, StageResult, StageStart, Trainer


def _iterative(tr: Trainer, cfg: TrainConfig, rewind: str) -> list[StageResult]:
    r = cfg.recipe
    epochs = cfg.schedule.cycles * cfg.schedule.epochs
    densities = level_densities(cfg.mask.sparsity, r.prune_fraction, r.levels, r.one_shot)
    last = len(densities) - 1
    results = [dense_level0(tr, cfg, final=last == 0)]
    level0 = results[0].stage
    corrupted = mask_producing_data(tr, cfg)
    offset = epochs
    for level, dens in enumerate(densities[1:], start=1):
        prev = results[-1]

        def start(level=level, dens=dens, prev=prev) -> StageStart:
            trained = read_checkpoint(prev.final)
            mask = magnitude_step(tr, trained, 1.0 - dens)
            optimizer_state, position, state_mask = None, (1, 0), None
            if rewind == "init":
                state = read_checkpoint(level0.directory / "init.pt")["model"]
            elif rewind == "rewind":
                point = read_checkpoint(level0.directory / "rewind.pt")
                state, optimizer_state = point["model"], point["optimizer"]
                if r.wr_schedule == "remaining":
                    position = (1, r.rewind_epoch)
            else:
                state, state_mask = trained["model"], trained["mask"]
            if level < last:
                return StageStart(dict(state), mask, optimizer_state, position)
            fill = {
                "auto": results[0].final,
                "init": level0.directory / "init.pt",
                "zero": None,
            }[r.rearrange_fill]
            state, mask = final_mask_op(tr, dict(state), mask, level, state_mask=state_mask, fill=fill)
            return StageStart(state, mask, optimizer_state, position)

        data = corrupted if level < last else None
        stage = Stage(tr.run_dir / f"level_{level}", cfg.schedule, level=level, epoch_offset=offset, data=data)
        results.append(tr.run_stage(stage, start))
        offset += epochs
    return results


def recipe_imp(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Iterative magnitude pruning, rewinding to θ₀ (with ``recipe.one_shot``: Su et al.'s one-shot LT)."""
    return _iterative(tr, cfg, "init")


def recipe_wr(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Iterative magnitude pruning with weight rewinding to the dense state after ``rewind_epoch`` epochs."""
    return _iterative(tr, cfg, "rewind")


def recipe_lrr(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Learning-rate rewinding: keep the trained weights, restart the schedule, fresh optimiser."""
    return _iterative(tr, cfg, "keep")
