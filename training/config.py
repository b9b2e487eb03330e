"""Frozen, typed run configuration; YAML round trip; the canonical hash that names run folders.

A run is described by :class:`TrainConfig`, made of small frozen dataclasses (data, model, mask,
schedule, optimiser). As in open_lth, the run folder is ``<out>/<name>-<hash>`` where the hash covers
only the *semantic, non-default* leaves (``data.batch_size=64``, ``schedule.cycles=4``, ...). Adding a
new option with a default therefore never changes the hash of an existing run. Fields that cannot
change the numbers a run produces (device, data root, worker count, the run's display name, extra
checkpoints) are marked non-semantic and never enter the hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.checks import (
    AT_LEAST_ONE,
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    OPEN_FRACTION,
    POSITIVE,
    UNIT,
    Range,
)
from training.errors import ConfigError
from training.fields import (
    HASH_LENGTH,
    canonical_string,
    config_hash,
    flat_items,
    from_dict,
    leaf_fields,
    opt,
    parse_overrides,
    replace_dotted,
    section,
    to_dict,
)
from training.yamlio import load_yaml_text


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to train on and how it is batched (see :mod:`training.data`)."""

    name: str = opt("mnist1d", help="Dataset.", flag="--data")
    root: str | None = opt(
        None,
        help="Folder holding the dataset's files (CIFAR, ImageNet); nothing is downloaded.",
        flag="--data-root",
        semantic=False,
    )
    batch_size: int = opt(128, help="Training batch size.", valid=AT_LEAST_ONE)
    eval_batch_size: int = opt(
        1000, help="Batch size for evaluation and BatchNorm recalibration.", semantic=False, valid=AT_LEAST_ONE
    )
    test_every: int = opt(
        1,
        help="Evaluate the test split after every k-th epoch of a cycle and after each cycle's last epoch "
        "(the other epochs' test loss and error are NaN); evaluation never changes training.",
        semantic=False,
        valid=AT_LEAST_ONE,
    )
    num_workers: int = opt(
        0,
        help="DataLoader worker processes (ImageNet, or --loader torch).",
        flag="--workers",
        semantic=False,
        valid=COUNT,
    )
    loader: str = opt(
        "device",
        help="device: in-memory data on the training device, batches augmented there with tensor operations; "
        "torch: DataLoader with per-sample torchvision transforms. They draw augmentations differently.",
    )
    augment: bool = opt(True, help="Training augmentation (CIFAR: crop and flip; ImageNet: random resized crop).")
    synthetic_shape: tuple[int, ...] = opt(
        (3, 32, 32), help="synthetic: shape of one input, e.g. 3,32,32.", valid=AT_LEAST_ONE
    )
    synthetic_classes: int = opt(10, help="synthetic: number of classes.", valid=Range(ge=2, integer=True))
    synthetic_train: int = opt(512, help="synthetic: training samples.", valid=AT_LEAST_ONE)
    synthetic_test: int = opt(256, help="synthetic: test samples.", valid=AT_LEAST_ONE)
    train_samples: int | None = opt(
        None,
        help="Train on a class-balanced subset of this many training samples (a multiple of the class count), "
        "the same subset for every seed; default: all.",
        valid=AT_LEAST_ONE,
    )
    test_samples: int | None = opt(
        None,
        help="Evaluate on a class-balanced subset of this many test samples (a multiple of the class count), "
        "the same subset for every run; default: all.",
        valid=AT_LEAST_ONE,
    )
    mnist1d_test: int = opt(
        1000,
        help="mnist1d: test samples. 1000 is the standard split; any other multiple of 10 is a test set "
        "generated with the standard generator settings and its own seed.",
        valid=Range(ge=10, integer=True),
    )


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: a key of :data:`training.models.MODELS`, an optional width and, for ``vit``, its shape
    (``layers``, ``heads``, ``patch``). Unset fields take the builder's defaults and stay out of the run's
    hash; a field the model's builder does not take is refused in one line."""

    name: str = opt("cnn1d", help="Architecture.", flag="--model")
    width: int | None = opt(
        None,
        help="Width: first-stage channels (CIFAR ResNets, mobilenetv2: 32 is width_mult 1), base channels "
        "(cnn1d), hidden units (mlp), hidden size (vit, a multiple of its heads); default: the model's own.",
        valid=AT_LEAST_ONE,
    )
    layers: int | None = opt(
        None, help="vit: encoder blocks (default 7); refused by the other models.", valid=AT_LEAST_ONE
    )
    heads: int | None = opt(
        None,
        help="vit: attention heads, dividing the width (default 12); refused by the other models.",
        valid=AT_LEAST_ONE,
    )
    patch: int | None = opt(
        None,
        help="vit: patch side in pixels, dividing the image side (default 4); refused by the other models.",
        valid=AT_LEAST_ONE,
    )


