"""Recipes whose mask changes during training (one stage, in the run folder itself; the updaters are
in :mod:`training.dynamic`, each with its reference's defaults):

* ``rigl`` (Evci et al. 2020): the initial mask of ``--prune random`` (RigL's default distribution is
  ERK: ``--distribution erk``); every ``dst_interval`` = 100 steps until ``dst_end`` = 0.75 of training,
  drop ⌊α_t·n_l⌋ by magnitude and grow as many by dense-gradient magnitude, α = ``dst_fraction`` = 0.3
  under a cosine decay; no SGD step on an update step.
* ``set`` (Mocanu et al. 2018): as RigL with random growth after the SGD step, once per epoch, ζ = 0.3
  constant (RigL's TensorFlow SET; Mocanu's Keras code also drops by sign, ζ of the smallest positive and
  of the largest negative weights, and uses ε = 20 Erdős–Rényi densities with a dense output layer).
* ``gmp`` (Zhu & Gupta 2017): dense start; cubic sparsity from ``gmp_initial`` to ``--sparsity`` with
  a magnitude pruning step every ``gmp_interval`` = 1000 steps between ``gmp_start`` = 0.2 and
  ``gmp_end`` = 0.77 of training (RigL's CIFAR GMP baseline: steps 20 000 to 75 000 of 97 656), per layer.
* ``gmp-star`` (Kurtic & Alistarh 2022): as GMP with a one-shot jump to ``gmp_accelerated`` = 0.7 at the
  first pruning step and a pruning step every 100 steps (sparsimony's ``AcceleratedCubicScheduler``).
  Not verified from the paper, hence not built in: its learning rate that rewinds at every pruning
  interval and its distillation (use a cyclic schedule whose cycles match the interval for the former).
* ``acdc`` (Peste et al. 2021): dense warm-up, then compressed and decompressed phases, a longer last
  decompressed phase and a compressed fine-tune; fractions of the epochs from the authors' CIFAR-100
  configuration (200 epochs: warm-up 10, phases of 20, fine-tune 30).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from training.config import TrainConfig
from training.dynamic import AlternatingCompressed, Context, DropGrow, Dynamic, Gradual
from training.errors import ConfigError
from training.masks import config_prunable_names, full_mask
from training.recipes.common import initial_mask
from training.trainer import Stage, StageResult, StageStart, Trainer

DST_RECIPES = ("rigl", "set", "gmp", "gmp-star", "acdc")
SPARSE_START = ("rigl", "set")  # the others start dense and prune to --sparsity
ANNEALS = ("cosine", "constant")
CUBICS = ("span", "sparsimony")


def updater(cfg: TrainConfig) -> Callable[[Context], Dynamic]:
    """The updater factory of ``cfg``'s recipe (one of :data:`DST_RECIPES`)."""
    r, target = cfg.recipe, cfg.mask.sparsity

    def make(ctx: Context) -> Dynamic:
        if r.name in ("rigl", "set"):
            rigl = r.name == "rigl"
            interval = r.dst_interval or (100 if rigl else ctx.steps_per_epoch)
            anneal = r.dst_anneal or ("cosine" if rigl else "constant")
            if interval >= int(r.dst_end * ctx.total_steps):
                raise ConfigError(
                    f"recipe {r.name}: no mask update fits: the interval is {interval} steps and updates end at "
                    f"step {int(r.dst_end * ctx.total_steps)}; set recipe.dst_interval or train longer"
                )
            grow = "gradient" if rigl else "random"
            return DropGrow(ctx, grow=grow, fraction=r.dst_fraction, interval=interval, end=r.dst_end, anneal=anneal)
        if r.name in ("gmp", "gmp-star"):
            star = r.name == "gmp-star"
            interval = r.gmp_interval or (100 if star else 1000)
            span = int(r.gmp_end * ctx.total_steps) - int(r.gmp_start * ctx.total_steps)
            if span < interval:
                raise ConfigError(
                    f"recipe {r.name}: the pruning steps span {span} steps, less than the interval of {interval}; "
                    "set recipe.gmp_interval or train longer"
                )
            return Gradual(ctx, final=target, start=r.gmp_start, end=r.gmp_end, interval=interval,
                           initial=r.gmp_initial, accelerated=r.gmp_accelerated if star else None,
                           cubic=r.gmp_cubic, scope=r.gmp_scope)  # fmt: skip
        epochs = ctx.total_steps // ctx.steps_per_epoch
        acdc = AlternatingCompressed(ctx, target=target, epochs=epochs, warmup=r.acdc_warmup, phase=r.acdc_phase,
                                     last_dense=r.acdc_last_dense, final=r.acdc_final)  # fmt: skip
        if acdc.last_d_start <= acdc.w:
            raise ConfigError(
                f"recipe acdc: {epochs} epochs leave no compressed phase between the warm-up and the last "
                "decompressed phase; train longer or shorten recipe.acdc_* fractions"
            )
        return acdc

    return make


