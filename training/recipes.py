"""Recipes: the experiments of the cyclic sparse training paper (arXiv 2406.02773) and of Su et al. 2020
(sanity checks and random tickets) as chains of training stages.

Every recipe writes its run folder ``<out>/<name>-<hash>/`` with ``config.yaml`` and a
``manifest.json`` listing every checkpoint with its level, cycle, epoch and sparsity.

* ``pai`` (default): prune at init with ``mask.method``, train the schedule (one stage, in the run
  folder itself).
* ``imp``: ``level_0`` trains dense; ``level_l`` prunes the previous level's trained weights by global
  magnitude to density (1−f)^l (the last level exactly the target), rewinds the weights to θ₀ and
  trains with a fresh optimiser.
* ``wr``: as imp, but rewinds to ``level_0/rewind.pt``: weights, BN buffers and optimiser state after
  ``rewind_epoch`` dense epochs; ``wr_schedule`` full (a new schedule, TurboPrune) or remaining
  (continue the schedule from the rewind epoch, Frankle et al.).
* ``lrr``: as imp, but keeps the trained weights; the schedule restarts and the optimiser is fresh.
* ``sculpt``: ``level_0``: PaI mask at s₀, C₀ cycles; ``level_1``: one global (or layerwise)
  magnitude step to the target on the trained weights, no rewind, one more cycle.
* ``hybrid``: ``level_0`` trains dense; ``level_1`` keeps the top-|w| of each layer with smart-ratio
  budgets (linear layers 30%) and retrains from those values (one shot).
* ``coupling``: trains the mask of ``mask_from`` from ``coupling_init``: random (fresh θ), warmup
  (θ_warm), warmup-signs (|θ_warm| ⊙ sign θ_signs) or random-signs (|θ_rand| ⊙ sign θ_signs).

Data-order seeds follow the global epoch index across stages, so LRR with a prune fraction of 0
reproduces cyclic training bitwise. ``recipe.corrupt`` corrupts the data used for pruning scores
and for level-0 pretraining; tickets then train on the true data (Su et al.). ``mask.mask_op``
applies to every newly made mask before it trains.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.data import DataBundle, corrupt
from training.errors import CheckpointError, ConfigError
from training.fileio import derive_seed
from training.masks import Mask, full_mask, prunable_names
from training.pruning import (
    apply_mask_op,
    layer_kinds,
    prune,
    prune_from_config,
    smart_ratio_densities,
    threshold_mask,
)
from training.trainer import Stage, StageResult, StageStart, Trainer

COUPLING_INITS = ("random", "warmup", "warmup-signs", "random-signs")
WR_SCHEDULES = ("full", "remaining")


def initial_mask(tr: Trainer, model: torch.nn.Module, sparsity: float, data: DataBundle, stream: str = "mask") -> Mask:
    """The pruning-at-initialisation mask of ``cfg.mask`` at ``sparsity`` on ``model``, seeded from
    ``(seed, stream)``; ``data`` supplies SNIP's and GraSP's labelled sample and SynFlow's input shape."""
    m = tr.cfg.mask
    seed = derive_seed(tr.cfg.seed, stream)
    return prune_from_config(model.to(tr.device), m, sparsity, seed=seed, data=data)


def mask_op(tr: Trainer, state: dict, mask: Mask, level: int) -> tuple[dict, Mask]:
    """Apply ``cfg.mask.mask_op`` (Su et al.'s sanity checks) to a new mask and its starting weights."""
    gen = torch.Generator().manual_seed(derive_seed(tr.cfg.seed, "mask-op", level))
    return apply_mask_op(tr.cfg.mask.mask_op, state, mask, gen)


def level_densities(target_sparsity: float, fraction: float, levels: int | None) -> list[float]:
    """Densities of levels 0..L: 1, (1−f), (1−f)², … floored at the target; the last level is the
    target unless ``levels`` stops earlier. L = ⌈ln(1−s)/ln(1−f)⌉ when ``levels`` is None."""
    target = 1.0 - target_sparsity
    if levels is None:
        levels = math.ceil(math.log(target) / math.log(1.0 - fraction) - 1e-12)
    dens = [1.0] + [max(target, (1.0 - fraction) ** lvl) for lvl in range(1, levels + 1)]
    if levels and (1.0 - fraction) ** levels <= target:
        dens[-1] = target
    return dens


