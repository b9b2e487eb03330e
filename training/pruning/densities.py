"""Layer densities for random masks (uniform, ERK, ER-balanced, smart ratios) and the random mask itself."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from training.errors import ConfigError
from training.masks import Mask


def layer_shapes(model: nn.Module, names: Sequence[str]) -> dict[str, torch.Size]:
    """The shape of each named parameter of ``model``."""
    params = dict(model.named_parameters())
    return {n: params[n].shape for n in names}


def uniform_densities(shapes: Mapping[str, torch.Size], density: float, **_: Any) -> dict[str, float]:
    """d_l = d for every layer."""
    return dict.fromkeys(shapes, density)


def erk_densities(shapes: Mapping[str, torch.Size], density: float, erk: str = "rigl", **_: Any) -> dict[str, float]:
    """Erdős–Rényi-kernel densities d_l = ε · Σdims_l / Πdims_l with Σ d_l N_l = d N (Evci et al. 2020, RigL).

    ``erk="rigl"`` (default, RigL's ``get_sparsities_erdos_renyi``): a layer whose density would
    exceed 1 is made dense and ε is re-solved for the rest, until no layer exceeds 1.
    ``erk="clamp"`` (TurboPrune): solve once and clamp to 1, so the total can land under target.
    """
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / numel[n] for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        rhs = 0.0
        divisor = 0.0
        for n in shapes:
            if n in dense:
                rhs -= (1.0 - density) * numel[n]
            else:
                rhs += density * numel[n]
                divisor += raw[n] * numel[n]
        if divisor == 0:
            return dict.fromkeys(shapes, 1.0)
        eps = rhs / divisor
        if erk == "clamp":
            return {n: min(1.0, eps * raw[n]) for n in shapes}
        free = [n for n in shapes if n not in dense]
        max_raw = max(raw[n] for n in free)
        if max_raw * eps > 1.0:
            dense.update(n for n in free if raw[n] == max_raw)
            continue
        return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


def er_balanced_densities(shapes: Mapping[str, torch.Size], density: float, **_: Any) -> dict[str, float]:
    """ER-balanced (Gadhikar et al. 2023): each layer keeps dN/L weights, capped at N_l; what a capped
    layer cannot take is shared among the layers not yet visited (TurboPrune's ``prune_er_balanced``). As in
    TurboPrune, what the *last* layers cannot take is lost, so the total can land under the target."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    budget = density * sum(numel.values())
    out = {}
    names = list(shapes)
    for i, n in enumerate(names):
        share = budget / (len(names) - i)
        keep = min(share, numel[n])
        out[n] = keep / numel[n]
        budget -= keep
    return out


ERK_VARIANTS = ("rigl", "clamp")

SMART_RATIO_VARIANTS: dict[str, Callable[[int, int], float]] = {
    # (j, i) = (L - l + 1, l)
    "quadratic": lambda j, i: float(j * j + j),
    "linear": lambda j, i: float(j),
    "cubic": lambda j, i: float(j**3),
    "ascend": lambda j, i: float(i * i + i),
    "uniform": lambda j, i: 1.0,
}


def smart_ratio_densities(
    shapes: Mapping[str, torch.Size],
    density: float,
    kinds: Mapping[str, str],
    variant: str = "quadratic",
    linear_keep_ratio: float = 0.3,
    l2_scaling: bool = False,
    **_: Any,
) -> dict[str, float]:
    """Su et al. 2020's smart ratios, exactly as ``pruner/SmartRatio.py`` of their ``sanity-checking-pruning`` code.

    Layers l = 1..L in module order (L counts the linear layers too). Conv layers get the raw ratio
    r_l = (L−l+1)² + (L−l+1) (``variant`` ablations: linear, cubic, ascend = l² + l, uniform), divided
    by l² when ``l2_scaling`` (that code's non-ResNet rule, used for VGG). Linear layers keep
    ``linear_keep_ratio``. With goal = ⌊N(1−s)⌋ − ⌊0.3 N_lin⌋ and TEST = Σ_conv ⌊N_l r_l⌋,
    p_l = (goal / TEST) r_l. Walking the conv layers in order, p_l > 1 is clipped to 1 and the excess
    (in weights) is carried to the following layers up to their free capacity; the walk stops at the
    first layer that neither overflows nor receives a carry.
    """
    if variant not in SMART_RATIO_VARIANTS:
        raise ConfigError(f"unknown smart-ratio variant {variant!r}; choose from: {', '.join(SMART_RATIO_VARIANTS)}")
    names = list(shapes)
    numel = {n: math.prod(s) for n, s in shapes.items()}
    L = len(names)
    conv = [n for n in names if kinds[n] == "conv"]
    if not conv:
        raise ConfigError("smart-ratio needs convolutional layers")
    linear = [n for n in names if kinds[n] != "conv"]
    raw = {}
    for idx, n in enumerate(names, start=1):
        if n in conv:
            r = SMART_RATIO_VARIANTS[variant](L - idx + 1, idx)
            raw[n] = r / idx**2 if l2_scaling else r
    n_total = sum(numel.values())
    n_linear = sum(numel[n] for n in linear)
    goal = math.floor(n_total * density) - math.floor(linear_keep_ratio * n_linear)
    if goal <= 0:
        raise ConfigError(
            f"smart-ratio: the linear layers' fixed keep ratio {linear_keep_ratio} alone exceeds the budget at "
            f"density {density:.4g} (the conv layers would collapse); lower the sparsity or linear_keep_ratio"
        )
    test = sum(math.floor(numel[n] * raw[n]) for n in conv)
    p = {n: goal / test * raw[n] for n in conv}
    carry = 0.0
    for n in conv:
        if p[n] > 1.0:
            carry += (p[n] - 1.0) * numel[n]
            p[n] = 1.0
        elif carry > 0:
            take = min(carry, (1.0 - p[n]) * numel[n])
            p[n] += take / numel[n]
            carry -= take
        else:
            break
    out = {n: p.get(n, linear_keep_ratio) for n in names}
    return {n: max(0.0, min(1.0, d)) for n, d in out.items()}


DISTRIBUTIONS: dict[str, Callable[..., dict[str, float]]] = {
    "uniform": uniform_densities,
    "erk": erk_densities,
    "er-balanced": er_balanced_densities,
    "smart-ratio": smart_ratio_densities,
}


def layer_kinds(model: nn.Module, names: Sequence[str]) -> dict[str, str]:
    """``conv`` or ``linear`` for each named weight."""
    modules = dict(model.named_modules())
    return {n: "linear" if isinstance(modules[n.rsplit(".", 1)[0]], nn.Linear) else "conv" for n in names}


SMART_RATIO_SCALINGS = ("non-resnet", "vgg")


def smart_ratio_l2_scaling(model: nn.Module, rule: str = "non-resnet") -> bool:
    """Whether smart ratios divide by l² for ``model``: ``non-resnet`` (Su et al.'s code: ``arch !=
    'resnet'``) for every network whose class is not a ResNet; ``vgg`` for VGG networks only."""
    if rule not in SMART_RATIO_SCALINGS:
        raise ConfigError(f"unknown smart-ratio scaling {rule!r}; choose from: {', '.join(SMART_RATIO_SCALINGS)}")
    name = type(model).__name__.lower()
    return "resnet" not in name if rule == "non-resnet" else "vgg" in name


def random_mask(
    model: nn.Module,
    names: Sequence[str],
    mask: Mask,
    sparsity: float,
    distribution: str = "uniform",
    generator: torch.Generator | None = None,
    l2_scaling: bool | None = None,
    **options: Any,
) -> Mask:
    """Random mask with exact per-layer counts; densities from ``distribution``. Within each layer the
    kept weights are drawn uniformly among those ``mask`` keeps. ``l2_scaling=None`` applies the
    smart-ratio /l² rule as Su et al.'s code does: to every network that is not a ResNet."""
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"unknown layer distribution {distribution!r}; choose from: {', '.join(DISTRIBUTIONS)}")
    shapes = layer_shapes(model, names)
    if l2_scaling is None:
        l2_scaling = smart_ratio_l2_scaling(model)
    densities = DISTRIBUTIONS[distribution](
        shapes, 1.0 - sparsity, kinds=layer_kinds(model, names), l2_scaling=l2_scaling, **options
    )
    rounding = math.floor if distribution == "smart-ratio" else round
    generator = generator or torch.Generator().manual_seed(0)
    out = {}
    for n in names:
        numel = math.prod(shapes[n])
        keep = max(1, min(numel, rounding(densities[n] * numel)))
        scores = torch.rand(shapes[n], generator=generator)
        scores = torch.where(mask[n].cpu(), scores, torch.full_like(scores, -1.0))
        flat = scores.flatten()
        kept = torch.zeros(numel, dtype=torch.bool)
        kept[torch.topk(flat, keep).indices] = True
        out[n] = kept.view(shapes[n]) & mask[n].cpu()
    return out
