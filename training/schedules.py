"""Learning-rate schedules as pure functions of the step.

Conventions. ``step`` counts optimiser steps from 0 within one cycle of ``total`` steps; the value
returned is the learning rate used *for* that step. ``peak`` is the configured ``lr``.

* ``one-cycle`` (TurboPrune's ``TriangularSchedule``): with ``W = round(warmup_fraction * total)``
  warmup steps, the rate rises linearly from ``warmup_start * peak`` at step 0 to ``peak`` at step W,
  then decays to 0 at step ``total`` (one past the last step): linearly,
  ``peak * (1 - (step - W) / (total - W))``, or along a half cosine,
  ``peak * (1 + cos(pi * (step - W) / (total - W))) / 2``.
* ``cyclic``: C cycles, each a one-cycle schedule over its own steps. The trainer builds a fresh
  optimiser (momentum reset) at every cycle start and never prunes between cycles. With
  ``skip_warmup`` the cycles after the first start at the peak (no warmup).
* ``step``: ``peak * gamma ** (number of milestones m with step >= round(m * total))``; milestones
  are fractions of the cycle (open_lth's 80/120 of 160 epochs is ``(0.5, 0.75)``).

"One-cycle for the same budget" as a cyclic run of C cycles of E epochs is one cycle of C·E epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from training.config import ScheduleConfig


def _linear_decay(progress: float) -> float:
    return 1.0 - progress


def _cosine_decay(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


DECAYS: dict[str, Callable[[float], float]] = {"linear": _linear_decay, "cosine": _cosine_decay}


def one_cycle(
    step: int,
    total: int,
    peak: float,
    warmup_fraction: float = 0.2,
    warmup_start: float = 0.2,
    decay: str = "linear",
) -> float:
    """Warmup from ``warmup_start*peak`` to ``peak`` over ``round(warmup_fraction*total)`` steps, then decay to 0."""
    if not 0 <= step < total:
        raise ValueError(f"step {step} outside [0, {total})")
    warmup = round(warmup_fraction * total)
    if step < warmup:
        return peak * (warmup_start + (1.0 - warmup_start) * step / warmup)
    return peak * DECAYS[decay]((step - warmup) / (total - warmup))


def step_schedule(step: int, total: int, peak: float, milestones: tuple[float, ...], gamma: float) -> float:
    """``peak`` times ``gamma`` for each milestone (a fraction of ``total``) already reached."""
    if not 0 <= step < total:
        raise ValueError(f"step {step} outside [0, {total})")
    drops = sum(step >= round(m * total) for m in milestones)
    return peak * gamma**drops


def _one_cycle_from(cfg: ScheduleConfig, peak: float, step: int, total: int, cycle: int) -> float:
    return one_cycle(step, total, peak, cfg.warmup_fraction, cfg.warmup_start, cfg.decay)


def _cyclic_from(cfg: ScheduleConfig, peak: float, step: int, total: int, cycle: int) -> float:
    warmup = 0.0 if (cfg.skip_warmup and cycle > 1) else cfg.warmup_fraction
    return one_cycle(step, total, peak, warmup, cfg.warmup_start, cfg.decay)


def _step_from(cfg: ScheduleConfig, peak: float, step: int, total: int, cycle: int) -> float:
    return step_schedule(step, total, peak, cfg.milestones, cfg.gamma)


SCHEDULES: dict[str, Callable[[ScheduleConfig, float, int, int, int], float]] = {
    "one-cycle": _one_cycle_from,
    "cyclic": _cyclic_from,
    "step": _step_from,
}


def learning_rate(cfg: ScheduleConfig, peak: float, step: int, steps_per_cycle: int, cycle: int = 1) -> float:
    """Learning rate for optimiser step ``step`` (0-based, within the cycle) of cycle ``cycle`` (1-based)."""
    return SCHEDULES[cfg.name](cfg, peak, step, steps_per_cycle, cycle)


def schedule_curve(cfg: ScheduleConfig, peak: float, steps_per_epoch: int) -> list[tuple[float, float]]:
    """``[(epoch, lr), ...]`` over all cycles, with epoch = global step / steps_per_epoch (for plots)."""
    total = cfg.epochs * steps_per_epoch
    points = []
    for cycle in range(1, cfg.cycles + 1):
        for step in range(total):
            global_step = (cycle - 1) * total + step
            points.append((global_step / steps_per_epoch, learning_rate(cfg, peak, step, total, cycle)))
    return points
