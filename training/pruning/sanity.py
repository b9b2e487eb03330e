"""Su et al.'s mask operations for sanity checks: layerwise rearrange and weight shuffling."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from training.errors import ConfigError
from training.masks import Mask


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


MASK_OPS = {
    "none": "no change",
    "rearrange": "permute each layer's mask, keeping its count (layerwise rearrange)",
    "shuffle-weights": "keep the mask, permute the surviving weights within each layer",
}


def apply_mask_op(
    op: str, state: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], Mask]:
    """Apply mask operation ``op`` (a key of :data:`MASK_OPS`) to a mask and its starting weights."""
    if op not in MASK_OPS:
        raise ConfigError(f"unknown mask operation {op!r}; choose from: {', '.join(MASK_OPS)}")
    if op == "rearrange":
        return dict(state), rearrange(mask, generator)
    if op == "shuffle-weights":
        return shuffle_weights(state, mask, generator), dict(mask)
    return dict(state), dict(mask)
