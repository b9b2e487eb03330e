"""Pieces the recipes share: the PaI mask, the magnitude step between levels, level densities, the
dense level 0, which data a stage trains on, and Su et al.'s mask operation on the final mask."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.data import DataBundle, corrupt
from training.fileio import derive_seed
from training.flops import scoring_flops
from training.masks import Mask, config_prunable_names, full_mask
from training.pruning import apply_mask_op, prune, prune_from_config
from training.trainer import Stage, StageResult, StageStart, Trainer


def initial_mask(tr: Trainer, model: torch.nn.Module, sparsity: float, data: DataBundle, stream: str = "mask") -> Mask:
    """The pruning-at-initialisation mask of ``cfg.mask`` at ``sparsity`` on ``model``, seeded from
    ``(seed, stream)``; ``data`` supplies SNIP's and GraSP's labelled sample and SynFlow's input shape."""
    seed = derive_seed(tr.cfg.seed, stream)
    m = tr.cfg.mask
    samples = m.samples_per_class * data.num_classes
    tr.flops.charge(scoring_flops(m.method, tr.flops.model, samples=samples, rounds=m.synflow_rounds))
    return prune_from_config(model.to(tr.device), m, sparsity, seed=seed, data=data)


def mask_producing_data(tr: Trainer, cfg: TrainConfig) -> DataBundle:
    """The data of every training that *produces the mask* (Su et al.'s sanity checks: all levels before
    the final one, and the pruning scores): ``recipe.corrupt`` applied to the run's data."""
    return corrupt(tr.data, cfg.recipe.corrupt)


def final_mask_op(
    tr: Trainer,
    state: dict[str, torch.Tensor],
    mask: Mask,
    level: int,
    *,
    state_mask: Mask | None = None,
    fill: Path | dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], Mask]:
    """Apply ``mask.mask_op`` once, to the final mask, and return the ticket's starting state and mask.

    ``state`` is the recipe's starting state; ``state_mask`` the mask it was trained under (``None``
    when ``state`` is dense, e.g. θ₀ or a dense rewind point). After ``rearrange``, positions the new
    mask keeps but ``state_mask`` had pruned hold exact zeros in ``state``; they take their values from
    ``fill`` (a state dict or a checkpoint path), chosen by the recipe from ``recipe.rearrange_fill``.
    With ``fill=None`` they stay zero (the ``zero`` option).
    """
    gen = torch.Generator().manual_seed(derive_seed(tr.cfg.seed, "mask-op", level))
    new_state, new_mask = apply_mask_op(tr.cfg.mask.mask_op, state, mask, gen)
    if tr.cfg.mask.mask_op == "rearrange" and state_mask is not None and fill is not None:
        source = read_checkpoint(fill)["model"] if isinstance(fill, Path) else fill
        for n, m in new_mask.items():
            lacking = m & ~state_mask[n].bool()
            new_state[n] = torch.where(lacking, source[n].to(new_state[n].dtype), new_state[n])
    return new_state, new_mask


def level_densities(target_sparsity: float, fraction: float, levels: int | None, one_shot: bool = False) -> list[float]:
    """Densities of levels 0..L: 1, (1−f), (1−f)², … floored at the target; the last level is the
    target unless ``levels`` stops earlier. L = ⌈ln(1−s)/ln(1−f)⌉ when ``levels`` is None.
    ``one_shot``: ``[1, 1 − s]``, the target in one pruning step (Su et al.'s LT; one-shot LRR)."""
    target = 1.0 - target_sparsity
    if one_shot:
        return [1.0, target]
    if levels is None:
        levels = math.ceil(math.log(target) / math.log(1.0 - fraction) - 1e-12)
    dens = [1.0] + [max(target, (1.0 - fraction) ** lvl) for lvl in range(1, levels + 1)]
    if levels and (1.0 - fraction) ** levels <= target:
        dens[-1] = target
    return dens


def magnitude_step(tr: Trainer, trained: dict, sparsity: float) -> Mask:
    """Global (or ``recipe.level_scope`` layerwise) magnitude pruning of trained weights to ``sparsity``."""
    model = tr.fresh_model()
    model.load_state_dict(trained["model"])
    return prune(model, "magnitude", sparsity, mask=trained["mask"], scope=tr.cfg.recipe.level_scope)


def dense_level0(tr: Trainer, cfg: TrainConfig, *, final: bool = False) -> StageResult:
    """``level_0``: dense training, saving ``rewind.pt`` (weights, BN buffers and optimiser state) after
    ``recipe.rewind_epoch`` epochs when the schedule is that long. It trains on the mask-producing
    (possibly corrupted) data unless it is the ``final`` level."""
    r, sched = cfg.recipe, cfg.schedule
    stage = Stage(
        tr.run_dir / "level_0",
        sched,
        level=0,
        data=None if final else mask_producing_data(tr, cfg),
        extra_saves={r.rewind_epoch: "rewind.pt"} if r.rewind_epoch <= sched.cycles * sched.epochs else {},
    )

    def start() -> StageStart:
        model = tr.fresh_model()
        return StageStart(None, full_mask(model, config_prunable_names(model, cfg.mask)))

    return tr.run_stage(stage, start)
