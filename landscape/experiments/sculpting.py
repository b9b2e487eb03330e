"""Notebook 04: SCULPT-ing against LRR and cyclic PaI at high sparsity, with the training cost in epochs
and training FLOPs (Paper: arXiv 2406.02773, Figs. 7–8)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, group_mean, mean_std, results_table, train_all
from training.config import MaskConfig, RecipeConfig, ScheduleConfig, TrainConfig


def high_sparsity_arms(
    base: TrainConfig,
    target: float,
    *,
    epochs: int,
    sculpt_start: float,
    sculpt_cycles: int,
    lrr_prune_fraction: float,
    pai_cycles: int,
    **mask_options: Any,
) -> dict[str, TrainConfig]:
    """The three arms of P1-4/P1-5 at sparsity ``target``, as every group that runs them builds them (the
    same configs, so the same run folders): ``"sculpt"`` (a random ERK mask at ``sculpt_start``,
    ``sculpt_cycles`` cycles of ``epochs``, one global magnitude step to the target, one more cycle),
    ``"lrr"`` (one-cycle levels of ``epochs`` pruning ``lrr_prune_fraction`` per level, rewind point after
    epoch 1) and ``"cyclic PaI"`` (``pai_cycles`` cycles of ``epochs`` on a random ERK mask at the target).
    ``mask_options``: further mask fields of every arm (e.g. ``dense_depthwise``)."""
    erk = MaskConfig(method="random", distribution="erk", sparsity=target, **mask_options)
    return {
        "sculpt": replace(
            base,
            schedule=ScheduleConfig(name="cyclic", cycles=sculpt_cycles, epochs=epochs),
            mask=erk,
            recipe=RecipeConfig(name="sculpt", sculpt_sparsity=sculpt_start, sculpt_cycles=sculpt_cycles),
        ),
        "lrr": replace(
            base,
            schedule=ScheduleConfig(name="one-cycle", epochs=epochs),
            mask=MaskConfig(sparsity=target, **mask_options),
            recipe=RecipeConfig(name="lrr", prune_fraction=lrr_prune_fraction, rewind_epoch=1),
        ),
        "cyclic PaI": replace(base, schedule=ScheduleConfig(name="cyclic", cycles=pai_cycles, epochs=epochs), mask=erk),
    }


def sculpting_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` per run: per target sparsity and seed, SCULPT-ing from each start sparsity
    s₀, LRR and cyclic PaI (``pai_cycles`` cycles, default ``C₀ + 1``), as :func:`high_sparsity_arms`
    builds them with ``E`` epochs and ``C₀`` SCULPT cycles. ``labels`` hold ``method`` (e.g.
    ``"sculpt s0=0.5"``) and ``target``."""
    s = tier.sculpting
    out = []
    for target in s.targets:
        for seed in tier.seeds:
            base = replace(tier.base, seed=seed)
            arms = {
                s0: high_sparsity_arms(
                    base,
                    target,
                    epochs=s.epochs,
                    sculpt_start=s0,
                    sculpt_cycles=s.cycles,
                    lrr_prune_fraction=s.lrr_prune_fraction,
                    pai_cycles=s.pai_cycles or s.cycles + 1,
                )
                for s0 in s.start_sparsities
            }
            out += [({"method": f"sculpt s0={s0}", "target": target}, arm["sculpt"]) for s0, arm in arms.items()]
            first = next(iter(arms.values()))
            out += [({"method": m, "target": target}, first[m]) for m in ("lrr", "cyclic PaI")]
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
