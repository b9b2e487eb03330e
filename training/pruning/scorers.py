"""Keep scores of the score-based pruning methods: magnitude, SNIP, GraSP and iterative SynFlow.

Every scorer returns a *keep score*: larger means more worth keeping. GraSP, which removes its
largest raw scores, therefore returns the negated raw score (:func:`grasp_raw_scores` gives the raw one).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import ConfigError
from training.masks import Mask
from training.models.attention import math_attention
from training.pruning.thresholds import threshold_mask


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
    """|w|, the magnitude score (as TurboPrune's and ``imp-lrr-lts``'s ``prune_mag``)."""
    return {n: p.detach().abs() for n, p in zip(names, _params(model, names), strict=True)}


def snip_scores(
    model: nn.Module, names: Sequence[str], mask: Mask, data: Iterable | None = None, bn_mode: str = "train", **_: Any
) -> dict:
    """|w ⊙ ∂L/∂w| with L the mean cross-entropy, gradients summed over the batches of ``data``
    (SNIP, Lee et al. 2019), on a masked copy of ``model`` in train (default) or eval mode."""
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
    """GraSP's raw score S = −θ ⊙ Hg, normalised by |ΣS| (Wang et al. 2020; ``pruner/GraSP.py`` of the GraSP
    code and of Su et al.'s ``sanity-checking-pruning``, which adopted it).

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
        with math_attention():  # a backward that is differentiated again (training.models.attention)
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
    """Iterative SynFlow (Tanaka et al. 2020, Synaptic-Flow): ``rounds`` rounds on the exponential schedule
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
