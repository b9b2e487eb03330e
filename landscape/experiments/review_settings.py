"""Settings of the claim groups added for the papers' reviewers (``REPRODUCTION.md`` Part 1, "Claims
added for the reviewers' questions"): one frozen object per group, held by a
:class:`~landscape.experiments.settings.Tier`.

* :class:`BudgetSettings` (``budget``): SCULPT against LRR, cyclic PaI, RigL (1× and 2×), SET, GMP,
  GMP*, AC/DC and dense training, each at its own reference budget, on a training-FLOPs axis;
* :class:`BoostSettings` (``boost-vs-sparsity``): cyclic C×E against ordinary E epochs of random ERK
  masks at several sparsities, and the slope of the boost against ``x = −log10(1 − sparsity)``;
* :class:`SharpnessSettings` (``sharpness``): the top Hessian eigenvalue of P1-2's arms;
* :class:`KeepRatioSettings` (``keep-ratios``): per-layer keep ratios of the methods against smart ratios.

The ``coupling-ordinary`` group reuses the tier's :class:`~landscape.experiments.settings.CouplingSettings`
with :data:`COUPLING_ORDINARY_INITS` and both schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.config import ModelConfig

#: Initialisations of the ``coupling-ordinary`` group (P1-6a/b), each under cyclic and one-cycle training.
COUPLING_ORDINARY_INITS = ("random", "warmup")

#: The baselines of the ``budget`` group besides SCULPT, in the figure's order (labels of its ``method``).
BUDGET_BASELINES = ("lrr", "cyclic PaI", "rigl", "set", "gmp", "gmp-star", "acdc", "dense")


@dataclass(frozen=True)
class BudgetSettings:
    """At every sparsity: SCULPT (a random ERK mask at ``sculpt_start``, ``sculpt_cycles`` cycles of
    ``cycle_epochs`` epochs, one global magnitude step to the target, one more cycle), LRR (one-cycle
    levels of ``cycle_epochs`` epochs pruning ``lrr_prune_fraction`` per level, rewind point after epoch
    1), cyclic PaI (``pai_cycles`` cycles of ``cycle_epochs`` on a random ERK mask at the target), and
    RigL, SET, GMP, GMP* and AC/DC for ``epochs`` epochs (T, the dense training length; RigL also at
    each of ``rigl_multipliers`` × T). ``interval``: RigL's ΔT and GMP's Δt, in steps. Dense training
    for ``epochs`` epochs is shared by the sparsities."""

    sparsities: tuple[float, ...]
    epochs: int
    cycle_epochs: int
    sculpt_cycles: int
    lrr_prune_fraction: float
    pai_cycles: int
    interval: int
    sculpt_start: float = 0.5
    rigl_multipliers: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class BoostSettings:
    """Cyclic ``cycles`` × ``epochs`` against ordinary ``epochs`` (P1-1's arms) of a random mask with
    ``distribution`` layer densities at every sparsity."""

    cycles: int
    epochs: int
    sparsities: tuple[float, ...]
    distribution: str = "erk"


@dataclass(frozen=True)
class SharpnessSettings:
    """λ_max of the final cyclic and one-cycle solutions of the tier's cyclic group at ``sparsity`` for
    ``methods``, on one fixed batch of the first ``samples`` unaugmented training samples (eval mode,
    mean cross-entropy), Lanczos to relative ``tol`` within ``max_iter`` products; ``trace_matvecs``
    products for the Hutch++ trace of each final solution."""

    sparsity: float
    methods: tuple[str, ...]
    samples: int
    tol: float = 1e-3
    max_iter: int = 100
    trace_matvecs: int = 60


@dataclass(frozen=True)
class KeepRatioSettings:
    """Per-layer keep ratios at every sparsity of ``methods`` pruned at initialisation (one mask per
    seed), of ERK and smart ratios (rules), and of the final masks of the ``budget`` group's LRR and
    RigL runs."""

    sparsities: tuple[float, ...]
    methods: tuple[str, ...] = ("snip", "grasp", "synflow")


@dataclass(frozen=True)
class ArchitectureModel:
    """One model of the ``architectures`` group: its config (name, width and, for the ViT, shape), the cycle
    length ``epochs`` (E) and the training batch size, chosen per model (the ViT needs more and smaller
    steps than the MobileNetV2 at a fraction of its cost per image)."""

    model: ModelConfig
    epochs: int
    batch_size: int


@dataclass(frozen=True)
class ArchitectureSettings:
    """Beyond ResNets: for every model of ``models``, P1-1's arms (cyclic ``cycles`` × E against ordinary
    E epochs, each of ``methods`` at ``sparsity``) and P1-4/P1-5's (LRR pruning ``lrr_prune_fraction`` per
    one-cycle level of E epochs; cyclic PaI on a random ERK mask for as many cycles of E as LRR trains;
    SCULPT from ERK at ``sculpt_start``, ``sculpt_cycles`` cycles, one magnitude step, one more cycle).
    ``dense_depthwise``: MobileNetV2's first and depthwise convolutions stay dense (a random mask leaves
    most 3×3 depthwise kernels with 0 or 1 weight)."""

    models: tuple[ArchitectureModel, ...]
    sparsity: float
    cycles: int
    methods: tuple[str, ...] = ("random", "snip")
    lrr_prune_fraction: float = 0.2
    sculpt_start: float = 0.5
    sculpt_cycles: int = 3
    dense_depthwise: bool = True
