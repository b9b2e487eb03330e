"""From a loaded file to a state dict that fits a model, plus the mask the file carries.

Steps, in order (each recorded in the returned :class:`Unpacked` for the provenance attributes):

1. **Where the weights are** (:func:`pick_weights`). A PyTorch Lightning checkpoint (key
   ``pytorch-lightning_version``) keeps them under ``state_dict``. Other dicts: the first of
   ``state_dict``, ``model_state_dict``, ``model``, ``net``, ``model_state`` whose value is a dict of
   tensors (pytorch/examples, the PyTorch recipe and open_lth, torchvision's references,
   pytorch-cifar, dnn-mode-connectivity), else the dict itself when every value is a tensor.
   Optimizer, scheduler and other entries are ignored.
2. **Wrapper prefixes** (:func:`strip_prefixes`): ``module.`` (DataParallel, DDP) and ``_orig_mod.``
   (``torch.compile``), in any nesting, stripped while *every* key has one (open_lth's rule).
   Then an attribute-name prefix (Lightning's ``model.``, ``net.``, ...): a user-given ``prefix``,
   or, when the keys do not fit the model, the one leading component whose removal makes them fit.
3. **Masks stored as reparametrisations** (:func:`masks_from_buffers`):
   ``torch.nn.utils.prune``'s ``X_orig`` and ``X_mask`` become ``X = X_orig·X_mask``; Synaptic-Flow's
   ``X_mask`` buffers beside a raw ``X`` and TurboPrune's ``<layer>.mask`` beside ``<layer>.weight``
   give ``X·mask``. In every case the effective weight (what the network computed with) is kept and
   the mask is returned for the prunable weights. TurboPrune stores linear layers as 1×1 Conv1d
   (``[out, in, 1]``); such weights are squeezed when the model's layer is 2-D.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from training.checkpoint_checks import keys_shown
from training.errors import CheckpointError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "model_state")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def is_state_dict(obj: Any) -> bool:
    """A non-empty dict of str → Tensor."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


@dataclass
class Unpacked:
    """A state dict ready to load, and what was done to get it."""

    state: dict[str, torch.Tensor]
    layout: str  # plain, lightning, or the wrapper key (e.g. "state_dict")
    prefix_stripped: str = ""
    mask: dict[str, torch.Tensor] = field(default_factory=dict)
    mask_source: str = ""  # torch-prune, synaptic-flow, turboprune, or "" for none
    notes: list[str] = field(default_factory=list)


def pick_weights(obj: Any, where: str) -> tuple[dict[str, torch.Tensor], str]:
    """``(state dict, layout)`` of a loaded file (step 1 of the module doc)."""
    if isinstance(obj, Mapping) and "pytorch-lightning_version" in obj:
        if not is_state_dict(obj.get("state_dict")):
            raise CheckpointError(f"{where} is a Lightning checkpoint without a state_dict of tensors")
        return dict(obj["state_dict"]), "lightning"
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if is_state_dict(obj.get(key)):
                return dict(obj[key]), key
        if is_state_dict(obj):
            return dict(obj), "plain"
        keys = sorted(str(k) for k in obj)
        raise CheckpointError(
            f"{where} holds no weights: expected a state dict, or a dict with one of the keys "
            f"{', '.join(WRAPPER_KEYS)} (found keys {keys_shown(keys, 5)})"
        )
    raise CheckpointError(f"{where} holds a {type(obj).__name__}, not a state dict")


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items()}


def strip_prefixes(
    state: dict[str, torch.Tensor], model_keys: set[str] | None, prefix: str | None, where: str
) -> tuple[dict[str, torch.Tensor], str]:
    """``(state, prefix stripped)`` (step 2 of the module doc). ``model_keys`` (the target model's
    state-dict keys, ``None`` when unknown) decides the automatic attribute prefix."""
    if not prefix and model_keys is not None and _fits(state, model_keys):  # already the model's own keys
        return state, ""
    stripped = ""
    while True:
        found = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)
        if found is None:
            break
        state, stripped = _strip(state, found), stripped + found
    if prefix:
        prefix = prefix if prefix.endswith(".") else prefix + "."
        if not all(k.startswith(prefix) for k in state):
            odd = next(k for k in state if not k.startswith(prefix))
            raise CheckpointError(f"{where}: not every key starts with the prefix {prefix!r} (e.g. {odd})")
        return _strip(state, prefix), stripped + prefix
    if model_keys is None or _fits(state, model_keys):
        return state, stripped
    firsts = {k.split(".", 1)[0] for k in state}
    if len(firsts) == 1 and all("." in k for k in state):
        candidate = _strip(state, next(iter(firsts)) + ".")
        if _fits(candidate, model_keys):
            return candidate, stripped + next(iter(firsts)) + "."
    return state, stripped


def _fits(state: Mapping[str, Any], model_keys: set[str]) -> bool:
    """Whether the keys, read as a possibly reparametrised state dict, name the model's entries."""
    names = set()
    for k in state:
        for suffix in ("_orig", "_mask"):
            if k.endswith(suffix) and k[: -len(suffix)] in model_keys:
                k = k[: -len(suffix)]
        if k.endswith(".mask") and k[: -len(".mask")] + ".weight" in model_keys:
            continue
        names.add(k)
    return names <= model_keys and len(names & model_keys) >= 0.5 * len(model_keys)


def masks_from_buffers(
    state: dict[str, torch.Tensor], prunable: set[str], model_shapes: Mapping[str, torch.Size]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str, list[str]]:
    """``(state, mask, source, notes)`` (step 3 of the module doc). ``mask`` covers only names in
    ``prunable``; a mask buffer on another tensor (Synaptic-Flow masks BatchNorm and biases too) is
    applied to it and noted when it prunes anything."""
    state = dict(state)
    mask: dict[str, torch.Tensor] = {}
    notes: list[str] = []
    sources = set()
    for key in sorted(state):
        if key not in state or not key.endswith("_orig"):
            continue
        base = key[: -len("_orig")]
        if base + "_mask" in state:  # torch.nn.utils.prune
            m = state.pop(base + "_mask")
            state[base] = state.pop(key) * m
            _record(base, m, prunable, mask, notes)
            sources.add("torch-prune")
    for key in sorted(state):
        if key.endswith("_mask") and key[: -len("_mask")] in state:  # Synaptic-Flow: raw weight, mask buffer
            base = key[: -len("_mask")]
            m = state.pop(key)
            state[base] = state[base] * m.to(state[base].dtype)
            _record(base, m, prunable, mask, notes)
            sources.add("synaptic-flow")
        elif key.endswith(".mask") and key[: -len(".mask")] + ".weight" in state:  # TurboPrune
            base = key[: -len(".mask")] + ".weight"
            m = state.pop(key)
            w = state[base]
            if base in model_shapes and w.dim() == 3 and w.shape[-1] == 1 and len(model_shapes[base]) == 2:
                w, m = w.squeeze(-1), m.squeeze(-1)  # TurboPrune's Conv1dMask standing in for a Linear
            state[base] = w * m.to(w.dtype)
            _record(base, m, prunable, mask, notes)
            sources.add("turboprune")
    return state, mask, "+".join(sorted(sources)), notes


def _record(name: str, m: torch.Tensor, prunable: set[str], mask: dict[str, torch.Tensor], notes: list[str]) -> None:
    keep = m != 0
    if name in prunable:
        mask[name] = keep
    elif not bool(keep.all()):
        notes.append(f"{name} (not prunable) had a mask with {int((~keep).sum())} zeros, applied to the weights")
