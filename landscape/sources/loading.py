"""The loading layer: a file (or an ``nn.Module``), plus what the user says about it, becomes the
:class:`~training.checkpoint.Checkpoint` every analysis takes: the model with its weights, the mask,
and where it came from (``meta["source"]``, written into every result's attributes).

* A landscape checkpoint is read as it always was (:func:`training.checkpoint.checkpoint_from_raw`);
  it names its own model, so ``model`` must not be given.
* Any other file needs ``model`` (:func:`landscape.sources.specs.build_model`). Its weights are found
  and unwrapped as :mod:`landscape.sources.states` describes, and loaded with ``strict=True``; a state
  dict that does not fit gets one line with the counts and at most three keys of each kind.

Masks (``mask``):

* ``"auto"``: the file's own mask: the landscape format's, the buffers of ``torch.nn.utils.prune``,
  Synaptic-Flow or TurboPrune, or an open_lth level's ``mask.pth`` beside a ``model_ep*_it*.pth``.
  Without one the model is dense: every prunable weight is kept (``mask_source = "none (dense)"``).
* ``"none"``: dense, whatever the file holds (the weights stay as the file's reparametrisation computes them).
* ``"zeros"``: the prunable weights that are exactly zero are pruned (for files that store no mask,
  such as sanity-checking-pruning's).
* a path: a sidecar mask file, ``{parameter name: 0/1 or bool tensor}`` (open_lth's ``mask.pth``).

Weights at pruned positions are multiplied by the mask on load (open_lth and TurboPrune store
non-zero values there); ``meta["source"]["zeroed_on_load"]`` counts the values that changed.
The prunable set is :func:`training.masks.prunable_names`: every Conv and Linear weight and the raw
projection weights of ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.sources.files import read_file
from landscape.sources.specs import build_model
from landscape.sources.states import is_state_dict, masks_from_buffers, pick_weights, strip_prefixes
from training.checkpoint import Checkpoint, as_checkpoint, check_raw, checkpoint_from_raw, is_landscape_checkpoint
from training.checkpoint_checks import state_mismatch
from training.errors import CheckpointError, UserError
from training.fileio import sha256_file
from training.masks import check_mask_fits, prunable_names

MASK_MODES = ("auto", "none", "zeros")
OPEN_LTH_MODEL = re.compile(r"^model_ep(\d+)_it(\d+)\.pth$")  # open_lth's models: epoch and iteration


def load(
    path: str | os.PathLike,
    *,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str | os.PathLike = "auto",
    prefix: str | None = None,
) -> Checkpoint:
    """Load any supported file as a :class:`Checkpoint` (see the module doc for ``model`` and
    ``mask``; ``prefix`` names an attribute prefix to strip, e.g. Lightning's ``model``)."""
    path = Path(path)
    _check_mask_mode(mask)
    obj, kind, _ = read_file(path)
    if is_landscape_checkpoint(obj):
        if model is not None:
            raise UserError(
                f"{path} is a landscape checkpoint, which names its own model; leave out model", param="model"
            )
        ckpt = checkpoint_from_raw(check_raw(obj, path), path)
        if mask != "auto":
            ckpt.mask, zeroed = _choose_mask(ckpt.model, ckpt.mask, mask, where=str(path))
            ckpt.state = {k: v.detach().clone() for k, v in ckpt.model.state_dict().items()}
            ckpt.meta = {**ckpt.meta, "source": _source("landscape", "landscape", "", str(mask), zeroed, [])}
        return ckpt
    if model is None:
        raise UserError(
            f"{path} is not a landscape checkpoint ({kind} file): say which network reads it with model "
            "(a registry name, torchvision:NAME, timm:NAME or package.module:callable)",
            param="model",
        )
    state, layout = pick_weights(obj, str(path))
    net = build_model(model, model_args)
    sidecar = _open_lth_mask(path) if mask == "auto" else None
    ckpt = _from_state(net, state, layout, kind, prefix, mask, sidecar, where=str(path))
    ckpt.meta["model"], ckpt.meta["model_kwargs"] = model, dict(model_args or {})
    ckpt.path, ckpt.sha256 = path, sha256_file(path)
    return ckpt


def from_module(module: nn.Module, *, mask: str | os.PathLike = "auto") -> Checkpoint:
    """A :class:`Checkpoint` of an in-memory model (copied; the caller's module is never changed).
    ``torch.nn.utils.prune`` reparametrisations are folded in (``weight = weight_orig·weight_mask``)
    and, under ``mask="auto"``, give the mask."""
    if not isinstance(module, nn.Module):
        raise UserError(f"expected an nn.Module, got {type(module).__name__}")
    _check_mask_mode(mask)
    net = _copy(module).cpu().eval()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    _remove_prune_hooks(net)
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    ckpt = _from_state(net, state, "module", "module", None, mask, None, where=f"module {type(module).__name__}")
    ckpt.meta["model"] = name
    return ckpt


def as_source(
    obj: Any,
    *,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str | os.PathLike = "auto",
    param: str = "checkpoint",
) -> Checkpoint:
    """What every analysis calls on its checkpoint arguments: a :class:`Checkpoint` passes through, a
    path is loaded (:func:`load`), an ``nn.Module`` is wrapped (:func:`from_module`); then the mask and
    the weights are checked (:func:`training.checkpoint.as_checkpoint`)."""
    if isinstance(obj, Checkpoint):
        return as_checkpoint(obj)
    if isinstance(obj, nn.Module):
        return as_checkpoint(from_module(obj, mask=mask))
    if isinstance(obj, (str, os.PathLike)):
        return as_checkpoint(load(obj, model=model, model_args=model_args, mask=mask))
    raise UserError(f"{param} must be a Checkpoint, a path or an nn.Module, got {type(obj).__name__}", param=param)


def _check_mask_mode(mask: Any) -> None:
    if not isinstance(mask, (str, os.PathLike)):
        raise UserError(f"mask must be auto, none, zeros or a path, got {type(mask).__name__}", param="mask")
    if isinstance(mask, str) and mask not in MASK_MODES and not Path(mask).exists():
        raise UserError(f"mask {mask!r} is neither auto, none, zeros nor an existing file", param="mask")


def _open_lth_mask(path: Path) -> Path | None:
    """open_lth's ``mask.pth`` beside a level's ``model_ep<E>_it<I>.pth``, if there is one."""
    sidecar = path.parent / "mask.pth"
    return sidecar if OPEN_LTH_MODEL.match(path.name) and sidecar.is_file() else None


def _copy(module: nn.Module) -> nn.Module:
    """A deep copy, also of a module pruned with ``torch.nn.utils.prune``: its computed ``weight``
    (``weight_orig·weight_mask``, not a leaf) is detached for the copy and put back afterwards."""
    from torch.nn.utils import prune

    computed = [
        (m, hook._tensor_name)
        for m in module.modules()
        for hook in m._forward_pre_hooks.values()
        if isinstance(hook, prune.BasePruningMethod)
    ]
    saved = [(m, name, getattr(m, name)) for m, name in computed]
    try:
        for m, name, value in saved:
            setattr(m, name, value.detach())
        return copy.deepcopy(module)
    finally:
        for m, name, value in saved:
            setattr(m, name, value)


def _remove_prune_hooks(net: nn.Module) -> None:
    from torch.nn.utils import prune

    for module in net.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)


