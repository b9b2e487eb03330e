"""Named tiers of the figure notebooks' experiments: data, model, budgets, sparsities and seeds.

A :class:`Tier` holds the base :class:`~training.config.TrainConfig` of every run and one frozen
settings object per experiment family. Five tiers are defined in :data:`TIERS`:

* ``quick`` (the default; CI): MNIST-1D, ``cnn1d`` of width 16 (notebook 05: width 32), peak LR 0.1,
  batch 128, a few epochs and 2 seeds, on the CPU in minutes. These are exactly the settings the
  notebooks used before this package existed, so their run hashes and numbers are unchanged.
* ``medium``: the reproduction protocol of ``REPRODUCTION.md`` (Part 1): MNIST-1D with a 10,000-signal
  test set, ``resnet20_1d`` of width 16, SGD (momentum 0.9, peak LR 0.1, weight decay 5e-4), batch 128,
  one-cycle schedules of E = 8 epochs per cycle, 5 paired seeds; every family runs exactly the
  protocol's arms. About 15-25 minutes per claim group on 2 CPU cores (``landscape reproduce``).
* ``medium-images``: the protocol's real-image check (claim P1-1i): Fashion-MNIST (a class-balanced
  10,000-image training subset, read from the Debian package's folder by default), the CIFAR
  ``resnet20`` at width 8, E = 4, 5 seeds.
* ``medium-long``: the medium tier with cycles of E = 16 epochs in the cyclic group (cyclic 4×16 against
  one cycle of 64 epochs, random and SNIP masks at 90%) and the high-sparsity group (SCULPT-ing, LRR
  and cyclic PaI at 95%): whether the verdicts of P1-2, P1-3 and P1-5 depend on E.
* ``full``: CIFAR-10 from a data root on a GPU: the CIFAR ResNet-18 of Paper 1 (TurboPrune's setting
  A: batch 512, peak LR 0.2, weight decay 5e-4) and, for notebook 05, Su et al.'s ResNet-32 of width
  32 with their optimiser (batch 64, LR 0.1, weight decay 1e-4, 160 epochs, ×0.1 at 80 and 120), 3
  seeds. Its deviations from the papers are listed by
  :func:`landscape.experiments.deviations.full_tier_deviations`.

The tier is chosen by ``$LANDSCAPE_TIER`` (:func:`tier_from_env`); ``LANDSCAPE_FULL=1``, the earlier
switch, still means ``full``. A tier whose data lives in files (``data_root`` set) reads them from
``$LANDSCAPE_DATA_ROOT`` when that is set. A new tier is one more entry in :data:`TIERS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from landscape.experiments.review_settings import (
    ArchitectureModel,
    ArchitectureSettings,
    BoostSettings,
    BudgetSettings,
    KeepRatioSettings,
    SharpnessSettings,
)
from training.config import DataConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
from training.errors import UserError


@dataclass(frozen=True)
class CyclicSettings:
    """Notebook 01: PaI masks trained for ``cycles`` cycles of ``epochs`` epochs against one cycle
    of ``cycles × epochs`` epochs (and the ``extra_arms``), at every sparsity (fraction of prunable
    weights set to zero)."""

    cycles: int
    epochs: int
    sparsities: tuple[float, ...]
    methods: tuple[str, ...] = ("random", "snip", "synflow")
    extra_arms: tuple[str, ...] = ()
    """Further arms of the same masks: ``ordinary`` (one cycle of ``epochs`` epochs, Paper 1's headline
    comparison) and ``cosine`` (one cycle of ``cycles × epochs`` epochs with cosine decay)."""


@dataclass(frozen=True)
class ConnectivitySettings:
    """Notebook 02: one mask (``method`` at ``sparsity``), ``cycles`` cycles of ``epochs`` epochs against
    one cycle of the same length. Barriers use ``points`` values of α; the top Hessian eigenvalue
    uses the first ``hessian_batch_size`` unaugmented training samples."""

    cycles: int
    epochs: int
    points: int
    hessian_batch_size: int
    sparsity: float = 0.9
    method: str = "random"


@dataclass(frozen=True)
class CouplingSettings:
    """Notebook 03: an LRR ticket at ``sparsity`` (one-cycle levels of ``epochs`` epochs, pruning
    ``lrr_prune_fraction`` of the remaining weights per level, rewind point after epoch 1), whose mask
    is retrained from each initialisation in ``inits`` under each of ``schedules``: ``one-cycle`` (one
    cycle of ``cycles × epochs`` epochs) and ``cyclic`` (``cycles`` cycles of ``epochs`` epochs). With
    ``ticket_per_seed`` every seed has its own LRR ticket (the LRR run of that seed supplies the mask
    and the warmup point), else one ticket of the base seed serves all seeds."""

    epochs: int
    cycles: int
    sparsity: float
    lrr_prune_fraction: float
    inits: tuple[str, ...] = ("random", "warmup", "warmup-signs", "random-signs")
    schedules: tuple[str, ...] = ("one-cycle", "cyclic")
    ticket_per_seed: bool = False


@dataclass(frozen=True)
class SculptSettings:
    """Notebook 04: at every target sparsity, SCULPT-ing from a random ERK mask at each of
    ``start_sparsities`` (``cycles`` cycles of ``epochs`` epochs, a magnitude step, one more cycle)
    against LRR (one-cycle levels of ``epochs`` epochs) and cyclic PaI (``pai_cycles`` cycles, default
    ``cycles + 1``: the same cost as SCULPT-ing)."""

    epochs: int
    cycles: int
    targets: tuple[float, ...]
    lrr_prune_fraction: float
    start_sparsities: tuple[float, ...] = (0.2, 0.5, 0.7)
    pai_cycles: int | None = None


@dataclass(frozen=True)
class SanitySettings:
    """Notebook 05 (Su et al. 2020): every method trained with ``schedule`` on ``model`` at ``sparsity``;
    LT (IMP) and LRR prune ``prune_fraction`` per level, or to the target in one level with
    ``one_shot`` (Su et al.'s LT). ``seeds`` overrides the tier's seeds; ``optim`` and ``batch_size``
    the tier's optimiser and batch size. ``checks`` (default: all of
    :data:`~landscape.experiments.sanity.CHECKS`) are applied to every method. ``tickets`` (default:
    all) are trained at each of ``ticket_sparsities`` (default: ``sparsity``), except ``hybrid`` and
    ``lrr``, trained at each of ``hybrid_sparsities`` (default: ``sparsity``)."""

    schedule: ScheduleConfig
    model: ModelConfig
    sparsity: float
    prune_fraction: float
    seeds: tuple[int, ...] | None = None
    one_shot: bool = False
    optim: OptimConfig | None = None
    batch_size: int | None = None
    checks: tuple[str, ...] | None = None
    tickets: tuple[str, ...] | None = None
    ticket_sparsities: tuple[float, ...] | None = None
    hybrid_sparsities: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SurfaceSettings:
    """Notebook 06: surfaces on a ``grid × grid`` lattice around a cyclic (``cycles × epochs``) and a
    one-cycle solution of the same mask, and the plane through the last three cycle checkpoints."""

    cycles: int
    epochs: int
    grid: int
    sparsity: float = 0.9
    method: str = "random"


@dataclass(frozen=True)
class Tier:
    """One scale of all the experiments. ``base`` is the config every run starts from; ``seeds`` are
    paired (every compared setting uses the same seeds). ``data_root`` is the default folder of
    datasets that live in files (``None``: the data is generated, as MNIST-1D)."""

    name: str
    base: TrainConfig
    seeds: tuple[int, ...]
    cyclic: CyclicSettings
    connectivity: ConnectivitySettings
    coupling: CouplingSettings
    sculpting: SculptSettings
    sanity: SanitySettings
    surfaces: SurfaceSettings
    data_root: str | None = None
    budget: BudgetSettings | None = None
    boost: BoostSettings | None = None
    sharpness: SharpnessSettings | None = None
    keep_ratios: KeepRatioSettings | None = None
    architectures: ArchitectureSettings | None = None

    def group_settings(self, field: str, group: str):
        """The settings object ``field`` of the claim group ``group``, refused in one line when absent."""
        value = getattr(self, field)
        if value is None:
            raise UserError(f"tier {self.name!r} has no settings for the {group} group", param="tier")
        return value

    @property
    def sanity_seeds(self) -> tuple[int, ...]:
        """The seeds of notebook 05 (its own, when set, else the tier's)."""
        return self.sanity.seeds or self.seeds

    def with_data_root(self, root: str) -> Tier:
        """The tier with its base config reading data from ``root`` (the root never enters a run's hash)."""
        return replace(self, base=replace(self.base, data=replace(self.base.data, root=root)), data_root=root)


QUICK = Tier(
    name="quick",
    base=TrainConfig(
        data=DataConfig(name="mnist1d", batch_size=128),
        model=ModelConfig(name="cnn1d", width=16),
        optim=OptimConfig(lr=0.1, weight_decay=5e-4),
        device="auto",
    ),
    seeds=(0, 1),
    cyclic=CyclicSettings(cycles=4, epochs=3, sparsities=(0.5, 0.9, 0.98)),
    connectivity=ConnectivitySettings(cycles=4, epochs=3, points=11, hessian_batch_size=512),
    coupling=CouplingSettings(epochs=4, cycles=3, sparsity=0.9, lrr_prune_fraction=0.5),
    sculpting=SculptSettings(epochs=3, cycles=3, targets=(0.9, 0.95), lrr_prune_fraction=0.5),
    sanity=SanitySettings(
        schedule=ScheduleConfig(name="one-cycle", epochs=6),
        model=ModelConfig(name="cnn1d", width=32),
        sparsity=0.9,
        prune_fraction=0.7,
    ),
    surfaces=SurfaceSettings(cycles=4, epochs=3, grid=11),
    budget=BudgetSettings(
        sparsities=(0.9,), epochs=12, cycle_epochs=3, sculpt_cycles=3, lrr_prune_fraction=0.5, pai_cycles=4, interval=16
    ),
    boost=BoostSettings(cycles=4, epochs=3, sparsities=(0.5, 0.9, 0.98)),
    sharpness=SharpnessSettings(sparsity=0.9, methods=("random", "snip"), samples=256, max_iter=50, trace_matvecs=30),
    keep_ratios=KeepRatioSettings(sparsities=(0.9,)),
)

# The protocol's arms (REPRODUCTION.md, Part 1); every coupling arm of training.recipes.
COUPLING_ARMS = ("random", "rewind-init", "warmup", "warmup-signs", "random-signs")
PROTOCOL_CHECKS = ("original", "random-labels", "rearrange")
PROTOCOL_TICKETS = ("smart-ratio random", "snip", "grasp", "hybrid", "lrr")
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"  # the Debian package dataset-fashion-mnist

MEDIUM = Tier(
    name="medium",
    base=TrainConfig(
        data=DataConfig(name="mnist1d", batch_size=128, mnist1d_test=10000, test_every=8),
        model=ModelConfig(name="resnet20_1d", width=16),
        optim=OptimConfig(lr=0.1, momentum=0.9, weight_decay=5e-4),
        device="auto",
    ),
    seeds=(0, 1, 2, 3, 4),
    cyclic=CyclicSettings(
        cycles=4, epochs=8, sparsities=(0.9,), methods=("random", "snip"), extra_arms=("ordinary", "cosine")
    ),
    connectivity=ConnectivitySettings(cycles=4, epochs=8, points=11, hessian_batch_size=512),
    coupling=CouplingSettings(
        epochs=8,
        cycles=4,
        sparsity=0.95,
        lrr_prune_fraction=0.2,
        inits=COUPLING_ARMS,
        schedules=("cyclic",),
        ticket_per_seed=True,
    ),
    sculpting=SculptSettings(
        epochs=8, cycles=3, targets=(0.95,), lrr_prune_fraction=0.2, start_sparsities=(0.5,), pai_cycles=15
    ),
    sanity=SanitySettings(
        schedule=ScheduleConfig(name="one-cycle", epochs=16),
        model=ModelConfig(name="resnet20_1d", width=16),
        sparsity=0.9,
        prune_fraction=0.2,
        one_shot=True,
        checks=PROTOCOL_CHECKS,
        tickets=PROTOCOL_TICKETS,
        ticket_sparsities=(0.9, 0.95),
        hybrid_sparsities=(0.95,),
    ),
    surfaces=SurfaceSettings(cycles=4, epochs=8, grid=11),
    budget=BudgetSettings(
        sparsities=(0.9, 0.95),
        epochs=32,
        cycle_epochs=8,
        sculpt_cycles=3,
        lrr_prune_fraction=0.2,
        pai_cycles=4,
        interval=16,
    ),
    boost=BoostSettings(cycles=4, epochs=8, sparsities=(0.5, 0.8, 0.9, 0.95, 0.98)),
    sharpness=SharpnessSettings(sparsity=0.9, methods=("random", "snip"), samples=1024),
    keep_ratios=KeepRatioSettings(sparsities=(0.9, 0.95)),
)

MEDIUM_IMAGES = replace(
    MEDIUM,
    name="medium-images",
    base=replace(
        MEDIUM.base,
        data=DataConfig(name="fashion-mnist", train_samples=10000),
        model=ModelConfig(name="resnet20", width=8),
    ),
    cyclic=CyclicSettings(cycles=3, epochs=4, sparsities=(0.9,), methods=("random",), extra_arms=("ordinary",)),
    connectivity=ConnectivitySettings(cycles=3, epochs=4, points=11, hessian_batch_size=512),
    coupling=replace(MEDIUM.coupling, epochs=4, cycles=3),
    sculpting=replace(MEDIUM.sculpting, epochs=4, pai_cycles=15),
    sanity=replace(
        MEDIUM.sanity, schedule=ScheduleConfig(name="one-cycle", epochs=8), model=ModelConfig(name="resnet20", width=8)
    ),
    surfaces=SurfaceSettings(cycles=3, epochs=4, grid=11),
    data_root=FASHION_MNIST_ROOT,
)

FULL = Tier(
    name="full",
    base=TrainConfig(
        data=DataConfig(name="cifar10", root="/data", batch_size=512, num_workers=8),
        model=ModelConfig(name="resnet18"),
        optim=OptimConfig(lr=0.2, weight_decay=5e-4),
        device="cuda",
    ),
    seeds=(0, 1, 2),
    cyclic=CyclicSettings(
        cycles=5, epochs=30, sparsities=(0.5, 0.7, 0.9, 0.95, 0.98), extra_arms=("ordinary", "cosine")
    ),
    connectivity=ConnectivitySettings(cycles=5, epochs=30, points=31, hessian_batch_size=1024),
    coupling=CouplingSettings(
        epochs=30, cycles=5, sparsity=0.95, lrr_prune_fraction=0.2, inits=COUPLING_ARMS, ticket_per_seed=True
    ),
    sculpting=SculptSettings(epochs=30, cycles=4, targets=(0.9, 0.95, 0.98), lrr_prune_fraction=0.2),
    sanity=SanitySettings(
        schedule=ScheduleConfig(name="step", epochs=160),
        model=ModelConfig(name="resnet32", width=32),
        sparsity=0.95,
        prune_fraction=0.2,
        one_shot=True,
        optim=OptimConfig(lr=0.1, weight_decay=1e-4),
        batch_size=64,
        ticket_sparsities=(0.9, 0.95, 0.98),
    ),
    surfaces=SurfaceSettings(cycles=5, epochs=30, grid=31),
    data_root="/data",
)

# The cycle-length check, added after the medium results: the cyclic group with cycles twice as long
# (E = 16), only the arms P1-2 and P1-3 compare (cyclic C×E against one cycle of C·E epochs), and the
# high-sparsity group (P1-4, P1-5) with E = 16 for SCULPT-ing, LRR's levels and cyclic PaI. Every other
# group is the medium one.
MEDIUM_LONG = replace(
    MEDIUM,
    name="medium-long",
    cyclic=CyclicSettings(cycles=4, epochs=16, sparsities=(0.9,), methods=("random", "snip")),
    sculpting=replace(MEDIUM.sculpting, epochs=16),
)

# The architectures group (registered in REPRODUCTION.md Part 1 before its runs): a small ViT and a
# MobileNetV2 on Fashion-MNIST subsets, each with its own cycle length and batch size (chosen in pilots:
# the ViT needs many small steps; the MobileNetV2 costs ~12× the ViT per training image on a CPU core).
# Evaluation only at cycle ends; channels_last makes the MobileNetV2 ~1.5× faster on the CPU.
MEDIUM_ARCHITECTURES = replace(
    MEDIUM,
    name="medium-architectures",
    base=replace(
        MEDIUM.base,
        data=DataConfig(name="fashion-mnist", train_samples=2000, test_samples=2000, test_every=10),
        channels_last=True,
    ),
    architectures=ArchitectureSettings(
        models=(
            ArchitectureModel(ModelConfig(name="vit", width=64, layers=4, heads=4, patch=7), epochs=10, batch_size=32),
            ArchitectureModel(ModelConfig(name="mobilenetv2", width=8), epochs=3, batch_size=64),
        ),
        sparsity=0.9,
        cycles=3,
        lrr_prune_fraction=0.5,
    ),
    data_root=FASHION_MNIST_ROOT,
)

TIERS: dict[str, Tier] = {
    tier.name: tier for tier in (QUICK, MEDIUM, MEDIUM_IMAGES, MEDIUM_LONG, MEDIUM_ARCHITECTURES, FULL)
}


def get_tier(name: str, *, data_root: str | None = None) -> Tier:
    """The tier called ``name``; ``data_root`` replaces its default data folder (tiers with file data only)."""
    if name not in TIERS:
        raise UserError(f"unknown tier name {name!r}; choose from: {', '.join(TIERS)}", param="name")
    tier = TIERS[name]
    if tier.data_root is not None and data_root:
        tier = tier.with_data_root(data_root)
    return tier


def tier_from_env(environ: Mapping[str, str] | None = None) -> Tier:
    """The tier named by ``$LANDSCAPE_TIER`` (default ``quick``; ``LANDSCAPE_FULL=1`` means ``full``),
    with ``$LANDSCAPE_DATA_ROOT`` as its data folder when set."""
    env = os.environ if environ is None else environ
    name = env.get("LANDSCAPE_TIER") or ("full" if env.get("LANDSCAPE_FULL", "0") == "1" else "quick")
    if name not in TIERS:
        raise UserError(f"LANDSCAPE_TIER={name!r} is not a tier; choose from: {', '.join(TIERS)}")
    return get_tier(name, data_root=env.get("LANDSCAPE_DATA_ROOT"))
