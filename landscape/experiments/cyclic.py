"""Notebook 01: cyclic against one-cycle training of masks pruned at initialisation (Paper: "Cyclic
Sparse Training: Is it Enough?", arXiv 2406.02773)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, results_table, train_all
from landscape.sweep import expand
from training.config import ScheduleConfig, TrainConfig

KEYS = ["mask.method", "mask.sparsity", "seed", "schedule.name"]


def cyclic_configs(tier: Tier) -> list[TrainConfig]:
    """Every method × sparsity × seed, first with ``C`` cycles of ``E`` epochs, then with one cycle of
    ``C·E`` epochs (the same budget)."""
    s = tier.cyclic
    grid = {"mask.method": list(s.methods), "mask.sparsity": list(s.sparsities), "seed": list(tier.seeds)}
    cyclic = replace(tier.base, schedule=ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs))
    one = replace(tier.base, schedule=ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs))
    return expand(cyclic, grid) + expand(one, grid)


def run_cyclic_vs_one_cycle(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`cyclic_configs` and compare the schedules.

    ``table``: one row per run with columns ``mask.method``, ``mask.sparsity``, ``seed``,
    ``schedule.name`` and the :func:`~landscape.experiments.results_table` columns. ``summary``:
    ``cyclic_minus_one_cycle_accuracy`` (``"<method>@<sparsity>"`` → [mean, std] over seeds of the
    paired accuracy difference), ``fraction_cyclic_lower_train_loss`` (fraction of seeds where the
    cyclic run ends with the lower training loss), ``seeds``, ``C``, ``E``.
    """
    runs = train_all(cyclic_configs(tier), runs_dir, quiet=quiet)
    table = results_table(runs, KEYS)
    return ExperimentResult(table=table, summary=cyclic_summary(table, tier))


def cyclic_summary(table: pd.DataFrame, tier: Tier) -> dict:
    """The summary of :func:`run_cyclic_vs_one_cycle` from its table (runs paired by method, sparsity, seed)."""
    wide = table.pivot_table(
        index=["mask.method", "mask.sparsity", "seed"], columns="schedule.name", values=["accuracy", "train_loss"]
    )
    gain = (wide["accuracy"]["cyclic"] - wide["accuracy"]["one-cycle"]).groupby(level=[0, 1]).agg(["mean", "std"])
    lower_loss = (wide["train_loss"]["cyclic"] < wide["train_loss"]["one-cycle"]).groupby(level=[0, 1]).mean()
    return {
        "cyclic_minus_one_cycle_accuracy": {
            f"{m}@{s}": [float(r["mean"]), float(r["std"])] for (m, s), r in gain.iterrows()
        },
        "fraction_cyclic_lower_train_loss": {f"{m}@{s}": float(v) for (m, s), v in lower_loss.items()},
        "seeds": len(tier.seeds),
        "C": tier.cyclic.cycles,
        "E": tier.cyclic.epochs,
    }