def _magnitude_step(tr: Trainer, trained: dict, sparsity: float) -> Mask:
    model = tr.fresh_model()
    model.load_state_dict(trained["model"])
    return prune(model, "magnitude", sparsity, mask=trained["mask"], scope=tr.cfg.recipe.level_scope)


def recipe_pai(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Prune at initialisation, then train the schedule (one stage in the run folder)."""
    scoring_data = corrupt(tr.data, cfg.recipe.corrupt)

    def start() -> StageStart:
        model = tr.fresh_model()
        mask = initial_mask(tr, model, cfg.mask.sparsity, scoring_data)
        state, mask = mask_op(tr, model.state_dict(), mask, 0)
        return StageStart(state, mask)

    return [tr.run_stage(Stage(tr.run_dir, cfg.schedule, level=0), start)]


def _dense_level0(tr: Trainer, cfg: TrainConfig) -> StageResult:
    """``level_0``: dense training on the (possibly corrupted) data, saving ``rewind.pt`` (weights,
    BN buffers and optimiser state) after ``recipe.rewind_epoch`` epochs when the schedule is that long."""
    r, sched = cfg.recipe, cfg.schedule
    stage = Stage(
        tr.run_dir / "level_0",
        sched,
        level=0,
        data=corrupt(tr.data, r.corrupt),
        extra_saves={r.rewind_epoch: "rewind.pt"} if r.rewind_epoch <= sched.cycles * sched.epochs else {},
    )

    def start() -> StageStart:
        model = tr.fresh_model()
        return StageStart(None, full_mask(model, prunable_names(model, cfg.mask.prune_shortcuts, cfg.mask.prune_last)))

    return tr.run_stage(stage, start)


def _iterative(tr: Trainer, cfg: TrainConfig, rewind: str) -> list[StageResult]:
    r = cfg.recipe
    epochs = cfg.schedule.cycles * cfg.schedule.epochs
    results = [_dense_level0(tr, cfg)]
    level0 = results[0].stage
    densities = level_densities(cfg.mask.sparsity, r.prune_fraction, r.levels)
    offset = epochs
    for level, dens in enumerate(densities[1:], start=1):
        prev = results[-1]

        def start(level=level, dens=dens, prev=prev) -> StageStart:
            trained = read_checkpoint(prev.final)
            mask = _magnitude_step(tr, trained, 1.0 - dens)
            optimizer_state, position = None, (1, 0)
            if rewind == "init":
                state = read_checkpoint(level0.directory / "init.pt")["model"]
            elif rewind == "rewind":
                point = read_checkpoint(level0.directory / "rewind.pt")
                state, optimizer_state = point["model"], point["optimizer"]
                if r.wr_schedule == "remaining":
                    position = (1, r.rewind_epoch)
            else:
                state = trained["model"]
            state, mask = mask_op(tr, dict(state), mask, level)
            return StageStart(state, mask, optimizer_state, position)

        stage = Stage(tr.run_dir / f"level_{level}", cfg.schedule, level=level, epoch_offset=offset)
        results.append(tr.run_stage(stage, start))
        offset += epochs
    return results


def recipe_imp(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Iterative magnitude pruning, rewinding to θ₀."""
    return _iterative(tr, cfg, "init")


def recipe_wr(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Iterative magnitude pruning with weight rewinding to the dense state after ``rewind_epoch`` epochs."""
    return _iterative(tr, cfg, "rewind")


def recipe_lrr(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Learning-rate rewinding: keep the trained weights, restart the schedule, fresh optimiser."""
    return _iterative(tr, cfg, "keep")


def recipe_sculpt(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """SCULPT-ing: PaI mask at s₀, C₀ cycles, one magnitude step to the target, one more cycle."""
    r, sched = cfg.recipe, cfg.schedule
    c0 = r.sculpt_cycles or sched.cycles
    name = "cyclic" if (sched.name == "one-cycle" and c0 > 1) else sched.name
    sched0 = dataclasses.replace(sched, name=name, cycles=c0)
    sched1 = dataclasses.replace(sched, cycles=1)
    scoring_data = corrupt(tr.data, r.corrupt)

    def start0() -> StageStart:
        model = tr.fresh_model()
        mask = initial_mask(tr, model, r.sculpt_sparsity, scoring_data)
        state, mask = mask_op(tr, model.state_dict(), mask, 0)
        return StageStart(state, mask)

    first = tr.run_stage(Stage(tr.run_dir / "level_0", sched0, level=0), start0)

    def start1() -> StageStart:
        trained = read_checkpoint(first.final)
        mask = _magnitude_step(tr, trained, cfg.mask.sparsity)
        state, mask = mask_op(tr, dict(trained["model"]), mask, 1)
        return StageStart(state, mask)

    second = tr.run_stage(Stage(tr.run_dir / "level_1", sched1, level=1, epoch_offset=c0 * sched.epochs), start1)
    return [first, second]


def recipe_hybrid(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Hybrid tickets: dense training, per-layer top-|w| with smart-ratio budgets, retraining (one shot)."""
    sched = cfg.schedule
    first = _dense_level0(tr, cfg)

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
            l2_scaling="vgg" in type(model).__name__.lower(),
        )
        mask = {}
        for n in names:  # per layer keep the floor(p_l N_l) largest |w|
            keep = max(1, math.floor(dens[n] * params[n].numel()))
            sparsity_l = 1.0 - keep / params[n].numel()
            mask.update(threshold_mask({n: params[n].detach().abs()}, {n: trained["mask"][n]}, sparsity_l))
        state, mask = mask_op(tr, dict(trained["model"]), mask, 1)
        return StageStart(state, mask)

    second = tr.run_stage(
        Stage(tr.run_dir / "level_1", sched, level=1, epoch_offset=sched.cycles * sched.epochs), start1
    )
    return [first, second]


def _source(path: str | None, tr: Trainer, what: str) -> dict[str, Any]:
    if not path:
        raise ConfigError(f"recipe coupling needs {what}")
    ckpt = read_checkpoint(path)
    meta = ckpt["meta"]
    if meta["model"] != tr.cfg.model.name or dict(meta.get("model_kwargs", {})) != tr.model_kwargs:
        raise CheckpointError(
            f"{path} holds a {meta['model']} {meta.get('model_kwargs')} model; this run trains "
            f"{tr.cfg.model.name} {tr.model_kwargs}"
        )
    return ckpt


def recipe_coupling(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """Mask–init coupling ablations (arXiv 2406.02773 §5; the warmup-signs arm as Gadhikar & Burkholz's
    ``imp-lrr-lts``) on the mask of ``recipe.mask_from``."""
    r = cfg.recipe

    def start() -> StageStart:
        source = _source(r.mask_from, tr, "--mask-from")
        mask = source["mask"]
        fresh = tr.fresh_model().state_dict()
        signs = _source(r.signs_from, tr, "--signs-from")["model"] if r.signs_from else source["model"]
        if r.coupling_init in ("warmup", "warmup-signs"):
            state = dict(_source(r.warmup_from, tr, "--warmup-from")["model"])
        else:
            state = dict(fresh)
        if r.coupling_init in ("warmup-signs", "random-signs"):
            for n in mask:
                state[n] = state[n].abs() * torch.sign(signs[n])
        state, new_mask = mask_op(tr, state, dict(mask), 0)
        return StageStart(state, new_mask)

    return [tr.run_stage(Stage(tr.run_dir, cfg.schedule, level=0), start)]


RECIPES: dict[str, Callable[[Trainer, TrainConfig], list[StageResult]]] = {
    "pai": recipe_pai,
    "imp": recipe_imp,
    "wr": recipe_wr,
    "lrr": recipe_lrr,
    "sculpt": recipe_sculpt,
    "hybrid": recipe_hybrid,
    "coupling": recipe_coupling,
}
