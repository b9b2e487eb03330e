"""Notebook 01: cyclic against one-cycle training of masks pruned at initialisation (Paper: "Cyclic
Sparse Training: Is it Enough?", arXiv 2406.02773), and the protocol's further arms of the same masks:
ordinary training (one cycle of E epochs) and one cycle of C·E epochs with cosine decay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, results_table, train_all
from landscape.sweep import expand
from training.config import ScheduleConfig, TrainConfig
from training.errors import UserError

KEYS = ["mask.method", "mask.sparsity", "seed", "schedule.name"]
ARMS = ("cyclic", "one-cycle", "ordinary", "cosine")


def arm_schedules(tier: Tier) -> dict[str, ScheduleConfig]:
    """The schedule of every arm the tier runs: ``cyclic`` (C cycles of E epochs), ``one-cycle`` (one
    cycle of C·E epochs, the same budget) and the tier's ``extra_arms``: ``ordinary`` (one cycle of E
    epochs) and ``cosine`` (one cycle of C·E epochs, the same warmup, cosine decay)."""
    s = tier.cyclic
    schedules = {
        "cyclic": ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs),
        "one-cycle": ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs),
        "ordinary": ScheduleConfig(name="one-cycle", epochs=s.epochs),
        "cosine": ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs, decay="cosine"),
    }
    unknown = [arm for arm in s.extra_arms if arm not in ("ordinary", "cosine")]
    if unknown:
        raise UserError(f"unknown extra arms {unknown} of tier {tier.name!r}; choose from: ordinary, cosine")
    return {arm: schedules[arm] for arm in ("cyclic", "one-cycle", *s.extra_arms)}


def cyclic_arms(tier: Tier) -> list[tuple[str, TrainConfig]]:
    """``(arm, config)`` for every arm × method × sparsity × seed (arms in :func:`arm_schedules`' order)."""
    s = tier.cyclic
    grid = {"mask.method": list(s.methods), "mask.sparsity": list(s.sparsities), "seed": list(tier.seeds)}
    return [
        (arm, cfg)
        for arm, schedule in arm_schedules(tier).items()
        for cfg in expand(replace(tier.base, schedule=schedule), grid)
    ]


def cyclic_configs(tier: Tier) -> list[TrainConfig]:
    """Every method × sparsity × seed, first with ``C`` cycles of ``E`` epochs, then with one cycle of
    ``C·E`` epochs (the same budget), then the tier's extra arms."""
    return [cfg for _, cfg in cyclic_arms(tier)]


def run_cyclic_vs_one_cycle(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`cyclic_configs` and compare the schedules.

    ``table``: one row per run with columns ``arm`` (``cyclic``, ``one-cycle``, ``ordinary`` or
    ``cosine``), ``mask.method``, ``mask.sparsity``, ``seed``, ``schedule.name`` and the
    :func:`~landscape.experiments.results_table` columns. ``summary``: ``cyclic_minus_one_cycle_accuracy``
    (``"<method>@<sparsity>"`` → [mean, std] over seeds of the paired accuracy difference),
    ``fraction_cyclic_lower_train_loss`` (fraction of seeds where the cyclic run ends with the lower
    training loss), ``seeds``, ``C``, ``E``. ``data["runs"]``: ``{run name: RunResult}`` of every run.
    """
    arms = cyclic_arms(tier)
    runs = train_all([cfg for _, cfg in arms], runs_dir, quiet=quiet)
    table = results_table(runs, KEYS, labels=[{"arm": arm} for arm, _ in arms])
    return ExperimentResult(
        table=table, summary=cyclic_summary(table, tier), data={"runs": {r.run_dir.name: r for r in runs}}
    )


def cyclic_summary(table: pd.DataFrame, tier: Tier) -> dict:
    """The summary of :func:`run_cyclic_vs_one_cycle` from its table (runs paired by method, sparsity,
    seed; the cyclic and one-cycle arms)."""
    index = ["mask.method", "mask.sparsity", "seed"]
    wide = table.pivot_table(index=index, columns="arm", values=["accuracy", "train_loss"])
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
