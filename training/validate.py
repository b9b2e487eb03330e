"""Validation of a :class:`TrainConfig` against the registries and the ranges of its fields.

Kept apart from :mod:`training.config` so that the registries (datasets, models, pruning methods,
recipes, schedules), which read the config dataclasses, can be checked against without an import
cycle: arrows go ``validate -> registries -> config``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from training.config import TrainConfig
from training.data import CORRUPTIONS, DATASETS, LOADERS
from training.distributed import AMP_DTYPES
from training.errors import ConfigError
from training.fields import check_ranges
from training.models import MODELS
from training.pruning import (
    DISTRIBUTIONS,
    ERK_VARIANTS,
    MASK_OPS,
    METHODS,
    SCOPES,
    SMART_RATIO_SCALINGS,
    SMART_RATIO_VARIANTS,
)
from training.recipes import COUPLING_INITS, CUBICS, REARRANGE_FILLS, RECIPES, WR_SCHEDULES, validate_dynamic
from training.schedules import DECAYS, SCHEDULES

# dotted config key -> (what it is, the registry or tuple of valid values)
CHOICES: dict[str, tuple[str, Collection[str]]] = {
    "data.name": ("dataset", DATASETS),
    "data.loader": ("loader", LOADERS),
    "model.name": ("model", MODELS),
    "mask.method": ("pruning method", ("none", *METHODS)),
    "recipe.name": ("recipe", RECIPES),
    "mask.distribution": ("layer distribution", DISTRIBUTIONS),
    "mask.scope": ("scope", SCOPES),
    "recipe.level_scope": ("level scope", SCOPES),
    "recipe.gmp_scope": ("gmp scope", SCOPES),
    "recipe.gmp_cubic": ("gmp-star cubic", CUBICS),
    "mask.smart_ratio_variant": ("smart-ratio variant", SMART_RATIO_VARIANTS),
    "mask.erk": ("erk variant", ERK_VARIANTS),
    "mask.mask_op": ("mask operation", MASK_OPS),
    "recipe.corrupt": ("corruption", CORRUPTIONS),
    "recipe.coupling_init": ("coupling init", COUPLING_INITS),
    "recipe.rearrange_fill": ("rearrange fill", REARRANGE_FILLS),
    "mask.smart_ratio_scaling": ("smart-ratio scaling", SMART_RATIO_SCALINGS),
    "amp": ("amp", AMP_DTYPES),
    "recipe.wr_schedule": ("wr schedule", WR_SCHEDULES),
    "schedule.name": ("schedule", SCHEDULES),
    "schedule.decay": ("decay", DECAYS),
}


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check ranges and registry names; return ``cfg`` unchanged or raise :class:`ConfigError`.

    Every numeric field is checked against the range it declares (``opt(..., valid=...)``) and must be
    finite; choices against :data:`CHOICES`; then the rules that tie fields together."""
    check_ranges(cfg)
    for key, (kind, valid) in CHOICES.items():
        value = _get(cfg, key)
        if value not in valid:
            raise ConfigError(f"unknown {kind} {value!r}; choose from: {', '.join(sorted(valid))}", param=key)
    if cfg.name and (cfg.name in (".", "..") or any(c in cfg.name for c in "/\\\0")):
        raise ConfigError(f"run name {cfg.name!r} must be a plain folder name (no path separators or '..')")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"unknown device {cfg.device!r}; choose from: auto, cpu, cuda, cuda:N")
    _validate_recipe(cfg)
    sched = cfg.schedule
    if sched.name == "one-cycle" and sched.cycles != 1:
        raise ConfigError(
            "schedule one-cycle has exactly one cycle; for the budget of C cycles of E epochs use "
            "--cycles 1 --epochs C*E, or --schedule cyclic",
            param="schedule.cycles",
        )
    if cfg.optim.nesterov and cfg.optim.momentum == 0:
        raise ConfigError("nesterov needs a positive momentum", param="optim.momentum")
    return cfg


def _validate_recipe(cfg: TrainConfig) -> None:
    r, m = cfg.recipe, cfg.mask
    validate_dynamic(cfg)
    if r.name in ("pai", "sculpt"):
        if m.method == "none" and m.sparsity != 0.0:
            raise ConfigError(f"sparsity {m.sparsity} given with --prune none; choose a pruning method such as random")
        if m.method != "none" and m.sparsity == 0.0:
            raise ConfigError(f"pruning method {m.method!r} needs a sparsity in (0, 1)")
    if r.name == "sculpt":
        if m.method == "none":
            raise ConfigError("recipe sculpt needs a pruning-at-initialisation method (--prune) for its first mask")
        if not 0.0 < r.sculpt_sparsity < m.sparsity:
            raise ConfigError(
                f"sculpt_sparsity (s0 = {r.sculpt_sparsity}) must lie in (0, target sparsity {m.sparsity})"
            )
    if r.name in ("imp", "wr", "lrr", "hybrid"):
        if m.method not in ("none", "magnitude"):
            raise ConfigError(f"recipe {r.name} prunes by magnitude between levels; drop --prune {m.method}")
        if m.sparsity == 0.0 and r.levels is None:
            raise ConfigError(f"recipe {r.name} needs a target --sparsity in (0, 1)")
        if r.prune_fraction == 0.0 and r.levels is None:
            raise ConfigError("prune_fraction 0 never reaches the target; give --levels")
    if r.name == "wr":
        total = cfg.schedule.cycles * cfg.schedule.epochs
        if r.rewind_epoch > total:
            raise ConfigError(f"rewind_epoch {r.rewind_epoch} exceeds the {total} epochs of dense training")
        if r.wr_schedule == "remaining" and (cfg.schedule.cycles != 1 or r.rewind_epoch >= cfg.schedule.epochs):
            raise ConfigError("wr_schedule remaining needs one cycle longer than rewind_epoch")
    if r.name == "coupling":
        if m.method != "none":
            raise ConfigError("recipe coupling takes its mask from --mask-from; drop --prune")
        if not r.mask_from:
            raise ConfigError("recipe coupling needs --mask-from CHECKPOINT")
        if r.coupling_init in ("warmup", "warmup-signs") and not r.warmup_from:
            raise ConfigError(f"coupling init {r.coupling_init} needs --warmup-from CHECKPOINT")
    elif r.mask_from or r.warmup_from or r.signs_from or r.init_from:
        raise ConfigError("--mask-from, --warmup-from, --signs-from and --init-from belong to recipe coupling")
    if r.one_shot and r.name not in ("imp", "wr", "lrr"):
        raise ConfigError(f"--one-shot belongs to the iterative recipes imp, wr and lrr, not {r.name}")
    if r.one_shot and r.levels is not None:
        raise ConfigError("--one-shot prunes in exactly one level; drop --levels")
