"""Notebook 03: mask–initialisation coupling. An LRR mask retrained from a random initialisation, the
ticket run's own θ₀, the warmup initialisation, warmup magnitudes with the LRR signs and random
magnitudes with the LRR signs, under one-cycle and cyclic schedules (Paper: arXiv 2406.02773, §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, final_value, mean_std, results_table, train_all
from landscape.overlap import overlap
from training.config import MaskConfig, RecipeConfig, ScheduleConfig, TrainConfig
from training.run import RunResult


def lrr_config(tier: Tier, seed: int | None = None) -> TrainConfig:
    """The LRR ticket: one-cycle levels of ``epochs`` epochs down to the target sparsity (seed: the
    base config's unless given). At equal settings it is the LRR arm of SCULPT-ing's experiment."""
    s = tier.coupling
    cfg = replace(
        tier.base,
        schedule=ScheduleConfig(name="one-cycle", epochs=s.epochs),
        mask=MaskConfig(sparsity=s.sparsity),
        recipe=RecipeConfig(name="lrr", prune_fraction=s.lrr_prune_fraction, rewind_epoch=1),
    )
    return cfg if seed is None else replace(cfg, seed=seed)


def lrr_configs(tier: Tier) -> list[TrainConfig]:
    """The tickets: one per seed with ``ticket_per_seed``, else one of the base seed."""
    return [lrr_config(tier, seed) for seed in tier.seeds] if tier.coupling.ticket_per_seed else [lrr_config(tier)]


def coupling_configs(tier: Tier, lrr: RunResult | Mapping[int, RunResult]) -> list[TrainConfig]:
    """Per initialisation, schedule (one cycle of ``C·E`` epochs and/or ``C`` cycles of ``E``) and seed,
    the coupling run of the ticket's mask. ``lrr``: the ticket, or ``{seed: ticket}`` with
    ``ticket_per_seed``. The ticket's and its warmup checkpoint's paths enter the configs (and so
    their hashes) as they are written below the runs folder."""
    s = tier.coupling
    tickets = lrr if isinstance(lrr, Mapping) else dict.fromkeys(tier.seeds, lrr)
    schedules = {
        "one-cycle": ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs),
        "cyclic": ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs),
    }
    return [
        replace(
            tier.base,
            seed=seed,
            schedule=schedules[name],
            recipe=RecipeConfig(
                name="coupling",
                coupling_init=init,
                mask_from=str(tickets[seed].checkpoint()),
                warmup_from=str(tickets[seed].run_dir / "level_0" / "rewind.pt"),
            ),
        )
        for init in s.inits
        for name in s.schedules
        for seed in tier.seeds
    ]


def run_mask_init_coupling(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) the LRR ticket(s) and :func:`coupling_configs`.

    ``table``: one row per coupling run with ``init``, ``schedule``, ``seed``, ``flips_vs_lrr`` (fraction
    of the kept weights whose final sign differs from the ticket's) and the results-table columns.
    ``tables["tickets"]``: one row per LRR ticket with ``seed`` and the results-table columns.
    ``summary``: ``lrr_accuracy`` (the tickets' mean final test accuracy), ``sparsity``, ``seeds`` and
    ``accuracy`` (``"<init>/<schedule>"`` → [mean, std] over seeds).
    """
    lrr_runs = train_all(lrr_configs(tier), runs_dir, quiet=quiet)
    tickets = {run.config.seed: run for run in lrr_runs}
    lrr: RunResult | dict[int, RunResult] = tickets if tier.coupling.ticket_per_seed else lrr_runs[0]
    configs = coupling_configs(tier, lrr)
    runs = train_all(configs, runs_dir, quiet=quiet)
    labels = [
        {
            "init": cfg.recipe.coupling_init,
            "schedule": cfg.schedule.name,
            "seed": cfg.seed,
            "flips_vs_lrr": float(overlap(run.checkpoint(), cfg.recipe.mask_from)["flip_fraction_total"]),
        }
        for cfg, run in zip(configs, runs, strict=True)
    ]
    table = results_table(runs, labels=labels)
    ticket_table = results_table(lrr_runs, ["seed"])
    lrr_accuracy = float(sum(1 - final_value(run.metrics, "test_error") for run in lrr_runs) / len(lrr_runs))
    summary = {
        "lrr_accuracy": lrr_accuracy,
        "sparsity": tier.coupling.sparsity,
        "seeds": len(tier.seeds),
        "accuracy": mean_std(table, ["init", "schedule"]),
    }
    return ExperimentResult(
        table=table, summary=summary, tables={"tickets": ticket_table}, data={"lrr_run": lrr_runs[0]}
    )
