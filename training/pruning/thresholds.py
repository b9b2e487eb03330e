"""Thresholding keep scores into masks, globally or per layer; ties at the threshold are pruned."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from training.checks import FRACTION, check_number
from training.errors import ConfigError
from training.masks import Mask


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
        new = {n: (s > threshold).cpu() & mask[n].cpu() for n, s in masked.items()}
        _check_not_emptied(new, flat.numel() - k)
        return new
    new = {}
    for n, s in masked.items():
        k = round(sparsity * s.numel())
        if k < 1:
            new[n] = mask[n].clone().cpu()
            continue
        threshold = torch.kthvalue(s.flatten().cpu(), k).values.item()
        new[n] = (s > threshold).cpu() & mask[n].cpu()
    _check_not_emptied(new, sum(s.numel() - round(sparsity * s.numel()) for s in masked.values()))
    return new


def _check_not_emptied(new: Mapping[str, torch.Tensor], wanted: int) -> None:
    """Ties at the threshold are pruned; when every score ties (all zero: no gradient reached the weights,
    e.g. through a zero-initialised head) that would prune everything. Refuse rather than return it."""
    if wanted > 0 and not any(bool(m.any()) for m in new.values()):
        raise ConfigError(
            "the pruning scores are all tied, so the mask would keep no weight; a zero-initialised layer may "
            "block the gradients the scores need"
        )


SCOPES = ("global", "layerwise")


def check_sparsity(sparsity: float) -> None:
    """Raise :class:`ConfigError` unless ``0 <= sparsity < 1``."""
    check_number(sparsity, "sparsity", FRACTION, error=ConfigError)
