"""Masks over the prunable parameters, and how they are kept in force during training.

Conventions. A mask is ``{parameter name: bool tensor}`` with one entry per prunable parameter; True
means kept. Prunable parameters are the weights of every ``Conv1d``/``Conv2d``/``Linear`` module
and the raw projection weights of ``nn.MultiheadAttention`` (``in_proj_weight``, or ``q/k/v_proj_weight``;
its output projection is a ``Linear``); biases, norm layers and embeddings are never pruned. Options
exclude the 1x1 shortcut convolutions (modules whose name contains ``shortcut`` or ``downsample``)
and the last linear layer. Sparsity is the fraction of
prunable weights that are zero, density is 1 - sparsity, both as fractions.

How a mask is enforced (:class:`MaskedParameters`): pruned weights are stored as exact zeros; after
every backward pass their gradients are zeroed, and after every optimiser step the weights are
multiplied by the mask again. With zero gradients and zero weights, weight decay and momentum add
exactly zero at pruned coordinates; the post-step multiply also covers optimiser states loaded from
elsewhere (e.g. a rewound momentum buffer that was dense).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from training.errors import ConfigError

Mask = dict[str, torch.Tensor]
_PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_SHORTCUT_WORDS = ("shortcut", "downsample")


def prunable_names(
    model: nn.Module,
    prune_shortcuts: bool = True,
    prune_last: bool = True,
    *,
    prune_patch_and_head: bool = False,
    dense_depthwise: bool = False,
) -> list[str]:
    """Names of the prunable weights of ``model``, in module order. A model may declare weights that
    stay dense unless asked (``model.patch_and_head``: a ViT's patch embedding and head, pruned only
    with ``prune_patch_and_head``) or that a flag keeps dense (``model.first_and_depthwise``: MobileNetV2's
    first and depthwise convolutions, dense with ``dense_depthwise``)."""
    excluded = set() if prune_patch_and_head else set(getattr(model, "patch_and_head", ()))
    if dense_depthwise:
        excluded |= set(getattr(model, "first_and_depthwise", ()))
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, (*_PRUNABLE_TYPES, nn.MultiheadAttention))]
    last_linear = next((n for n, m in reversed(modules) if isinstance(m, nn.Linear)), None)
    names = []
    for name, module in modules:
        if isinstance(module, nn.MultiheadAttention):  # raw projection parameters, not Linear modules
            raw = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
            names += [f"{name}.{p}" if name else p for p in raw if getattr(module, p, None) is not None]
            continue
        is_shortcut = any(w in name for w in _SHORTCUT_WORDS) and all(
            k == 1 for k in getattr(module, "kernel_size", (1,))
        )
        if is_shortcut and not prune_shortcuts:
            continue
        if name == last_linear and not prune_last:
            continue
        names.append(f"{name}.weight" if name else "weight")
    return [n for n in names if n not in excluded]


def config_prunable_names(model: nn.Module, mask_config) -> list[str]:
    """:func:`prunable_names` under a :class:`training.config.MaskConfig`'s flags."""
    c = mask_config
    return prunable_names(model, c.prune_shortcuts, c.prune_last, prune_patch_and_head=c.prune_patch_and_head,
                          dense_depthwise=c.dense_depthwise)  # fmt: skip


def full_mask(model: nn.Module, names: list[str]) -> Mask:
    """An all-True mask over ``names``."""
    params = dict(model.named_parameters())
    return {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """Set pruned weights of ``model`` to exactly 0, in place: ±0 with the weight's sign, as multiplying
    by the mask gives for finite weights, and 0 too where a pruned weight was NaN or infinite (which a
    multiplication would keep). A mask entry the model lacks, or of another shape, is a :class:`ConfigError`."""
    params = dict(model.named_parameters())
    check_mask_fits(mask, params)
    for name, m in mask.items():
        p = params[name]
        p.copy_(torch.where(m.to(p.device, torch.bool), p, torch.zeros_like(p).copysign(p)))


def check_mask_fits(
    mask: Mapping[str, torch.Tensor],
    params: Mapping[str, object],
    what: str = "mask",
    *,
    error: type[ConfigError] | type = ConfigError,
) -> None:
    """Raise ``error`` (with ``param="mask"``) unless every entry of ``mask`` names one of ``params``
    (``{name: tensor or shape}``) and has its shape. ``what`` starts the message (e.g. the file)."""
    for name, m in mask.items():
        if name not in params:
            raise error(f"{what} names a parameter the model does not have: {name}", param="mask")
        shape = tuple(getattr(params[name], "shape", params[name]))
        if tuple(getattr(m, "shape", ())) != shape:
            raise error(
                f"{what} entry {name} has shape {tuple(getattr(m, 'shape', ()))} but the parameter has {shape}",
                param="mask",
            )


def density(mask: Mapping[str, torch.Tensor]) -> float:
    """Fraction of True entries over all masked parameters."""
    total = sum(m.numel() for m in mask.values())
    return sum(int(m.sum()) for m in mask.values()) / total if total else 1.0


def layer_densities(mask: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Keep ratio ``||m_l||_0 / N_l`` per layer, in mask order."""
    return {n: float(m.sum()) / m.numel() for n, m in mask.items()}


def weight_density(model: nn.Module, names: list[str]) -> float:
    """Fraction of non-zero entries among the named parameters (the measured density)."""
    params = dict(model.named_parameters())
    total = sum(params[n].numel() for n in names)
    nonzero = sum(int(torch.count_nonzero(params[n])) for n in names)
    return nonzero / total if total else 1.0


class MaskedParameters:
    """Binds a mask to a model's parameters for fast in-place enforcement during training.

    The float copies of the mask live on the parameters' device; the two calls per step are single
    fused ``torch._foreach_mul_`` kernels, so masking costs two elementwise passes over the prunable
    weights per step.
    """

    def __init__(self, model: nn.Module, mask: Mapping[str, torch.Tensor]):
        params = dict(model.named_parameters())
        missing = [n for n in mask if n not in params]
        if missing:
            raise ConfigError(f"mask names parameters the model does not have: {missing[:3]}")
        self.names = list(mask)
        self.params = [params[n] for n in self.names]
        self.factors = [mask[n].to(device=params[n].device, dtype=params[n].dtype) for n in self.names]

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of pruned coordinates."""
        grads = [p.grad for p in self.params if p.grad is not None]
        factors = [f for p, f in zip(self.params, self.factors, strict=True) if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, factors)

    @torch.no_grad()
    def mask_weights(self) -> None:
        """Set pruned weights to exactly zero."""
        if self.params:
            torch._foreach_mul_(self.params, self.factors)
