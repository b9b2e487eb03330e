"""Checkpoints: the on-disk format (a contract other tools rely on) and the loaded :class:`Checkpoint`.

A checkpoint is one ``.pt`` file that ``torch.load(path, weights_only=True)`` reads as a dict:

* ``model``: the full ``state_dict()`` (parameters and buffers); pruned entries are exact zeros.
* ``mask``: ``{parameter name: bool tensor}`` for every prunable parameter.
* ``meta``: a JSON-compatible dict with at least ``model``, ``model_kwargs``, ``dataset``,
  ``num_classes``, ``epoch`` (epochs trained in total), ``cycle`` (cycles completed), ``config_hash``
  and ``format_version``.

Resume files (``resume.pt``) use the same reader but carry ``optimizer``, ``rng`` and ``progress``
entries too. Writes are atomic; reads never unpickle code.

A loaded checkpoint (:func:`load_checkpoint`) is a :class:`Checkpoint`: the model rebuilt from the
registry with the weights loaded, plus mask, meta and the raw state. :func:`check_compatible` tells
whether two checkpoints can be compared; :func:`checkpoint_data` returns the data a checkpoint was
trained on, or (``samples``) a fixed, seeded, class-balanced subset of it (:func:`sample_bundle`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.checkpoint_checks import check_finite, check_mask, check_meta, state_mismatch
from training.config import DataConfig, from_dict
from training.data import DataBundle, class_balanced_indices, load_data
from training.data.bundle import labels_of
from training.errors import CheckpointError, DataError, UserError
from training.fileio import atomic_path, derive_seed, sha256_file
from training.models import build

FORMAT_VERSION = 1
REQUIRED_META = (
    "model",
    "model_kwargs",
    "dataset",
    "num_classes",
    "epoch",
    "cycle",
    "config_hash",
    "format_version",
)


def save_checkpoint(
    path: str | os.PathLike,
    model_state: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    **extra: Any,
) -> Path:
    """Atomically write a checkpoint; tensors are moved to the CPU first. Returns the path."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    payload = {
        "model": {k: v.detach().cpu().clone() for k, v in model_state.items()},
        "mask": {k: v.detach().cpu().to(torch.bool) for k, v in mask.items()},
        # A JSON round trip enforces the contract that meta is JSON-compatible (e.g. TorchVersion -> str).
        "meta": json.loads(json.dumps(dict(meta), default=str)),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def safe_torch_load(path: Path, map_location: str | torch.device = "cpu", allowed: Sequence[type] = ()) -> Any:
    """``torch.load(path, weights_only=True)``: PyTorch's restricted unpickler, which refuses every global
    it does not allow, plus the classes ``allowed``. A refusal is one :class:`CheckpointError` line naming
    the refused globals (listed without unpickling anything); PyTorch's own advice is never shown."""
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        names = {f"{c.__module__}.{c.__qualname__}" for c in allowed}
        try:
            refused = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in names]
        except Exception:  # an unreadable archive: say so without the list
            refused = []
        if refused:
            shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
            raise CheckpointError(
                f"refusing to load {path}: it pickles objects that safe loading does not allow ({shown})"
            ) from exc
        raise CheckpointError(f"{path} is not a torch checkpoint (unreadable pickle)") from exc
    except Exception as exc:  # torch raises many types (BadZipFile, EOFError, KeyError, RuntimeError, ...)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is truncated, corrupted or not a torch checkpoint ({msg})") from exc


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint dict with ``weights_only=True``.

    Raises :class:`CheckpointError` with a one-line reason for a missing path, a folder, a file that is
    not a torch file, a truncated file, a file that would need to unpickle code, or a dict that does
    not follow the format.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    obj = safe_torch_load(path, map_location)
    if not isinstance(obj, dict) or not {"model", "mask", "meta"} <= set(obj):
        keys = sorted(str(k) for k in obj) if isinstance(obj, dict) else [type(obj).__name__]
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise CheckpointError(
            f"{path} is not a landscape checkpoint: expected keys model, mask, meta; found {shown} "
            "(for other files, name the model: --model, or landscape.load(path, model=...))"
        )
    return check_raw(obj, path)