@dataclass(frozen=True)
class MaskConfig:
    """How masks are made; see :mod:`training.pruning`. ``method`` prunes at initialisation for the
    ``pai`` and ``sculpt`` (at ``recipe.sculpt_sparsity``) recipes."""

    method: str = opt("none", help="Pruning method for the initial mask (none: dense).", flag="--prune")
    sparsity: float = opt(0.0, help="Target fraction of prunable weights set to zero, in [0, 1).", valid=FRACTION)
    prune_shortcuts: bool = opt(
        True, help="Whether 1x1 shortcut convolutions are prunable.", flag="--prune-shortcuts/--keep-shortcuts-dense"
    )
    prune_last: bool = opt(
        True, help="Whether the last linear layer is prunable.", flag="--prune-last/--keep-last-dense"
    )
    prune_patch_and_head: bool = opt(
        False, help="vit: also prune the patch embedding and the head (default dense, as TurboPrune's DeiT)."
    )
    dense_depthwise: bool = opt(
        False, help="mobilenetv2: keep the first and the depthwise convolutions dense (AC/DC's configurations)."
    )
    distribution: str = opt("uniform", help="random: layer densities.")
    scope: str = opt("global", help="Thresholding of scores: over all layers at once, or per layer.")
    samples_per_class: int = opt(
        10, help="snip/grasp: labelled samples per class that the scores use.", valid=AT_LEAST_ONE
    )
    synflow_rounds: int = opt(100, help="synflow: pruning rounds on the exponential schedule.", valid=AT_LEAST_ONE)
    synflow_float64: bool = opt(True, help="synflow: score in float64 (deep networks overflow float32).")
    grasp_temperature: float = opt(200.0, help="grasp: softmax temperature T.", valid=POSITIVE)
    smart_ratio_variant: str = opt("quadratic", help="random with smart-ratio: the ratio rule (Su et al.'s ablations).")
    smart_ratio_scaling: str = opt(
        "non-resnet",
        help="Smart ratios' division by l^2: on every network that is not a ResNet (Su et al.'s code), "
        "or on VGG only (this toolkit before 0.2).",
    )
    erk: str = opt("rigl", help="random with erk: RigL's iterative solution or TurboPrune's one-shot clamp.")
    mask_op: str = opt("none", help="Sanity check applied to new masks (Su et al.).")


