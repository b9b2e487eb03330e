"""Notebook 04: SCULPT-ing against LRR and cyclic PaI at high sparsity, with the training cost in epochs
and training FLOPs (Paper: arXiv 2406.02773, Figs. 7–8)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, group_mean, mean_std, results_table, train_all
from training.config import MaskConfig, RecipeConfig, ScheduleConfig, TrainConfig


def sculpting_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` per run: per target sparsity and seed, SCULPT-ing from each start sparsity
    s₀ (a random ERK mask at s₀, ``C₀`` cycles of ``E`` epochs, one magnitude step to the target, one
    more cycle), LRR (one-cycle levels of ``E`` epochs) and cyclic PaI (``pai_cycles`` cycles of ``E``,
    default ``C₀ + 1``, a random ERK mask at the target). ``labels`` hold ``method`` (e.g.
    ``"sculpt s0=0.5"``) and ``target``."""
    s = tier.sculpting
    erk = {"method": "random", "distribution": "erk"}
    out = []
    for target in s.targets:
        for seed in tier.seeds:
            base = replace(tier.base, seed=seed)
            for s0 in s.start_sparsities:
                cfg = replace(
                    base,
                    schedule=ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs),
                    mask=MaskConfig(**erk, sparsity=target),
                    recipe=RecipeConfig(name="sculpt", sculpt_sparsity=s0, sculpt_cycles=s.cycles),
                )
                out.append(({"method": f"sculpt s0={s0}", "target": target}, cfg))
            lrr = replace(
                base,
                schedule=ScheduleConfig(name="one-cycle", epochs=s.epochs),
                mask=MaskConfig(sparsity=target),
                recipe=RecipeConfig(name="lrr", prune_fraction=s.lrr_prune_fraction, rewind_epoch=1),
            )
            out.append(({"method": "lrr", "target": target}, lrr))
            pai = replace(
                base,
                schedule=ScheduleConfig(name="cyclic", cycles=s.pai_cycles or s.cycles + 1, epochs=s.epochs),
                mask=MaskConfig(**erk, sparsity=target),
            )
            out.append(({"method": "cyclic PaI", "target": target}, pai))
    return out


def run_sculpting(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`sculpting_configs`.

    ``table``: one row per run with ``method``, ``target``, ``seed`` and the results-table columns,
    among them the cost ``epochs``, ``train_flops`` and ``dense_epochs``
    (:func:`~landscape.experiments.training_cost`). ``summary``: ``seeds``, ``accuracy``
    (``"<target>/<method>"`` → [mean, std] over seeds), ``cost`` (→ mean training FLOPs in dense epochs),
    ``train_flops`` (→ mean training FLOPs) and ``epochs`` (→ mean epochs trained).
    """
    labelled = sculpting_configs(tier)
    runs = train_all([cfg for _, cfg in labelled], runs_dir, quiet=quiet)
    labels = [{**lab, "seed": cfg.seed} for lab, cfg in labelled]
    table = results_table(runs, labels=labels)
    summary = {
        "seeds": len(tier.seeds),
        "accuracy": mean_std(table, ["target", "method"]),
        "cost": group_mean(table, ["target", "method"], "dense_epochs"),
        "train_flops": group_mean(table, ["target", "method"], "train_flops"),
        "epochs": group_mean(table, ["target", "method"], "epochs"),
    }
    return ExperimentResult(table=table, summary=summary)
