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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.errors import ConfigError

HASH_LENGTH = 12


def opt(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None, semantic: bool = True) -> Any:
    """A config field with its help text (shown by ``landscape train --help``).

    ``flag`` overrides the command-line spelling (default ``--<field-name>``; for booleans
    ``--<name>/--no-<name>``, or e.g. ``--prune-last/--keep-last-dense``). Non-``semantic`` fields
    cannot change the numbers a run produces and never enter the config hash.
    """
    metadata: dict[str, Any] = {"help": help, "semantic": semantic}
    if flag is not None:
        metadata["flag"] = flag
    return field(default=default, metadata=metadata)


def section(cls: type, help: str) -> Any:
    """A nested config section (a dataclass field with a default instance)."""
    return field(default_factory=cls, metadata={"help": help, "semantic": True})


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
    batch_size: int = opt(128, help="Training batch size.")
    eval_batch_size: int = opt(1000, help="Batch size for evaluation and BatchNorm recalibration.", semantic=False)
    num_workers: int = opt(
        0, help="DataLoader worker processes (ImageNet, or --loader torch).", flag="--workers", semantic=False
    )
    loader: str = opt(
        "device",
        help="device: in-memory data on the training device, batches augmented there with tensor operations; "
        "torch: DataLoader with per-sample torchvision transforms. They draw augmentations differently.",
    )
    augment: bool = opt(True, help="Training augmentation (CIFAR: crop and flip; ImageNet: random resized crop).")
    synthetic_shape: tuple[int, ...] = opt((3, 32, 32), help="synthetic: shape of one input, e.g. 3,32,32.")
    synthetic_classes: int = opt(10, help="synthetic: number of classes.")
    synthetic_train: int = opt(512, help="synthetic: training samples.")
    synthetic_test: int = opt(256, help="synthetic: test samples.")
    train_samples: int | None = opt(
        None,
        help="Train on a class-balanced subset of this many training samples (a multiple of the class count), "
        "the same subset for every seed; default: all.",
    )
    mnist1d_test: int = opt(
        1000,
        help="mnist1d: test samples. 1000 is the standard split; any other multiple of 10 is a test set "
        "generated with the standard generator settings and its own seed.",
    )


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: a key of :data:`training.models.MODELS` and an optional width."""

    name: str = opt("cnn1d", help="Architecture.", flag="--model")
    width: int | None = opt(
        None,
        help="Width: first-stage channels (CIFAR ResNets), base channels (cnn1d), hidden units (mlp); "
        "default: the model's own.",
    )


@dataclass(frozen=True)
class MaskConfig:
    """How masks are made; see :mod:`training.pruning`. ``method`` prunes at initialisation for the
    ``pai`` and ``sculpt`` (at ``recipe.sculpt_sparsity``) recipes."""

    method: str = opt("none", help="Pruning method for the initial mask (none: dense).", flag="--prune")
    sparsity: float = opt(0.0, help="Target fraction of prunable weights set to zero, in [0, 1).")
    prune_shortcuts: bool = opt(
        True, help="Whether 1x1 shortcut convolutions are prunable.", flag="--prune-shortcuts/--keep-shortcuts-dense"
    )
    prune_last: bool = opt(
        True, help="Whether the last linear layer is prunable.", flag="--prune-last/--keep-last-dense"
    )
    distribution: str = opt("uniform", help="random: layer densities.")
    scope: str = opt("global", help="Thresholding of scores: over all layers at once, or per layer.")
    samples_per_class: int = opt(10, help="snip/grasp: labelled samples per class that the scores use.")
    synflow_rounds: int = opt(100, help="synflow: pruning rounds on the exponential schedule.")
    synflow_float64: bool = opt(True, help="synflow: score in float64 (deep networks overflow float32).")
    grasp_temperature: float = opt(200.0, help="grasp: softmax temperature T.")
    smart_ratio_variant: str = opt("quadratic", help="random with smart-ratio: the ratio rule (Su et al.'s ablations).")
    erk: str = opt("rigl", help="random with erk: RigL's iterative solution or TurboPrune's one-shot clamp.")
    mask_op: str = opt("none", help="Sanity check applied to new masks (Su et al.).")


@dataclass(frozen=True)
class RecipeConfig:
    """Which experiment to run; see :mod:`training.recipes` for each recipe's stages."""

    name: str = opt(
        "pai", help="Experiment: pruning at init, iterative pruning, SCULPT-ing, hybrid, coupling.", flag="--recipe"
    )
    prune_fraction: float = opt(0.2, help="imp/wr/lrr: fraction of the remaining weights pruned per level.")
    levels: int | None = opt(None, help="imp/wr/lrr: pruning levels (default: as many as reach the target sparsity).")
    rewind_epoch: int = opt(
        10, help="Dense epochs before the rewind point (wr), also saved as the warmup point (imp, lrr, hybrid)."
    )
    wr_schedule: str = opt(
        "full", help="wr: after rewinding, a full new schedule (TurboPrune) or only its remaining epochs (Frankle)."
    )
    level_scope: str = opt("global", help="Magnitude pruning between levels and in SCULPT's step: global or layerwise.")
    sculpt_sparsity: float = opt(0.5, help="sculpt: s0, the sparsity of the first mask.")
    sculpt_cycles: int | None = opt(None, help="sculpt: C0, cycles before the magnitude step (default: --cycles).")
    coupling_init: str = opt("random", help="coupling: where the mask's weights start.")
    mask_from: str | None = opt(None, help="coupling: checkpoint whose mask is trained.")
    warmup_from: str | None = opt(None, help="coupling: checkpoint with the warmup (dense, early) weights.")
    signs_from: str | None = opt(None, help="coupling: checkpoint whose signs are used (default: --mask-from).")
    corrupt: str = opt("none", help="Data for pruning scores and level-0 pretraining (sanity checks).")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule; see :mod:`training.schedules` for the exact formulas. Every cycle
    restarts the schedule with a fresh optimiser."""

    name: str = opt("one-cycle", help="Learning-rate schedule.", flag="--schedule")
    cycles: int = opt(1, help="Number of cycles.")
    epochs: int = opt(10, help="Epochs per cycle.")
    warmup_fraction: float = opt(0.2, help="Fraction of each cycle spent warming up, in [0, 1).")
    warmup_start: float = opt(0.2, help="Warmup starts at this fraction of the peak rate.")
    decay: str = opt("linear", help="Decay after the warmup.")
    skip_warmup: bool = opt(False, help="No warmup after the first cycle.")
    milestones: tuple[float, ...] = opt((0.5, 0.75), help="step: milestones as fractions of a cycle, e.g. 0.5,0.75.")
    gamma: float = opt(0.1, help="step: factor applied at each milestone.")


@dataclass(frozen=True)
class OptimConfig:
    """SGD hyper-parameters."""

    lr: float = opt(0.1, help="Peak learning rate of each cycle.")
    momentum: float = opt(0.9, help="SGD momentum.")
    nesterov: bool = opt(False, help="Nesterov momentum.")
    weight_decay: float = opt(5e-4, help="L2 weight decay.")


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
    seed: int = opt(0, help="Seed of initialisation, mask, data order and augmentation.")
    amp: str = opt("none", help="Mixed precision for the training forward pass (analyses stay fp32).")
    name: str = opt("", help="Run folder prefix (default: <model>-<dataset>).", semantic=False)
    device: str = opt("auto", help="auto, cpu, cuda or cuda:N.", semantic=False)
    save_every: int = opt(0, help="Also write epoch_<n>.pt every N epochs (0: never).", semantic=False)
    channels_last: bool = opt(False, help="channels_last memory format for 4-D convolutions.", semantic=False)
    compile: bool = opt(False, help="torch.compile the training forward pass.", semantic=False)

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
    """Return ``cfg`` with ``{"schedule.cycles": 4, "seed": 1}``-style overrides applied and type-checked.

    An unknown key raises :class:`ConfigError` naming it and the valid keys of its section.
    """
    data = to_dict(cfg)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        path = ""
        for p in [*parents, leaf]:
            if not isinstance(node, dict) or p not in node:
                valid = ", ".join(f"{path}{k}" for k in node) if isinstance(node, dict) else "none"
                raise ConfigError(f"unknown config key {dotted!r}; valid keys here: {valid}", param=dotted)
            if p != leaf:
                node, path = node[p], f"{path}{p}."
        if isinstance(node[leaf], dict):
            raise ConfigError(f"config key {dotted!r} is a section; set one of its fields, e.g. {dotted}.<field>")
        node[leaf] = value
    return from_dict(type(cfg), data)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["schedule.cycles=4", "data.name=cifar10"]`` -> ``{"schedule.cycles": 4, "data.name": "cifar10"}``.

    Each value is parsed as YAML (so ``4`` is an integer, ``[0.5, 0.75]`` a list, ``null`` None).
    Shared by ``landscape train --set`` and ``python -m training --set``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, e.g. schedule.cycles=4; got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value {value!r} is not valid YAML") from exc
    return out


def leaf_fields(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """``(dotted key, field, type)`` of every leaf field of a config dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, dataclasses.Field, Any]] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += leaf_fields(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f, tp))
    return out


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
