"""Frozen, typed run configuration; YAML round trip; the canonical hash that names run folders.

A run is described by :class:`TrainConfig`, made of small frozen dataclasses (data, model, mask,
schedule, optimiser). As in open_lth, the run folder is ``<out>/<name>-<hash>`` where the hash covers
only the *semantic, non-default* leaves (``data.batch_size=64``, ``schedule.cycles=4``, ...). Adding a
new option with a default therefore never changes the hash of an existing run. Fields that cannot
change the numbers a run produces (device, data root, worker count, the run's display name, extra
checkpoints) are marked non-semantic and never enter the hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.errors import ConfigError

NONSEMANTIC = {"semantic": False}
HASH_LENGTH = 12


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to train on and how it is batched.

    ``name`` is a key of :data:`training.data.DATASETS`. ``root`` is the folder holding CIFAR or
    ImageNet files (unused by ``mnist1d`` and ``synthetic``). ``synthetic_*`` fields describe the
    deterministic synthetic dataset and are ignored by the others.
    """

    name: str = "mnist1d"
    root: str | None = field(default=None, metadata=NONSEMANTIC)
    batch_size: int = 128
    eval_batch_size: int = field(default=1000, metadata=NONSEMANTIC)
    num_workers: int = field(default=0, metadata=NONSEMANTIC)
    augment: bool = True
    synthetic_shape: tuple[int, ...] = (3, 32, 32)
    synthetic_classes: int = 10
    synthetic_train: int = 512
    synthetic_test: int = 256


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: a key of :data:`training.models.MODELS` and an optional width.

    ``width`` means the first stage's channel count for the CIFAR ResNets, the base channel count
    for ``cnn1d`` and the hidden size for ``mlp``; ``None`` keeps each model's default.
    """

    name: str = "cnn1d"
    width: int | None = None


@dataclass(frozen=True)
class MaskConfig:
    """How masks are made; see :func:`training.pruning.prune`.

    ``method``: ``none`` (dense), ``random``, ``magnitude``, ``snip``, ``grasp`` or ``synflow``; it
    prunes at initialisation for the ``pai``, ``sculpt`` (at ``recipe.sculpt_sparsity``) recipes.
    ``sparsity``: the target fraction of prunable weights set to zero, in [0, 1).
    ``prune_shortcuts`` / ``prune_last``: whether 1x1 shortcut convolutions and the final linear layer
    are prunable. ``distribution`` (random): uniform, erk, er-balanced or smart-ratio, with
    ``smart_ratio_variant`` and ``erk`` (rigl or clamp). ``scope``: global or layerwise thresholding.
    ``samples_per_class``: labelled samples for SNIP/GraSP. ``synflow_rounds``/``synflow_float64``,
    ``grasp_temperature``: scorer options. ``mask_op``: a sanity-check operation applied to every
    newly made mask before training (``rearrange`` or ``shuffle-weights``).
    """

    method: str = "none"
    sparsity: float = 0.0
    prune_shortcuts: bool = True
    prune_last: bool = True
    distribution: str = "uniform"
    scope: str = "global"
    samples_per_class: int = 10
    synflow_rounds: int = 100
    synflow_float64: bool = True
    grasp_temperature: float = 200.0
    smart_ratio_variant: str = "quadratic"
    erk: str = "rigl"
    mask_op: str = "none"


@dataclass(frozen=True)
class RecipeConfig:
    """Which experiment to run; see :mod:`training.recipes` for each recipe's stages.

    ``name``: pai (default), imp, wr, lrr, sculpt, hybrid or coupling.
    ``prune_fraction``: fraction of the remaining weights pruned per IMP/WR/LRR level (0.2);
    ``levels``: number of pruning levels (``None``: as many as reach ``mask.sparsity``).
    ``rewind_epoch``: epochs of dense training before the WR rewind point, also saved as the warmup
    point ``level_0/rewind.pt`` by imp/lrr/hybrid (10). ``wr_schedule``: after rewinding, train a
    full schedule (``full``, TurboPrune) or only its remaining epochs (``remaining``, Frankle).
    ``level_scope``: global or layerwise magnitude pruning between levels and in SCULPT's step.
    ``sculpt_sparsity``/``sculpt_cycles``: SCULPT's s0 (0.5) and C0 (default: ``schedule.cycles``).
    ``coupling_init``: random, warmup, warmup-signs or random-signs; ``mask_from``, ``warmup_from``,
    ``signs_from``: checkpoints that supply the mask, the warmup weights and the signs.
    ``corrupt``: none, random-labels, random-pixels or half-data, applied to the data used for pruning
    scores and for level-0 pretraining (tickets then train on the true data).
    """

    name: str = "pai"
    prune_fraction: float = 0.2
    levels: int | None = None
    rewind_epoch: int = 10
    wr_schedule: str = "full"
    level_scope: str = "global"
    sculpt_sparsity: float = 0.5
    sculpt_cycles: int | None = None
    coupling_init: str = "random"
    mask_from: str | None = None
    warmup_from: str | None = None
    signs_from: str | None = None
    corrupt: str = "none"


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule; see :mod:`training.schedules` for the exact formulas.

    ``cycles`` cycles of ``epochs`` epochs each; every cycle restarts the schedule with a fresh
    optimiser. ``milestones`` (``step`` only) are fractions of a cycle.
    """

    name: str = "one-cycle"
    cycles: int = 1
    epochs: int = 10
    warmup_fraction: float = 0.2
    warmup_start: float = 0.2
    decay: str = "linear"
    skip_warmup: bool = False
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1


