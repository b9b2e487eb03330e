"""The ``architectures`` group (beyond ResNets; the reviewers' "How does SCULPT perform on ViTs and at
least one other CNN architecture"): P1-1, P1-4 and P1-5a/b on a ViT and a MobileNetV2, on Fashion-MNIST.

The group runs in its tier's ``<tier>-architectures`` tier (real images). Every run is labelled with
``model``, ``arm`` (``cyclic``, ``ordinary``, ``lrr``, ``cyclic PaI``, ``sculpt``) and ``method`` (the PaI
method of the P1-1 arms; ``erk`` or ``magnitude`` for the others).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from landscape.experiments.review_settings import ArchitectureSettings
from landscape.experiments.sculpting import high_sparsity_arms
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, mean_std, results_table, train_all
from training.config import MaskConfig, ScheduleConfig, TrainConfig
from training.recipes.common import level_densities


def settings_of(tier: Tier) -> ArchitectureSettings:
    return tier.group_settings("architectures", "architectures")


def lrr_trainings(s: ArchitectureSettings) -> int:
    """How many one-cycle trainings LRR takes to the sparsity (the dense level included): cyclic PaI
    trains as many cycles (P1-4's equal budget)."""
    return len(level_densities(s.sparsity, s.lrr_prune_fraction, None))


def _mask(s: ArchitectureSettings, dense_depthwise: bool, **fields: Any) -> MaskConfig:
    return MaskConfig(sparsity=s.sparsity, dense_depthwise=dense_depthwise, **fields)


def architecture_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` per model, arm, method and seed (see the module docstring)."""
    s = settings_of(tier)
    out: list[tuple[dict[str, Any], TrainConfig]] = []
    for chosen in s.models:
        model, E = chosen.model.name, chosen.epochs
        depthwise = s.dense_depthwise and model == "mobilenetv2"
        data = replace(tier.base.data, batch_size=chosen.batch_size)
        for seed in tier.seeds:
            base = replace(tier.base, seed=seed, model=chosen.model, data=data)

            for method in s.methods:
                for arm, schedule in (
                    ("cyclic", ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=E)),
                    ("ordinary", ScheduleConfig(name="one-cycle", epochs=E)),
                ):
                    out.append(
                        (
                            {"model": model, "arm": arm, "method": method},
                            replace(base, schedule=schedule, mask=_mask(s, depthwise, method=method)),
                        )
                    )
            shared = high_sparsity_arms(
                base,
                s.sparsity,
                epochs=E,
                sculpt_start=s.sculpt_start,
                sculpt_cycles=s.sculpt_cycles,
                lrr_prune_fraction=s.lrr_prune_fraction,
                pai_cycles=lrr_trainings(s),
                dense_depthwise=depthwise,
            )
            out += [
                ({"model": model, "arm": arm, "method": method}, shared[arm])
                for arm, method in (("lrr", "magnitude"), ("cyclic PaI", "erk"), ("sculpt", "erk"))
            ]
    return out


def run_architectures(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`architecture_configs`. ``table``: one row per run (``model``, ``arm``,
    ``method``, ``seed``, results-table columns). ``summary``: ``accuracy`` (``"<model>/<arm>/<method>"``
    → [mean, std]), ``train_set_loss`` (nats, at the end of training), ``epochs`` and ``train_flops``
    likewise, ``seeds``, ``sparsity``."""
    labelled = architecture_configs(tier)
    runs = train_all([cfg for _, cfg in labelled], runs_dir, quiet=quiet)
    table = results_table(runs, labels=[{**lab, "seed": cfg.seed} for lab, cfg in labelled])
    summary = {
        "seeds": len(tier.seeds),
        "sparsity": settings_of(tier).sparsity,
        "accuracy": mean_std(table, ["model", "arm", "method"]),
        "train_set_loss": mean_std(table, ["model", "arm", "method"], "train_set_loss"),
        "epochs": mean_std(table, ["model", "arm", "method"], "epochs"),
        "train_flops": mean_std(table, ["model", "arm", "method"], "train_flops"),
    }
    return ExperimentResult(table=table, summary=summary)
