"""Phases of a claim group's runs (:mod:`landscape.experiments.reproduce`): a group yields lists of
``(label, config)``, each list trained (in parallel) before the next is asked for, so a later phase may
read the runs of an earlier one (the coupling groups' tickets)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from landscape.experiments import coupling
from landscape.experiments.settings import Tier
from training.config import TrainConfig
from training.run import train

Phase = list[tuple[str, TrainConfig]]
Phases = Callable[[Tier, Path], Iterator[Phase]]


def seed_label(label: str, cfg: TrainConfig) -> str:
    """A run's progress label: ``label`` and the config's seed."""
    return f"{label} seed {cfg.seed}"


def coupling_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    """The LRR tickets (one per seed, or one), then the tier's coupling arms, which name the tickets."""
    lrr = coupling.lrr_configs(tier)
    yield [(seed_label("LRR ticket", c), c) for c in lrr]
    tickets = {c.seed: train(c, runs, quiet=True) for c in lrr}  # complete now: read back
    ticket = tickets if tier.coupling.ticket_per_seed else tickets[lrr[0].seed]
    yield [
        (seed_label(f"{c.recipe.coupling_init} {c.schedule.name}", c), c)
        for c in coupling.coupling_configs(tier, ticket)
    ]
