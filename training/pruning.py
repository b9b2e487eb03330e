"""Pruning: scorers, layer-density rules, thresholding, and mask operations for sanity checks.

Entry point: :func:`prune`. Conventions (methods.md §1):

* Scores live on the prunable parameters (:func:`training.masks.prunable_names`). Every scorer
  returns a *keep score*: larger means more worth keeping. GraSP, which removes its largest raw
  scores, therefore returns the negated raw score (:func:`grasp_raw_scores` gives the raw one).
* ``scope="global"`` pools all keep scores and prunes ``k = round(s * N)`` weights: every score
  ``<= kthvalue(k)`` is pruned, so ties at the threshold are pruned (SF's ``_global_mask``,
  TP's ``prune_mag``). ``scope="layerwise"`` applies the same rule per layer with
  ``k_l = round(s * N_l)``. With ``k = 0`` nothing new is pruned.
* An existing ``mask`` is respected: its pruned weights get score −inf, so they stay pruned, and
  the sparsity ``s`` is measured over all prunable weights (pruned ones included).
* ``random`` ignores ``scope``: its layer densities come from a ``distribution`` (uniform, erk,
  er-balanced, smart-ratio) and each layer keeps exactly ``round(d_l * N_l)`` weights
  (``floor`` for smart ratios, as SC), drawn among the surviving ones.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import ConfigError
from training.masks import Mask, density, full_mask, layer_densities, prunable_names

# --------------------------------------------------------------------------------------- thresholding


def _masked_scores(scores: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for n, s in scores.items():
        s = torch.nan_to_num(s.detach().double(), nan=-math.inf)
        out[n] = torch.where(mask[n].to(s.device), s, torch.full_like(s, -math.inf))
    return out


def threshold_mask(
    scores: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], sparsity: float, scope: str = "global"
) -> Mask:
    """Prune the lowest keep scores to reach ``sparsity`` over all masked weights; ties are pruned."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; choose from: {', '.join(SCOPES)}")
    check_sparsity(sparsity)
    masked = _masked_scores(scores, mask)
    if scope == "global":
        flat = torch.cat([s.flatten() for s in masked.values()])
        k = round(sparsity * flat.numel())
        if k < 1:
            return {n: mask[n].clone() for n in masked}
        threshold = torch.kthvalue(flat.cpu(), k).values.item()
        return {n: (s > threshold).cpu() & mask[n].cpu() for n, s in masked.items()}
    new = {}
    for n, s in masked.items():
        k = round(sparsity * s.numel())
        if k < 1:
            new[n] = mask[n].clone().cpu()
            continue
        threshold = torch.kthvalue(s.flatten().cpu(), k).values.item()
        new[n] = (s > threshold).cpu() & mask[n].cpu()
    return new


SCOPES = ("global", "layerwise")


def check_sparsity(sparsity: float) -> None:
    """Raise :class:`ConfigError` unless ``0 <= sparsity < 1``."""
    if not 0.0 <= float(sparsity) < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")


# ------------------------------------------------------------------------------------------- scorers