def is_landscape_checkpoint(obj: Any) -> bool:
    """Whether a loaded file is in this toolkit's format (keys model, mask and meta, meta a dict)."""
    return isinstance(obj, dict) and {"model", "mask", "meta"} <= set(obj) and isinstance(obj["meta"], dict)


def check_raw(obj: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Validate a loaded landscape checkpoint dict (meta, state and mask as the format names them)."""
    meta = obj["meta"]
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not a landscape checkpoint: meta is not a dict")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path} is not a landscape checkpoint: meta lacks {', '.join(missing)}")
    check_meta(meta, str(path))  # the type of every key the format names
    if meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {meta['format_version']}; this landscape reads up to {FORMAT_VERSION}"
        )
    state, mask = obj["model"], obj["mask"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'model' is not a state dict of tensors")
    if not isinstance(mask, dict) or not all(
        isinstance(v, torch.Tensor) and v.dtype == torch.bool for v in mask.values()
    ):
        raise CheckpointError(f"{path}: 'mask' is not a dict of bool tensors")
    for name, m in mask.items():
        if name not in state:
            raise CheckpointError(f"{path}: mask entry {name} has no parameter in the state dict")
        if m.shape != state[name].shape:
            raise CheckpointError(
                f"{path}: mask {name} has shape {tuple(m.shape)} but the weight has {tuple(state[name].shape)}"
            )
    return obj


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``.model`` (built, weights loaded, eval mode, on CPU), ``.mask``, ``.meta``.

    ``.state`` is the raw state dict as stored (pruned entries exact zeros); ``.path`` and ``.sha256``
    identify the file (both ``None`` for an in-memory checkpoint).
    """

    model: nn.Module
    mask: dict[str, torch.Tensor]
    meta: dict[str, Any]
    state: dict[str, torch.Tensor] = field(repr=False)
    path: Path | None = None
    sha256: str | None = None

    @property
    def architecture(self) -> str:
        """``model`` name plus its keyword arguments, e.g. ``cnn1d(input_shape=[1, 40])``."""
        kwargs = ", ".join(f"{k}={v}" for k, v in sorted(self.meta.get("model_kwargs", {}).items()))
        return f"{self.meta['model']}({kwargs})"

    def clone(self) -> Checkpoint:
        """An independent in-memory copy (model, mask, meta and state are copied; path and sha256 kept)."""
        return Checkpoint(
            copy.deepcopy(self.model),
            {k: v.clone() for k, v in self.mask.items()},
            copy.deepcopy(self.meta),
            {k: v.clone() for k, v in self.state.items()},
            self.path,
            self.sha256,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write this checkpoint in the on-disk format (atomically); returns the path."""
        return save_checkpoint(path, self.state, self.mask, self.meta)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` and rebuild its model.

    Raises :class:`training.errors.CheckpointError` for a missing, unreadable, unsafe or malformed
    file, or one whose state dict does not fit the architecture named in its meta.
    """
    path = Path(path)
    return checkpoint_from_raw(read_checkpoint(path), path)


def checkpoint_from_raw(raw: dict[str, Any], path: Path) -> Checkpoint:
    """The :class:`Checkpoint` of a validated landscape checkpoint dict read from ``path``."""
    meta = raw["meta"]
    try:
        model = build(meta["model"], int(meta["num_classes"]), **dict(meta.get("model_kwargs") or {}))
    except (UserError, TypeError, ValueError, RuntimeError) as exc:  # model_kwargs the builder cannot take
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # e.g. a negative width
        raise CheckpointError(f"{path}: cannot build model {meta['model']} from its meta ({reason})") from exc
    mismatch = state_mismatch(model.state_dict(), raw["model"])
    if mismatch:
        raise CheckpointError(f"{path}: state dict does not match model {meta['model']} ({mismatch})")
    model.load_state_dict(raw["model"])
    model.eval()
    return Checkpoint(model, dict(raw["mask"]), dict(meta), dict(raw["model"]), path, sha256_file(path))


def as_checkpoint(obj: Checkpoint | str | os.PathLike) -> Checkpoint:
    """Pass a :class:`Checkpoint` through; load a path. Either way the checkpoint is checked as every
    analysis needs it: its mask fits its weights and no tensor holds a NaN or infinite value
    (:class:`CheckpointError` naming the tensor otherwise)."""
    ckpt = obj if isinstance(obj, Checkpoint) else load_checkpoint(obj)
    where = f"checkpoint {ckpt.path}" if ckpt.path else "checkpoint (in memory)"
    if not isinstance(ckpt.mask, Mapping) or not isinstance(ckpt.state, Mapping):
        raise CheckpointError(f"{where}: mask and state must be dicts of tensors")
    check_mask(ckpt.mask, ckpt.state, where)
    check_finite(ckpt.state, where)
    return ckpt


def check_same_data(*ckpts: Checkpoint) -> None:
    """Raise :class:`CheckpointError` unless the checkpoints were trained on the same data: the same
    dataset and the same recorded data settings that change the samples (batch sizes, loader and
    folder aside). Analyses comparing checkpoints call it unless told the difference is intended."""
    ignored = {"root", "batch_size", "eval_batch_size", "num_workers", "loader"}

    def identity(c: Checkpoint) -> tuple[str, str]:
        recorded = {k: v for k, v in (c.meta.get("data_config") or {}).items() if k not in ignored}
        return str(c.meta.get("dataset")), json.dumps(recorded, sort_keys=True, default=str)

    first = identity(ckpts[0])
    for other in ckpts[1:]:
        found = identity(other)
        if found != first:
            what = f"{first[0]} and {found[0]}" if found[0] != first[0] else "different data settings"
            names = f"{ckpts[0].path or 'checkpoint A'} and {other.path or 'checkpoint B'}"
            raise CheckpointError(
                f"{names} were trained on different data ({what}); pass allow_different_data if that is intended",
                param="allow_different_data",
            )


def check_compatible(a: Checkpoint, b: Checkpoint) -> None:
    """Raise :class:`CheckpointError` unless ``a`` and ``b`` have the same architecture, state-dict
    keys and shapes, and masks over the same parameters with the same shapes."""
    name_a = str(a.path) if a.path else "checkpoint A"
    name_b = str(b.path) if b.path else "checkpoint B"
    if a.meta.get("model") != b.meta.get("model") or a.meta.get("model_kwargs") != b.meta.get("model_kwargs"):
        raise CheckpointError(
            f"checkpoints have different architectures: {name_a} is {a.architecture}, {name_b} is {b.architecture}"
        )
    _same_keys_and_shapes("state dict", a.state, b.state, name_a, name_b)
    _same_keys_and_shapes("mask", a.mask, b.mask, name_a, name_b)


def _same_keys_and_shapes(what: str, ta: dict, tb: dict, name_a: str, name_b: str) -> None:
    if set(ta) != set(tb):
        only = sorted(set(ta) ^ set(tb))
        raise CheckpointError(f"checkpoints have different {what} entries (e.g. {only[0]})")
    for key, tensor in ta.items():
        if tensor.shape != tb[key].shape:
            raise CheckpointError(
                f"checkpoint {what}s differ at {key}: shape {tuple(tensor.shape)} in {name_a}, "
                f"{tuple(tb[key].shape)} in {name_b}"
            )


def checkpoint_bundle(
    ckpt: Checkpoint,
    *,
    dataset: str | None = None,
    root: str | None = None,
    samples: int | None = None,
    samples_seed: int = 0,
) -> DataBundle:
    """The :class:`DataBundle` ``ckpt`` was trained on, from its meta's data config.

    ``dataset`` and ``root`` override the recorded dataset name and data root (the root is not
    recorded in the config hash, so a checkpoint moved to another machine needs it). ``samples``
    replaces each split by a class-balanced subset of that many samples (:func:`sample_bundle`).
    """
    recorded = ckpt.meta.get("data_config") or {"name": ckpt.meta["dataset"]}
    data_cfg = from_dict(DataConfig, recorded, "data_config")
    changes = {k: v for k, v in (("name", dataset), ("root", root)) if v is not None}
    bundle = load_data(dataclasses.replace(data_cfg, **changes))
    check_data_fits(ckpt, bundle)
    return bundle if samples is None else sample_bundle(bundle, samples, seed=samples_seed)


def check_data_fits(ckpt: Checkpoint, bundle: DataBundle) -> None:
    """Raise :class:`DataError` unless ``bundle``'s inputs have the shape and its labels the number of
    classes that ``ckpt``'s model was built for (a model cannot be evaluated on other data)."""
    where = ckpt.path or "the checkpoint"
    if ckpt.meta.get("num_classes") is None:  # a file from elsewhere records neither; the forward pass checks
        return
    if bundle.num_classes > int(ckpt.meta["num_classes"]):
        raise DataError(
            f"dataset {bundle.name} has {bundle.num_classes} classes but {where} has {ckpt.meta['num_classes']} "
            "outputs; evaluate it on the data it was trained on",
            param="dataset",
        )
    shape = (ckpt.meta.get("model_kwargs") or {}).get("input_shape")
    if shape is not None and tuple(int(s) for s in shape) != tuple(bundle.input_shape):
        raise DataError(
            f"dataset {bundle.name} has inputs of shape {tuple(bundle.input_shape)} but the model of {where} takes "
            f"{tuple(int(s) for s in shape)}; evaluate it on the data it was trained on",
            param="dataset",
        )


def checkpoint_data(
    ckpt: Checkpoint,
    split: str = "train",
    *,
    batch_size: int = 1000,
    dataset: str | None = None,
    root: str | None = None,
    samples: int | None = None,
    samples_seed: int = 0,
) -> Any:
    """Unshuffled, unaugmented batches ``(inputs, targets)`` of ``split`` (``train`` or ``test``) of
    the data ``ckpt`` was trained on, or of a class-balanced subset of ``samples`` of them; see
    :func:`checkpoint_bundle` for ``dataset`` and ``root`` and :func:`sample_bundle` for the subset."""
    bundle = checkpoint_bundle(ckpt, dataset=dataset, root=root, samples=samples, samples_seed=samples_seed)
    return bundle.eval_loader(split, batch_size)


def balanced_subset(labels: torch.Tensor, samples: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of ``samples`` samples, as evenly spread over the classes as ``labels`` allow
    (class counts differ by at most one while every class has samples left; the lower class labels
    get the remainder), drawn with ``generator``."""
    labels = torch.as_tensor(labels).cpu()
    if not 0 < samples <= len(labels):
        raise DataError(
            f"samples must be between 1 and the split's {len(labels)} samples, got {samples}", param="samples"
        )
    idx = class_balanced_indices(labels, len(labels), generator)  # every index, shuffled within its class
    picked = labels[idx]
    rank = torch.zeros(len(idx), dtype=torch.long)
    for c in torch.unique(labels):
        where = (picked == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    order = torch.argsort(rank * len(labels) + torch.arange(len(idx)), stable=True)
    return idx[order[:samples]].sort().values


def _subset(split: Any, idx: torch.Tensor) -> Any:
    if isinstance(split, tuple):
        return split[0][idx.to(split[0].device)], split[1][idx.to(split[1].device)]
    return torch.utils.data.Subset(split, idx.tolist())


def sample_bundle(bundle: DataBundle, samples: int, *, seed: int = 0) -> DataBundle:
    """A copy of ``bundle`` whose training split (augmented and not, the same samples) and test split
    each hold ``samples`` samples (a split with fewer is kept whole): a class-balanced subset fixed by
    ``seed``, the split and ``samples`` only (:func:`balanced_subset`), in the split's order. Analyses
    of large datasets run on it. Fewer ``samples`` than classes is refused: no subset of them is
    class-balanced."""
    if samples < bundle.num_classes:
        raise DataError(
            f"samples {samples} is below the {bundle.num_classes} classes of {bundle.name}: a class-balanced "
            "subset needs at least one sample per class",
            param="samples",
        )
    parts = {}
    for name, field_name in (("train", "train_eval"), ("test", "test")):
        split = getattr(bundle, field_name)
        labels = split[1] if isinstance(split, tuple) else torch.as_tensor(labels_of(split))
        gen = torch.Generator().manual_seed(derive_seed(seed, "samples", name, samples))
        parts[name] = balanced_subset(labels, min(samples, len(labels)), gen)
    train_eval = _subset(bundle.train_eval, parts["train"])
    train = train_eval if bundle.train is bundle.train_eval else _subset(bundle.train, parts["train"])
    return dataclasses.replace(bundle, train=train, train_eval=train_eval, test=_subset(bundle.test, parts["test"]))