@dataclass(frozen=True)
class RecipeConfig:
    """Which experiment to run; see :mod:`training.recipes` for each recipe's stages."""

    name: str = opt(
        "pai",
        help="Experiment: pruning at init, iterative pruning, SCULPT-ing, hybrid, coupling, or a mask that changes "
        "during training (rigl, set, gmp, gmp-star, acdc).",
        flag="--recipe",
    )
    prune_fraction: float = opt(
        0.2, help="imp/wr/lrr: fraction of the remaining weights pruned per level.", valid=FRACTION
    )
    levels: int | None = opt(
        None, help="imp/wr/lrr: pruning levels (default: as many as reach the target sparsity).", valid=COUNT
    )
    one_shot: bool = opt(
        False, help="imp/wr/lrr: prune to the target sparsity in one level (Su et al.'s LT; one-shot LRR)."
    )
    rewind_epoch: int = opt(
        10,
        help="Dense epochs before the rewind point (wr), also saved as the warmup point (imp, lrr, hybrid).",
        valid=AT_LEAST_ONE,
    )
    wr_schedule: str = opt(
        "full", help="wr: after rewinding, a full new schedule (TurboPrune) or only its remaining epochs (Frankle)."
    )
    level_scope: str = opt("global", help="Magnitude pruning between levels and in SCULPT's step: global or layerwise.")
    sculpt_sparsity: float = opt(0.5, help="sculpt: s0, the sparsity of the first mask.", valid=OPEN_FRACTION)
    sculpt_cycles: int | None = opt(
        None, help="sculpt: C0, cycles before the magnitude step (default: --cycles).", valid=AT_LEAST_ONE
    )
    coupling_init: str = opt("random", help="coupling: where the mask's weights start.")
    mask_from: str | None = opt(None, help="coupling: checkpoint whose mask is trained.")
    warmup_from: str | None = opt(None, help="coupling: checkpoint with the warmup (dense, early) weights.")
    signs_from: str | None = opt(None, help="coupling: checkpoint whose signs are used (default: --mask-from).")
    init_from: str | None = opt(
        None, help="coupling rewind-init: θ₀ of the run that made the mask (default: found from --mask-from)."
    )
    corrupt: str = opt(
        "none",
        help="Sanity check: corrupt the data of all training that produces the mask (the ticket trains on true data).",
    )
    dst_fraction: float = opt(0.3, help="rigl/set: α (ζ), the fraction of each layer's weights dropped and regrown.",
                              valid=OPEN_FRACTION)  # fmt: skip
    dst_interval: int | None = opt(
        None, help="rigl/set: steps between mask updates (default: RigL 100, SET one epoch).", valid=AT_LEAST_ONE
    )
    dst_end: float = opt(0.75, help="rigl/set: no mask update after this fraction of training (T_end).", valid=UNIT)
    dst_anneal: str | None = opt(
        None, help="rigl/set: drop fraction cosine or constant (default: RigL cosine, SET constant)."
    )
    gmp_start: float = opt(0.2, help="gmp/gmp-star: first pruning step, a fraction of training (t0).", valid=FRACTION)
    gmp_end: float = opt(0.77, help="gmp/gmp-star: last pruning step, a fraction of training.", valid=UNIT)
    gmp_interval: int | None = opt(
        None, help="gmp/gmp-star: steps between pruning steps (default: GMP 1000, GMP* 100).", valid=AT_LEAST_ONE
    )
    gmp_initial: float = opt(0.0, help="gmp: s_i, the sparsity the cubic schedule starts from.", valid=FRACTION)
    gmp_scope: str = opt("layerwise", help="gmp/gmp-star: magnitude pruning per layer (Zhu & Gupta) or global.")
    gmp_accelerated: float = opt(0.7, help="gmp-star: the sparsity of the one-shot first pruning step.", valid=FRACTION)
    gmp_cubic: str = opt(
        "span", help="gmp-star: cubic over the pruning span (t - t0)/(t_end - t0), or sparsimony's (t - t0)/t_end."
    )
    acdc_warmup: float = opt(0.05, help="acdc: dense warm-up, a fraction of the epochs.", valid=FRACTION)
    acdc_phase: float = opt(0.1, help="acdc: length of each compressed and decompressed phase.", valid=OPEN_FRACTION)
    acdc_last_dense: float = opt(0.1, help="acdc: least length of the last decompressed phase.", valid=OPEN_FRACTION)
    acdc_final: float = opt(0.15, help="acdc: the final compressed fine-tune, a fraction of the epochs.",
                            valid=OPEN_FRACTION)  # fmt: skip
    rearrange_fill: str = opt(
        "auto",
        help="After --mask-op rearrange, weights for positions the starting state lacks: auto (the state the recipe "
        "rewinds to; for lrr the dense trained level 0; for sculpt θ₀), init (θ₀) or zero.",
    )


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule; see :mod:`training.schedules` for the exact formulas. Every cycle
    restarts the schedule with a fresh optimiser."""

    name: str = opt("one-cycle", help="Learning-rate schedule.", flag="--schedule")
    cycles: int = opt(1, help="Number of cycles.", valid=AT_LEAST_ONE)
    epochs: int = opt(10, help="Epochs per cycle.", valid=AT_LEAST_ONE)
    warmup_fraction: float = opt(0.2, help="Fraction of each cycle spent warming up, in [0, 1).", valid=FRACTION)
    warmup_start: float = opt(0.2, help="Warmup starts at this fraction of the peak rate.", valid=UNIT)
    decay: str = opt("linear", help="Decay after the warmup.")
    skip_warmup: bool = opt(False, help="No warmup after the first cycle.")
    milestones: tuple[float, ...] = opt(
        (0.5, 0.75), help="step: milestones as fractions of a cycle, e.g. 0.5,0.75.", valid=OPEN_FRACTION
    )
    gamma: float = opt(0.1, help="step: factor applied at each milestone.", valid=POSITIVE)


@dataclass(frozen=True)
class OptimConfig:
    """SGD hyper-parameters."""

    lr: float = opt(0.1, help="Peak learning rate of each cycle.", valid=POSITIVE)
    momentum: float = opt(0.9, help="SGD momentum.", valid=FRACTION)
    nesterov: bool = opt(False, help="Nesterov momentum.")
    weight_decay: float = opt(5e-4, help="L2 weight decay.", valid=NON_NEGATIVE)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    ``channels_last`` and ``compile`` are speed options that do not enter the config hash; like the
    device, they can change floating-point rounding.
    """

    data: DataConfig = section(DataConfig, "Dataset and batching.")
    model: ModelConfig = section(ModelConfig, "Architecture.")
    mask: MaskConfig = section(MaskConfig, "Initial mask and pruning options.")
    schedule: ScheduleConfig = section(ScheduleConfig, "Learning-rate schedule.")
    optim: OptimConfig = section(OptimConfig, "SGD.")
    recipe: RecipeConfig = section(RecipeConfig, "Experiment.")
    seed: int = opt(0, help="Seed of initialisation, mask, data order and augmentation.", valid=COUNT)
    data_seed: int | None = opt(
        None,
        help="Seed of the data order and augmentation alone (default: --seed); e.g. one initialisation "
        "trained on two data orders, Frankle et al.'s instability analysis.",
        valid=COUNT,
    )
    amp: str = opt("none", help="Mixed precision for the training forward pass (analyses stay fp32).")
    threads: int = opt(
        1,
        help="Torch CPU threads training uses. CPU results depend on it through floating-point rounding, so "
        "it is part of the run (recorded in the manifest), never taken from how the run was launched.",
        valid=AT_LEAST_ONE,
    )
    name: str = opt("", help="Run folder prefix (default: <model>-<dataset>).", semantic=False)
    device: str = opt("auto", help="auto, cpu, cuda or cuda:N.", semantic=False)
    save_every: int = opt(0, help="Also write epoch_<n>.pt every N epochs (0: never).", semantic=False, valid=COUNT)
    channels_last: bool = opt(False, help="channels_last memory format for 4-D convolutions.", semantic=False)
    compile: bool = opt(False, help="torch.compile the training forward pass.", semantic=False)

    @property
    def run_name(self) -> str:
        """``<name>-<hash>``: the run folder's name."""
        prefix = self.name or f"{self.model.name}-{self.data.name}"
        return f"{prefix}-{config_hash(self)}"


# ---------------------------------------------------------------------------------------------- YAML


def to_yaml(cfg: Any) -> str:
    """YAML text of the full (resolved) config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_yaml_text(text: str, cls: type = TrainConfig, source: str = "config") -> Any:
    """Parse YAML text into ``cls``; unknown keys or wrong types raise :class:`ConfigError`."""
    data = load_yaml_text(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a mapping of config keys, got {type(data).__name__}")
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_yaml(path: str | Path, cls: type = TrainConfig) -> Any:
    """Read a YAML config file into ``cls``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file is not a readable YAML text file: {path}") from exc
    return from_yaml_text(text, cls, source=str(path))


__all__ = [
    "HASH_LENGTH",
    "DataConfig",
    "MaskConfig",
    "ModelConfig",
    "OptimConfig",
    "RecipeConfig",
    "ScheduleConfig",
    "TrainConfig",
    "canonical_string",
    "config_hash",
    "flat_items",
    "from_dict",
    "from_yaml_text",
    "leaf_fields",
    "load_yaml",
    "opt",
    "parse_overrides",
    "replace_dotted",
    "section",
    "to_dict",
    "to_yaml",
]