def _params(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    params = dict(model.named_parameters())
    return [params[n] for n in names]


@torch.no_grad()
def _apply(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for n, m in mask.items():
        params[n].mul_(m.to(device=params[n].device, dtype=params[n].dtype))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def magnitude_scores(model: nn.Module, names: Sequence[str], mask: Mask, data: Any = None, **_: Any) -> dict:
    """|w| (methods.md §2.5)."""
    return {n: p.detach().abs() for n, p in zip(names, _params(model, names), strict=True)}


def snip_scores(
    model: nn.Module, names: Sequence[str], mask: Mask, data: Iterable | None = None, bn_mode: str = "train", **_: Any
) -> dict:
    """|w ⊙ ∂L/∂w| with L the mean cross-entropy, gradients summed over the batches of ``data``
    (methods.md §2.2), on a masked copy of ``model`` in train (default) or eval mode."""
    if data is None:
        raise ConfigError("snip needs labelled data")
    net = copy.deepcopy(model)
    _apply(net, mask)
    net.train(bn_mode == "train")
    params = _params(net, names)
    device = _device(net)
    grads = [torch.zeros_like(p) for p in params]
    for x, y in data:
        loss = F.cross_entropy(net(x.to(device)), y.to(device))
        for g, d in zip(grads, torch.autograd.grad(loss, params), strict=True):
            g += d
    return {n: (p.detach() * g).abs() for n, p, g in zip(names, params, grads, strict=True)}


def grasp_raw_scores(
    model: nn.Module,
    names: Sequence[str],
    mask: Mask,
    data: Iterable | None = None,
    temperature: float = 200.0,
    reinit_last: bool = True,
    bn_mode: str = "train",
    seed: int = 0,
    **_: Any,
) -> dict:
    """GraSP's raw score S = −θ ⊙ Hg, normalised by |ΣS| (methods.md §2.4, SC/GR ``GraSP.py``).

    On a deep copy whose last Linear layer is re-initialised Xavier-normal (``reinit_last``, drawn
    from a generator seeded with ``seed``, so the scores are reproducible), the
    samples of ``data`` are split into two halves; g = Σ_halves ∇L(f/T) without a graph, then
    Hg = Σ_halves ∇(∇L(f/T) · stop_grad(g)). GraSP removes the *largest* S.
    """
    if data is None:
        raise ConfigError("grasp needs labelled data")
    net = copy.deepcopy(model)
    if reinit_last:
        last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.xavier_normal_(last.weight, generator=torch.Generator(last.weight.device).manual_seed(seed))
    _apply(net, mask)
    net.train(bn_mode == "train")
    device = _device(net)
    batches = list(data)
    x = torch.cat([b[0] for b in batches]).to(device)
    y = torch.cat([b[1] for b in batches]).to(device)
    half = len(y) // 2
    halves = [(x[:half], y[:half]), (x[half:], y[half:])] if half else [(x, y)]
    params = _params(net, names)
    g = [torch.zeros_like(p) for p in params]
    for xb, yb in halves:
        loss = F.cross_entropy(net(xb) / temperature, yb)
        for acc, d in zip(g, torch.autograd.grad(loss, params), strict=True):
            acc += d
    hg = [torch.zeros_like(p) for p in params]
    for xb, yb in halves:
        loss = F.cross_entropy(net(xb) / temperature, yb)
        grad_w = torch.autograd.grad(loss, params, create_graph=True)
        z = sum((gw * gs.detach()).sum() for gw, gs in zip(grad_w, g, strict=True))
        for acc, d in zip(hg, torch.autograd.grad(z, params), strict=True):
            acc += d
    raw = {n: -(p.detach() * h) for n, p, h in zip(names, params, hg, strict=True)}
    total = sum(s.sum() for s in raw.values()).abs()
    if total > 0:
        raw = {n: s / total for n, s in raw.items()}
    return raw


def grasp_scores(model: nn.Module, names: Sequence[str], mask: Mask, data: Iterable | None = None, **kw: Any) -> dict:
    """Keep score for GraSP: the negated raw score, so thresholding removes the largest raw scores."""
    return {n: -s for n, s in grasp_raw_scores(model, names, mask, data, **kw).items()}


def synflow_round_scores(
    model: nn.Module, names: Sequence[str], mask: Mask, input_shape: Sequence[int], float64: bool = True
) -> tuple[dict, float]:
    """One SynFlow evaluation: scores |θ ⊙ ∂R/∂θ| with R = Σ f(1) on |θ| (all state-dict tensors made
    non-negative), masked, in eval mode. Returns ``(scores, R)``."""
    net = copy.deepcopy(model)
    if float64:
        net = net.double()
    net.eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    _apply(net, mask)
    params = _params(net, names)
    device = _device(net)
    x = torch.ones((1, *input_shape), dtype=next(net.parameters()).dtype, device=device)
    r = net(x).sum()
    grads = torch.autograd.grad(r, params)
    return {n: (p.detach() * g).abs() for n, p, g in zip(names, params, grads, strict=True)}, float(r.detach())


def synflow_prune(
    model: nn.Module,
    names: Sequence[str],
    mask: Mask,
    sparsity: float,
    scope: str = "global",
    rounds: int = 100,
    float64: bool = True,
    input_shape: Sequence[int] | None = None,
    data: Iterable | None = None,
) -> Mask:
    """Iterative SynFlow (methods.md §2.3): ``rounds`` rounds on the exponential schedule
    d_k = d_0 (d / d_0)^{k/n}, re-masking after each round (d_0 is the density of ``mask``)."""
    if input_shape is None:
        if data is None:
            raise ConfigError("synflow needs input_shape (or data to read it from)")
        input_shape = tuple(next(iter(data))[0].shape[1:])
    if rounds < 1:
        raise ConfigError(f"synflow rounds must be at least 1, got {rounds}")
    total = sum(m.numel() for m in mask.values())
    d0 = sum(int(m.sum()) for m in mask.values()) / total
    target = 1.0 - sparsity
    current = {n: m.clone() for n, m in mask.items()}
    if target >= d0:
        return current
    for k in range(1, rounds + 1):
        scores, _ = synflow_round_scores(model, names, current, input_shape, float64)
        density_k = d0 * (target / d0) ** (k / rounds)
        current = threshold_mask(scores, current, 1.0 - density_k, scope)
    return current


@dataclass(frozen=True)
class Scorer:
    """A keep-score function ``(model, names, mask, data, **options) -> {name: scores}``."""

    fn: Callable[..., dict]
    needs_data: bool


SCORERS: dict[str, Scorer] = {
    "magnitude": Scorer(magnitude_scores, needs_data=False),
    "snip": Scorer(snip_scores, needs_data=True),
    "grasp": Scorer(grasp_scores, needs_data=True),
}
METHODS = ("random", "magnitude", "snip", "grasp", "synflow")

# -------------------------------------------------------------------------------- layer densities


def _shapes(model: nn.Module, names: Sequence[str]) -> dict[str, torch.Size]:
    params = dict(model.named_parameters())
    return {n: params[n].shape for n in names}


def uniform_densities(shapes: Mapping[str, torch.Size], density: float, **_: Any) -> dict[str, float]:
    """d_l = d for every layer."""
    return dict.fromkeys(shapes, density)


def erk_densities(shapes: Mapping[str, torch.Size], density: float, erk: str = "rigl", **_: Any) -> dict[str, float]:
    """Erdős–Rényi-kernel densities d_l = ε · Σdims_l / Πdims_l with Σ d_l N_l = d N (methods.md §2.1).

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
    layer cannot take is shared among the layers not yet visited (TP ``prune_er_balanced``). As in
    TP, what the *last* layers cannot take is lost, so the total can land under the target."""
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
    """Su et al.'s smart ratios, exactly as SC ``pruner/SmartRatio.py`` (methods.md §2.6).

    Layers l = 1..L in module order (L counts the linear layers too). Conv layers get the raw ratio
    r_l = (L−l+1)² + (L−l+1) (``variant`` ablations: linear, cubic, ascend = l² + l, uniform), divided
    by l² when ``l2_scaling`` (SC's non-ResNet rule, used for VGG). Linear layers keep
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
    kept weights are drawn uniformly among those ``mask`` keeps. ``l2_scaling=None`` enables the
    smart-ratio /l² rule for VGG models (SC applies it to every non-ResNet; pass True for that)."""
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"unknown layer distribution {distribution!r}; choose from: {', '.join(DISTRIBUTIONS)}")
    shapes = _shapes(model, names)
    if l2_scaling is None:
        l2_scaling = "vgg" in type(model).__name__.lower()
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


# --------------------------------------------------------------------------------------------- prune


def prune(
    model: nn.Module,
    method: str,
    sparsity: float,
    data: Iterable | None = None,
    mask: Mapping[str, torch.Tensor] | None = None,
    scope: str = "global",
    names: Sequence[str] | None = None,
    **options: Any,
) -> Mask:
    """Mask over the prunable parameters of ``model`` at ``sparsity`` (fraction of all prunable
    weights that are zero), by ``method`` in :data:`METHODS`. See the module docstring for the
    conventions; ``options`` go to the scorer (e.g. ``distribution`` and ``generator`` for random,
    ``rounds``/``float64``/``input_shape`` for synflow, ``temperature`` for grasp). ``model`` is
    never modified."""
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; choose from: {', '.join(SCOPES)}")
    if names is None:
        names = list(mask) if mask is not None else prunable_names(model)
    current = {n: m.clone().cpu() for n, m in mask.items()} if mask is not None else full_mask(model, list(names))
    if method == "random":
        return random_mask(model, names, current, sparsity, **options)
    if method == "synflow":
        return synflow_prune(model, names, current, sparsity, scope, data=data, **options)
    if method not in SCORERS:
        raise ConfigError(f"unknown pruning method {method!r}; choose from: {', '.join(METHODS)}")
    scorer = SCORERS[method]
    if scorer.needs_data and data is None:
        raise ConfigError(f"pruning method {method} needs labelled data")
    scores = scorer.fn(model, names, current, data, **options)
    return threshold_mask(scores, current, sparsity, scope)


# ------------------------------------------------------------------------------- sanity-check ops


def rearrange(mask: Mapping[str, torch.Tensor], generator: torch.Generator) -> Mask:
    """Layerwise rearrange (Su et al.): permute each layer's mask, keeping its count."""
    out = {}
    for n, m in mask.items():
        flat = m.flatten()
        out[n] = flat[torch.randperm(flat.numel(), generator=generator)].view(m.shape)
    return out


@torch.no_grad()
def shuffle_weights(
    state: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Weight shuffling (Su et al.): keep the mask, permute the surviving values within each layer.
    Returns a new state dict; entries outside ``mask`` are copied unchanged."""
    out = {k: v.clone() for k, v in state.items()}
    for n, m in mask.items():
        flat = out[n].flatten()
        idx = m.flatten().nonzero().squeeze(1)
        flat[idx] = flat[idx][torch.randperm(idx.numel(), generator=generator)]
        out[n] = flat.view(m.shape)
    return out


def keep_ratios(mask: Mapping[str, torch.Tensor]) -> tuple[dict[str, float], float]:
    """``({layer: ||m_l||_0 / N_l}, total density)``, layers in mask order."""
    return layer_densities(mask), density(mask)