def recipe_dynamic(tr: Trainer, cfg: TrainConfig) -> list[StageResult]:
    """One stage whose mask changes: RigL and SET start from the ``--prune`` mask at ``--sparsity``,
    GMP, GMP* and AC/DC from the dense network (see the module docstring)."""

    def start() -> StageStart:
        model = tr.fresh_model()
        if cfg.recipe.name in SPARSE_START:
            return StageStart(model.state_dict(), initial_mask(tr, model, cfg.mask.sparsity, tr.data))
        names = config_prunable_names(model, cfg.mask)
        return StageStart(model.state_dict(), full_mask(model, names))

    return [tr.run_stage(Stage(tr.run_dir, cfg.schedule, level=0, dynamic=updater(cfg)), start)]


def validate_dynamic(cfg: TrainConfig) -> None:
    """The rules of the dynamic recipes: which initial mask and target they take, and that options of one
    recipe are not given to another (they would do nothing)."""
    r, m = cfg.recipe, cfg.mask
    defaults = type(r)()
    own = {"rigl": "dst_", "set": "dst_", "gmp": "gmp_", "gmp-star": "gmp_", "acdc": "acdc_"}.get(r.name)
    for name in (f.name for f in dataclasses.fields(r) if f.name.startswith(("dst_", "gmp_", "acdc_"))):
        if getattr(r, name) != getattr(defaults, name) and (own is None or not name.startswith(own)):
            raise ConfigError(f"recipe.{name} does nothing with recipe {r.name}", param=f"recipe.{name}")
    if r.gmp_initial != defaults.gmp_initial and r.name != "gmp":
        raise ConfigError(f"recipe.gmp_initial is for gmp, not {r.name}", param="recipe.gmp_initial")
    for name in ("gmp_accelerated", "gmp_cubic"):
        if getattr(r, name) != getattr(defaults, name) and r.name != "gmp-star":
            raise ConfigError(f"recipe.{name} is for gmp-star, not {r.name}", param=f"recipe.{name}")
    if r.dst_anneal is not None and r.dst_anneal not in ANNEALS:
        raise ConfigError(f"unknown dst_anneal {r.dst_anneal!r}; choose from: {', '.join(ANNEALS)}")
    if r.name not in DST_RECIPES:
        return
    if r.name in SPARSE_START and (m.method == "none" or m.sparsity == 0.0):
        raise ConfigError(
            f"recipe {r.name} trains a sparse mask from the start: give --prune random --sparsity S "
            "(RigL's default layer densities: --distribution erk)"
        )
    if r.name not in SPARSE_START and (m.method != "none" or m.sparsity == 0.0):
        raise ConfigError(f"recipe {r.name} starts dense and prunes by magnitude: give --sparsity S without --prune")
    if r.name in ("gmp", "gmp-star") and not r.gmp_start < r.gmp_end:
        raise ConfigError(f"recipe {r.name}: gmp_start {r.gmp_start} must come before gmp_end {r.gmp_end}")
    if r.name == "gmp-star" and not r.gmp_accelerated < m.sparsity:
        raise ConfigError(f"recipe gmp-star: gmp_accelerated {r.gmp_accelerated} must be below the target {m.sparsity}")
    if r.name == "gmp" and not r.gmp_initial < m.sparsity:
        raise ConfigError(f"recipe gmp: gmp_initial {r.gmp_initial} must be below the target {m.sparsity}")