@dataclass(frozen=True)
class OptimConfig:
    """SGD hyper-parameters; ``lr`` is the peak learning rate of each cycle."""

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    ``seed`` fixes initialisation, mask, data order and augmentation. ``amp`` (none, bf16, fp16)
    runs the training forward pass in mixed precision (analyses stay fp32). ``save_every`` > 0 also
    writes ``epoch_<n>.pt`` every n epochs. ``name`` prefixes the run folder (default
    ``<model>-<dataset>``). ``channels_last`` and ``compile`` are speed options that do not enter
    the config hash; like the device, they can change floating-point rounding.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    seed: int = 0
    amp: str = "none"
    name: str = field(default="", metadata=NONSEMANTIC)
    device: str = field(default="auto", metadata=NONSEMANTIC)
    save_every: int = field(default=0, metadata=NONSEMANTIC)
    channels_last: bool = field(default=False, metadata=NONSEMANTIC)
    compile: bool = field(default=False, metadata=NONSEMANTIC)

    @property
    def run_name(self) -> str:
        """``<name>-<hash>``: the run folder's name."""
        prefix = self.name or f"{self.model.name}-{self.data.name}"
        return f"{prefix}-{config_hash(self)}"


# --------------------------------------------------------------------------------------------- dicts


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists) suitable for YAML or JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return plain(cfg)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists to tuples, int to float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {where}")  # pragma: no cover


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, refusing unknown keys and wrong types."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; valid keys: {', '.join(prefix + k for k in known)}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        path = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a mapping, got {value!r}")
            kwargs[name] = from_dict(tp, value, path)
        else:
            kwargs[name] = _coerce(value, tp, path)
    return cls(**kwargs)


def flat_items(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, Any, bool]]:
    """``{dotted.name: (value, default, semantic)}`` over every leaf of a config dataclass."""
    out: dict[str, tuple[Any, Any, bool]] = {}
    default_obj = type(cfg)()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = prefix + f.name
        semantic = f.metadata.get("semantic", True)
        if dataclasses.is_dataclass(value):
            for k, (v, d, s) in flat_items(value, key + ".").items():
                out[k] = (v, d, s and semantic)
        else:
            out[key] = (value, getattr(default_obj, f.name), semantic)
    return out


def canonical_string(cfg: Any) -> str:
    """Sorted JSON of the semantic leaves that differ from their defaults."""
    items = {k: v for k, (v, d, semantic) in flat_items(cfg).items() if semantic and v != d}
    return json.dumps(to_dict(items), sort_keys=True, separators=(",", ":"))


def config_hash(cfg: Any) -> str:
    """First 12 hex digits of the sha256 of :func:`canonical_string`."""
    return hashlib.sha256(canonical_string(cfg).encode()).hexdigest()[:HASH_LENGTH]


