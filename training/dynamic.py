"""Masks that change during training: RigL, SET, gradual magnitude pruning (GMP, GMP*) and AC/DC.

Each updater is bound to one stage (:class:`training.stages.Stage`, field ``dynamic``) and called by the
trainer around every step: :meth:`Dynamic.before_step` after the backward pass, before the gradients are
masked (the dense gradient is ``p.grad`` then) and may ask to skip the SGD step; :meth:`Dynamic.after_step`
after the step; :meth:`Dynamic.epoch_start` before each epoch. ``t`` counts the stage's steps from 0.

A mask change updates the mask the trainer saves (CPU bools, in place), the factors that enforce it
(:class:`training.masks.MaskedParameters`) and the weights: removed weights become exact zeros, and
their momentum is zeroed; added weights start at zero with zero momentum, except a weight dropped and
re-grown in the same update, which keeps its value and momentum (RigL's ``mask2 & ~old_mask``).
Every update is recorded (``history``: the step, the epoch, the kind and each layer's density) and
written to the stage's ``mask_history.json``; its ``step`` is the stage step t it belongs to (RigL: it
replaces t's SGD update; SET and GMP: it follows t's; AC/DC: it precedes t, the first step of an epoch).
Random draws (RigL's tie-breaking noise, SET's growth) come from a generator seeded by
``(seed, level, t)``, so a resumed stage draws what an uninterrupted one does. The FLOPs of every step
are booked (:mod:`training.flops`): 3·f(M_t) per sample, plus RigL's dense weight gradient
(f_D − f_S per sample) on its update steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.fileio import atomic_write_json, derive_seed, read_json
from training.flops import TRAIN_FACTOR, FlopModel
from training.masks import Mask, MaskedParameters, layer_densities
from training.pruning import prune

HISTORY = "mask_history.json"


@dataclass
class Context:
    """What an updater acts on: the stage's model, its mask (CPU bools, saved with checkpoints), the
    factors enforcing it, the FLOP model, the stage's length in steps and epochs, and the run's seed."""

    model: torch.nn.Module
    mask: Mask
    masked: MaskedParameters
    flops: FlopModel
    total_steps: int
    steps_per_epoch: int
    seed: int
    level: int
    directory: Path
    history: list[dict[str, Any]] = field(default_factory=list)


class Dynamic:
    """Base of the updaters: mask bookkeeping, momentum, history and FLOPs (see the module docstring)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.params = dict(ctx.model.named_parameters())
        self.booked = 0.0  # FLOPs of the steps since the last :meth:`take_flops`
        self._forward = ctx.flops.forward(ctx.mask)
        self.epoch = 0

    # ------------------------------------------------------------------ hooks
    def epoch_start(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Before the stage's ``epoch``-th epoch (from 0)."""
        self.epoch = epoch

    def before_step(self, t: int, batch: int, optimizer: torch.optim.Optimizer) -> bool:
        """After the backward pass of step ``t`` (``batch`` samples, all ranks): True skips the SGD step."""
        self.booked += TRAIN_FACTOR * self._forward * batch
        return False

    def after_step(self, t: int, optimizer: torch.optim.Optimizer) -> None:
        """After step ``t``'s SGD step and the re-masking of the weights."""

    def take_flops(self) -> float:
        """The FLOPs booked since the last call."""
        booked, self.booked = self.booked, 0.0
        return booked

    # ------------------------------------------------------------------ helpers
    @torch.no_grad()
    def set_masks(self, new: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer, t: int, kind: str) -> None:
        """Install ``new`` (bool tensors on the parameters' device): zero removed and added weights (a
        weight removed and re-added keeps its value) and their momentum, update the enforced factors and
        the saved mask, and record the update."""
        names = self.ctx.masked.names
        for i, name in enumerate(names):
            if name not in new:
                continue
            p, old = self.params[name], self.ctx.masked.factors[i].bool()
            keep = new[name].to(p.device)
            changed = keep ^ old  # removed (old & ~keep) or added (keep & ~old)
            p.masked_fill_(changed, 0.0)
            buffer = optimizer.state.get(p, {}).get("momentum_buffer")
            if buffer is not None:
                buffer.masked_fill_(changed, 0.0)
            self.ctx.masked.factors[i] = keep.to(p.dtype)
            self.ctx.mask[name] = keep.cpu()
        self._forward = self.ctx.flops.forward(self.ctx.mask)
        self.record(t, kind)

    def record(self, t: int, kind: str) -> None:
        self.ctx.history.append(
            {"step": t, "epoch": self.epoch, "kind": kind, "densities": layer_densities(self.ctx.mask)}
        )

    def save(self) -> None:
        """Write the history (called at every epoch end, before the resume file)."""
        atomic_write_json(self.ctx.directory / HISTORY, {"updates": self.ctx.history})

    def generator(self, t: int, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(derive_seed(self.ctx.seed, "dst", self.ctx.level, t))


def load_history(directory: Path, completed_steps: int) -> list[dict[str, Any]]:
    """The updates recorded before ``completed_steps`` (a resumed stage drops any it will redo)."""
    found = read_json(directory / HISTORY) or {}
    return [u for u in found.get("updates", []) if u["step"] < completed_steps]


class DropGrow(Dynamic):
    """RigL (Evci et al. 2020) and SET (Mocanu et al. 2018). Every ``interval`` steps while t < ``end``·T,
    each masked layer drops ⌊α_t·n_l⌋ of its n_l active weights, the smallest by |w| (ties broken by
    N(0, 1e-5) noise), and grows as many among the others (the ones just dropped included): RigL by the
    largest dense-gradient magnitude |∂L/∂w| of the current batch, SET uniformly at random. Per-layer
    counts are conserved, so the initial layer densities hold. α_t = α·½(1 + cos(π t / T_end)) under
    ``anneal="cosine"``, α under ``"constant"``.

    RigL updates instead of the SGD step on an update step (both reference implementations do) and pays
    a dense weight gradient there; SET updates after the SGD step, as RigL's reference SET does. The
    first update is at t = ``interval`` (rigl-torch and sparsimony; RigL's TensorFlow code also updates at
    t = 0).
    """

    def __init__(self, ctx: Context, *, grow: str, fraction: float, interval: int, end: float, anneal: str):
        super().__init__(ctx)
        self.grow, self.fraction, self.interval, self.anneal = grow, fraction, interval, anneal
        self.end_step = int(end * ctx.total_steps)

    def drop_fraction(self, t: int) -> float:
        if self.anneal == "constant":
            return self.fraction
        return self.fraction * 0.5 * (1 + math.cos(math.pi * min(t, self.end_step) / self.end_step))

    def due(self, t: int) -> bool:
        return t >= self.interval and t % self.interval == 0 and t < self.end_step

    def before_step(self, t: int, batch: int, optimizer: torch.optim.Optimizer) -> bool:
        super().before_step(t, batch, optimizer)
        if self.grow != "gradient" or not self.due(t):
            return False
        self.booked += self.ctx.flops.dense_weight_gradient(self.ctx.mask) * batch  # the dense weight gradient
        self.update(t, optimizer)
        return True  # no SGD step on an update step

    def after_step(self, t: int, optimizer: torch.optim.Optimizer) -> None:
        if self.grow == "random" and self.due(t + 1):  # after the step that ends the interval
            self.update(t + 1, optimizer, at=t)

    @torch.no_grad()
    def update(self, t: int, optimizer: torch.optim.Optimizer, at: int | None = None) -> None:
        """The drop-and-grow of schedule step ``t``, recorded at stage step ``at`` (default ``t``)."""
        alpha = self.drop_fraction(t)
        new = {}
        for i, name in enumerate(self.ctx.masked.names):
            p, old = self.params[name], self.ctx.masked.factors[i].bool()
            gen = self.generator(t * 1009 + i, p.device)
            flat_old = old.flatten()
            active = int(flat_old.sum())
            n_drop = int(active * alpha)
            if n_drop == 0:
                continue
            noise = torch.randn(p.numel(), generator=gen, device=p.device, dtype=torch.float64) * 1e-5
            score = torch.where(flat_old, p.detach().flatten().abs().double() + noise, -math.inf)
            kept = torch.zeros_like(flat_old)
            kept[torch.topk(score, active - n_drop).indices] = True
            if self.grow == "gradient":
                grow_score = p.grad.detach().flatten().abs().double()
            else:
                grow_score = torch.rand(p.numel(), generator=gen, device=p.device, dtype=torch.float64)
            grow_score = torch.where(kept, -math.inf, grow_score)
            grown = torch.zeros_like(flat_old)
            grown[torch.topk(grow_score, n_drop).indices] = True
            new[name] = (kept | grown).view_as(old)
        if new:
            self.set_masks(new, optimizer, t if at is None else at, "drop-grow")


def cubic_sparsity(k: int, n: int, initial: float, final: float) -> float:
    """Zhu & Gupta's s = s_f + (s_i − s_f)(1 − k/n)³ at the k-th of n pruning steps (k = n: s_f)."""
    return final if n == 0 else final + (initial - final) * (1 - k / n) ** 3


class Gradual(Dynamic):
    """GMP (Zhu & Gupta 2017) and GMP* (Kurtic & Alistarh 2022). Pruning steps at t₀ + kΔt, k = 0..n, with
    t₀ = ``start``·T, n = ⌊(``end`` − ``start``)·T / Δt⌋; at step k the weights are magnitude-pruned
    (``scope`` global or layerwise, among the kept ones: masks only shrink) to the cubic sparsity
    s_k = s_f + (s_i − s_f)(1 − k/n)³. GMP* (``accelerated`` = s_a) jumps to s_a at k = 0 and then follows
    s_f + (s_a − s_f)(1 − k/n)³ (``cubic="span"``), or sparsimony's s_f + (s_a − s_f)(1 − (t − t₀)/t_end)³
    (``cubic="sparsimony"``, which reaches s_f only at its last pruning step, where it is set)."""

    def __init__(self, ctx: Context, *, final: float, start: float, end: float, interval: int, initial: float = 0.0,
                 accelerated: float | None = None, cubic: str = "span", scope: str = "layerwise"):  # fmt: skip
        super().__init__(ctx)
        self.final, self.initial, self.accelerated, self.cubic, self.scope = final, initial, accelerated, cubic, scope
        self.t0, self.interval = int(start * ctx.total_steps), interval
        self.t_end = int(end * ctx.total_steps)
        self.n = max((self.t_end - self.t0) // interval, 0)

    def sparsity_at(self, k: int) -> float:
        if self.accelerated is None:
            return cubic_sparsity(k, self.n, self.initial, self.final)
        if k == 0 or self.cubic == "span":
            return cubic_sparsity(k, self.n, self.accelerated, self.final)
        t = self.t0 + k * self.interval
        if k == self.n:
            return self.final
        return self.final + (self.accelerated - self.final) * (1 - (t - self.t0) / self.t_end) ** 3

    def after_step(self, t: int, optimizer: torch.optim.Optimizer) -> None:
        step = t + 1  # pruned after the step that reaches it
        if step < self.t0 or (step - self.t0) % self.interval or (step - self.t0) // self.interval > self.n:
            return
        target = self.sparsity_at((step - self.t0) // self.interval)
        names = self.ctx.masked.names
        mask = prune(self.ctx.model, "magnitude", target, mask=self.ctx.mask, scope=self.scope, names=names)
        self.set_masks(mask, optimizer, t, "prune")


class AlternatingCompressed(Dynamic):
    """AC/DC (Peste et al. 2021), by epochs of the stage (E in all): dense for the first W = ``warmup``·E;
    then compressed (C) and decompressed (D) phases of P = ``phase``·E epochs alternate, starting with C;
    the D phase that ends at E − F is stretched to at least L = ``last_dense``·E; the last F = ``final``·E
    epochs are compressed. A C phase starts from a mask computed from scratch: global magnitude pruning of
    every prunable weight to the target. A D phase restores every weight (the pruned ones at zero) and
    zeroes the whole momentum buffer (AC/DC's ``--reset_momentum_after_recycling``)."""

    def __init__(self, ctx: Context, *, target: float, epochs: int, warmup: float, phase: float, last_dense: float,
                 final: float):  # fmt: skip
        super().__init__(ctx)
        self.target, self.epochs = target, epochs
        self.w, self.p = round(warmup * epochs), max(1, round(phase * epochs))
        self.f = max(1, round(final * epochs))
        self.last_d_start = epochs - self.f - max(1, round(last_dense * epochs))

    def phase_of(self, epoch: int) -> str:
        """``dense`` (warm-up), ``compressed`` or ``decompressed`` for the stage's epoch (from 0)."""
        if epoch < self.w:
            return "dense"
        if epoch >= self.epochs - self.f:
            return "compressed"
        if epoch >= self.last_d_start:
            return "decompressed"
        return "compressed" if ((epoch - self.w) // self.p) % 2 == 0 else "decompressed"

    def epoch_start(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        super().epoch_start(epoch, optimizer)
        now = self.phase_of(epoch)
        if now == (self.phase_of(epoch - 1) if epoch > 0 else "dense"):  # the stage starts dense
            return
        t = epoch * self.ctx.steps_per_epoch
        names = self.ctx.masked.names
        if now == "compressed":  # from scratch: every prunable weight competes
            mask = prune(self.ctx.model, "magnitude", self.target, names=names)
            self.set_masks(mask, optimizer, t, "compress")
        else:
            self.set_masks({n: torch.ones_like(m) for n, m in self.ctx.mask.items()}, optimizer, t, "decompress")
            for p in self.params.values():
                buffer = optimizer.state.get(p, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.zero_()
