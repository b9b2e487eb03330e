"""Notebook 03: mask–initialisation coupling. An LRR mask retrained from a random initialisation, the
warmup initialisation, warmup magnitudes with the LRR signs and random magnitudes with the LRR signs,
under one-cycle and cyclic schedules (Paper: arXiv 2406.02773, §5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, final_value, mean_std, results_table, train_all
from landscape.overlap import overlap
from training.config import MaskConfig, RecipeConfig, ScheduleConfig, TrainConfig
from training.run import RunResult


def lrr_config(tier: Tier) -> TrainConfig:
    """The LRR ticket: one-cycle levels of ``epochs`` epochs down to the target sparsity."""
    s = tier.coupling
    return replace(
        tier.base,
        schedule=ScheduleConfig(name="one-cycle", epochs=s.epochs),
        mask=MaskConfig(sparsity=s.sparsity),
        recipe=RecipeConfig(name="lrr", prune_fraction=s.lrr_prune_fraction, rewind_epoch=1),
    )


def coupling_configs(tier: Tier, lrr: RunResult) -> list[TrainConfig]:
    """Per initialisation, schedule (one cycle of ``C·E`` epochs, then ``C`` cycles of ``E``) and seed,
    the coupling run of the ticket's mask. The ticket's and its warmup checkpoint's paths enter the
    configs (and so their hashes) as they are written below the runs folder."""
    s = tier.coupling
    ticket = lrr.checkpoint()
    warm = lrr.run_dir / "level_0" / "rewind.pt"
    schedules = [
        ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs),
        ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs),
    ]
    return [
        replace(
            tier.base,
            seed=seed,
            schedule=schedule,
            recipe=RecipeConfig(name="coupling", coupling_init=init, mask_from=str(ticket), warmup_from=str(warm)),
        )
        for init in s.inits
        for schedule in schedules
        for seed in tier.seeds
    ]


def run_mask_init_coupling(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) the LRR ticket and :func:`coupling_configs`.

    ``table``: one row per coupling run with ``init``, ``schedule``, ``seed``, ``flips_vs_lrr`` (fraction
    of the kept weights whose final sign differs from the ticket's) and the results-table columns.
    ``summary``: ``lrr_accuracy`` (the ticket's final test accuracy), ``sparsity``, ``seeds`` and
    ``accuracy`` (``"<init>/<schedule>"`` → [mean, std] over seeds).
    """
    lrr = train_all([lrr_config(tier)], runs_dir, quiet=quiet)[0]
    configs = coupling_configs(tier, lrr)
    runs = train_all(configs, runs_dir, quiet=quiet)
    ticket = lrr.checkpoint()
    labels = [
        {
            "init": cfg.recipe.coupling_init,
            "schedule": cfg.schedule.name,
            "seed": cfg.seed,
            "flips_vs_lrr": float(overlap(run.checkpoint(), ticket)["flip_fraction_total"]),
        }
        for cfg, run in zip(configs, runs, strict=True)
    ]
    table = results_table(runs, labels=labels)
    lrr_accuracy = 1 - final_value(lrr.metrics, "test_error")
    summary = {
        "lrr_accuracy": lrr_accuracy,
        "sparsity": tier.coupling.sparsity,
        "seeds": len(tier.seeds),
        "accuracy": mean_std(table, ["init", "schedule"]),
    }
    return ExperimentResult(table=table, summary=summary, data={"lrr_run": lrr})