def replace_dotted(cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """Return ``cfg`` with ``{"schedule.cycles": 4, "seed": 1}``-style overrides applied and type-checked."""
    data = to_dict(cfg)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return from_dict(type(cfg), data)


# ---------------------------------------------------------------------------------------------- YAML


def to_yaml(cfg: Any) -> str:
    """YAML text of the full (resolved) config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_yaml_text(text: str, cls: type = TrainConfig, source: str = "config") -> Any:
    """Parse YAML text into ``cls``; unknown keys or wrong types raise :class:`ConfigError`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
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


# ------------------------------------------------------------------------------------------ validate


def _check_choice(kind: str, value: str, registry: Mapping[str, Any]) -> None:
    if value not in registry:
        raise ConfigError(f"unknown {kind} {value!r}; choose from: {', '.join(sorted(registry))}")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check ranges and registry names; return ``cfg`` unchanged or raise :class:`ConfigError`."""
    from training.data import CORRUPTIONS, DATASETS
    from training.models import MODELS
    from training.pruning import DISTRIBUTIONS, METHODS, SCOPES, SMART_RATIO_VARIANTS
    from training.recipes import COUPLING_INITS, MASK_OPS, RECIPES
    from training.schedules import DECAYS, SCHEDULES

    _check_choice("dataset", cfg.data.name, DATASETS)
    _check_choice("model", cfg.model.name, MODELS)
    _check_choice("pruning method", cfg.mask.method, dict.fromkeys(("none", *METHODS)))
    _check_choice("recipe", cfg.recipe.name, RECIPES)
    _check_choice("layer distribution", cfg.mask.distribution, DISTRIBUTIONS)
    _check_choice("scope", cfg.mask.scope, dict.fromkeys(SCOPES))
    _check_choice("level scope", cfg.recipe.level_scope, dict.fromkeys(SCOPES))
    _check_choice("smart-ratio variant", cfg.mask.smart_ratio_variant, SMART_RATIO_VARIANTS)
    _check_choice("erk variant", cfg.mask.erk, dict.fromkeys(("rigl", "clamp")))
    _check_choice("mask operation", cfg.mask.mask_op, MASK_OPS)
    _check_choice("corruption", cfg.recipe.corrupt, CORRUPTIONS)
    _check_choice("coupling init", cfg.recipe.coupling_init, COUPLING_INITS)
    _check_choice("amp", cfg.amp, dict.fromkeys(("none", "bf16", "fp16")))
    _check_choice("wr schedule", cfg.recipe.wr_schedule, dict.fromkeys(("full", "remaining")))
    _check_choice("schedule", cfg.schedule.name, SCHEDULES)
    _check_choice("decay", cfg.schedule.decay, DECAYS)
    if cfg.name and (cfg.name in (".", "..") or any(c in cfg.name for c in "/\\\0")):
        raise ConfigError(f"run name {cfg.name!r} must be a plain folder name (no path separators or '..')")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"unknown device {cfg.device!r}; choose from: auto, cpu, cuda, cuda:N")
    s = cfg.mask.sparsity
    if not 0.0 <= s < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {s}")
    _validate_recipe(cfg)
    sched = cfg.schedule
    positive = {
        "schedule.epochs": sched.epochs,
        "schedule.cycles": sched.cycles,
        "data.batch_size": cfg.data.batch_size,
        "data.eval_batch_size": cfg.data.eval_batch_size,
        "optim.lr": cfg.optim.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if sched.name == "one-cycle" and sched.cycles != 1:
        raise ConfigError(
            "schedule one-cycle has exactly one cycle; for the budget of C cycles of E epochs use "
            "--cycles 1 --epochs C*E, or --schedule cyclic"
        )
    if not 0.0 <= sched.warmup_fraction < 1.0:
        raise ConfigError(f"warmup_fraction must be in [0, 1), got {sched.warmup_fraction}")
    if not 0.0 <= sched.warmup_start <= 1.0:
        raise ConfigError(f"warmup_start must be in [0, 1], got {sched.warmup_start}")
    if any(not 0.0 < m < 1.0 for m in sched.milestones):
        raise ConfigError(f"milestones are fractions of a cycle in (0, 1), got {list(sched.milestones)}")
    if cfg.optim.momentum < 0 or cfg.optim.weight_decay < 0:
        raise ConfigError("momentum and weight_decay must be non-negative")
    if cfg.optim.nesterov and cfg.optim.momentum == 0:
        raise ConfigError("nesterov needs a positive momentum")
    if cfg.data.num_workers < 0 or cfg.save_every < 0:
        raise ConfigError("num_workers and save_every must be non-negative")
    if cfg.model.width is not None and cfg.model.width <= 0:
        raise ConfigError(f"model width must be positive, got {cfg.model.width}")
    if cfg.mask.samples_per_class < 1 or cfg.mask.synflow_rounds < 1:
        raise ConfigError("samples_per_class and synflow_rounds must be at least 1")
    return cfg


def _validate_recipe(cfg: TrainConfig) -> None:
    r, m = cfg.recipe, cfg.mask
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
        if r.sculpt_cycles is not None and r.sculpt_cycles < 1:
            raise ConfigError("sculpt_cycles must be at least 1")
    if r.name in ("imp", "wr", "lrr", "hybrid"):
        if m.method not in ("none", "magnitude"):
            raise ConfigError(f"recipe {r.name} prunes by magnitude between levels; drop --prune {m.method}")
        if m.sparsity == 0.0 and r.levels is None:
            raise ConfigError(f"recipe {r.name} needs a target --sparsity in (0, 1)")
        if not 0.0 <= r.prune_fraction < 1.0:
            raise ConfigError(f"prune_fraction must be in [0, 1), got {r.prune_fraction}")
        if r.prune_fraction == 0.0 and r.levels is None:
            raise ConfigError("prune_fraction 0 never reaches the target; give --levels")
        if r.levels is not None and r.levels < 0:
            raise ConfigError("levels must be non-negative")
        if r.rewind_epoch < 1:
            raise ConfigError("rewind_epoch must be at least 1")
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
    elif r.mask_from or r.warmup_from or r.signs_from:
        raise ConfigError("--mask-from, --warmup-from and --signs-from belong to recipe coupling")
