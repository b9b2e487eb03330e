"""REPAIR (Jordan et al. 2023) for networks without BatchNorm: after interpolating two networks, reset
each channel's pre-activation statistics to the interpolation of the endpoints' statistics.

For every module named in the model's permutation declaration as a group's activation (for the
``mlp``, each hidden linear layer's output, i.e. its pre-activations), the per-channel mean μ and
standard deviation σ over ``data`` (samples and positions pooled, population statistics, float64)
are measured on A, on B and on the interpolated network θ(α). The target is
``μ_t = (1 − α)μ_A + αμ_B``, ``σ_t = (1 − α)σ_A + ασ_B``, and a forward hook maps the module's
output ``y ↦ (y − μ)·σ_t/σ + μ_t`` per channel (a channel with σ = 0 is only shifted).

The modules are corrected one at a time in module order, each measured with the corrections before it
in place, so after :func:`repair` every corrected channel has exactly the target mean and standard
deviation on ``data`` (one pass over ``data`` per corrected module). Networks with BatchNorm use
BatchNorm recalibration instead (:func:`landscape.connectivity.interpolate.recalibrate_bn`), which plays this role.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from training.errors import DataError

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def channel_stats(
    model: nn.Module, names: Sequence[str], data: Iterable, device: torch.device, batches: int | None = None
) -> Stats:
    """Per-channel ``(mean, std)`` (float64, on the CPU) of the outputs of modules ``names`` of
    ``model`` in eval mode over ``data`` (at most ``batches`` batches); channels on dimension 1."""
    modules = dict(model.named_modules())
    sums: dict[str, list[torch.Tensor | int]] = {}

    def hook(name: str):
        def record(module, inputs, output):
            y = output.detach().movedim(1, -1).reshape(-1, output.shape[1]).double()
            new = [y.sum(0), (y * y).sum(0), y.shape[0]]
            sums[name] = new if name not in sums else [s + n for s, n in zip(sums[name], new, strict=True)]

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        source = data if batches is None else itertools.islice(data, batches)
        for x, _ in source:
            model(x.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not sums:
        raise DataError("REPAIR needs data: the data iterable is empty")
    out = {}
    for n, (s, ss, count) in sums.items():
        mean = s / count
        out[n] = (mean.cpu(), (ss / count - mean**2).clamp_min(0).sqrt().cpu())
    return out


class ChannelAffine:
    """Forward hooks mapping the output of named modules ``y ↦ y·scale + shift`` per channel (dim 1)."""

    def __init__(self, model: nn.Module, names: Sequence[str]):
        modules = dict(model.named_modules())
        self.affine: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def apply(module, inputs, output):
            if name not in self.affine:
                return None
            scale, shift = self.affine[name]
            shape = [1, -1] + [1] * (output.dim() - 2)
            return output * scale.to(output).reshape(shape) + shift.to(output).reshape(shape)

        return apply

    def remove(self) -> None:
        """Remove the hooks: the model computes its uncorrected function again."""
        for h in self.handles:
            h.remove()
        self.handles = []


def interpolate_stats(stats_a: Stats, stats_b: Stats, alpha: float) -> Stats:
    """``(1 − α)·stats_A + α·stats_B`` for means and standard deviations alike."""
    return {
        n: (torch.lerp(stats_a[n][0], stats_b[n][0], alpha), torch.lerp(stats_a[n][1], stats_b[n][1], alpha))
        for n in stats_a
    }


@torch.no_grad()
def repair(
    model: nn.Module,
    target: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    data: Iterable,
    device: torch.device,
    batches: int | None = None,
) -> ChannelAffine:
    """Install hooks on ``model`` so that each module in ``target`` has, per channel, the target
    ``(mean, std)`` on ``data``; see the module doc. Returns the hooks (call ``.remove()`` to undo)."""
    order = [n for n, _ in model.named_modules() if n in target]
    hooks = ChannelAffine(model, order)
    for name in order:
        mean, std = channel_stats(model, [name], data, device, batches)[name]
        t_mean, t_std = target[name]
        scale = torch.where(std > 0, t_std / std.clamp_min(1e-300), torch.ones_like(std))
        hooks.affine[name] = (scale, t_mean - mean * scale)
    return hooks