def _from_state(
    net: nn.Module,
    state: dict[str, torch.Tensor],
    layout: str,
    kind: str,
    prefix: str | None,
    mask: str | os.PathLike,
    sidecar: Path | None,
    *,
    where: str,
) -> Checkpoint:
    target = net.state_dict()
    state, stripped = strip_prefixes(state, set(target), prefix, where)
    prunable = set(prunable_names(net))
    state, found, found_source, notes = masks_from_buffers(state, prunable, {k: v.shape for k, v in target.items()})
    _load_strict(net, state, where)
    if sidecar is not None:
        found, found_source = _read_mask_file(sidecar, net), f"open_lth mask.pth ({sidecar})"
    chosen_mode = mask if mask != "auto" else ("found" if found else "none")
    chosen, zeroed = _choose_mask(net, found, chosen_mode, where)
    source = found_source if mask == "auto" and found else ("none (dense)" if chosen_mode == "none" else str(mask))
    meta = {
        "model": "",
        "model_kwargs": {},
        "dataset": None,
        "num_classes": None,
        "source": _source(kind, layout, stripped, source, zeroed, notes),
    }
    return Checkpoint(net, chosen, meta, {k: v.detach().clone() for k, v in net.state_dict().items()})


def _source(kind: str, layout: str, stripped: str, mask_source: str, zeroed: int, notes: list[str]) -> dict:
    return {
        "format": kind,
        "layout": layout,
        "prefix_stripped": stripped,
        "mask_source": mask_source,
        "zeroed_on_load": int(zeroed),
        "notes": "; ".join(notes),
    }


def _load_strict(net: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)``, with a one-line message when the state does not fit."""
    target = net.state_dict()
    mismatch = state_mismatch(target, state)
    if mismatch:
        raise CheckpointError(f"{where} does not fit the model: {mismatch}")
    bad = next((k for k, v in state.items() if v.dtype != target[k].dtype and not v.is_floating_point()), None)
    if bad is not None and target[bad].is_floating_point():
        raise CheckpointError(f"{where}: {bad} holds {state[bad].dtype} values, the model expects floats")
    net.load_state_dict(state, strict=True)


def _read_mask_file(path: Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """A sidecar mask ``{parameter name: 0/1 or bool tensor}`` checked against ``net``'s parameters."""
    obj, _, _ = read_file(path)
    if not is_state_dict(obj):
        raise CheckpointError(f"mask file {path} is not a dict of tensors {{parameter name: 0/1 tensor}}")
    params = dict(net.named_parameters())
    obj, _ = strip_prefixes(dict(obj), set(params), None, f"mask file {path}")
    check_mask_fits(obj, params, f"mask file {path}", error=CheckpointError)
    out = {}
    for name, m in obj.items():
        if m.dtype != torch.bool and not bool(((m == 0) | (m == 1)).all()):
            raise CheckpointError(f"mask file {path}: {name} holds values other than 0 and 1")
        out[name] = m != 0
    return out


def _choose_mask(
    net: nn.Module, found: dict[str, torch.Tensor], mode: str | os.PathLike, where: str
) -> tuple[dict[str, torch.Tensor], int]:
    """``(mask, values zeroed)``: the mask ``mode`` selects, applied to ``net``'s weights in place."""
    params = dict(net.named_parameters())
    names = prunable_names(net)
    if mode == "found":
        chosen = dict(found)
    elif mode == "none":
        chosen = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    elif mode == "zeros":
        chosen = {n: params[n].detach() != 0 for n in names}
    else:
        chosen = _read_mask_file(Path(mode), net)
    zeroed = 0
    with torch.no_grad():
        for name, m in chosen.items():
            p = params[name]
            zeroed += int(((p != 0) & ~m).sum())
            p.mul_(m.to(p.dtype))
    if not chosen and not names:
        raise CheckpointError(f"{where}: the model has no Conv, Linear or attention weights to mask")
    return chosen, zeroed
