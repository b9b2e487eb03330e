"""The ``budget`` group: SCULPT-ing against LRR, cyclic PaI, RigL (1× and 2×), SET, GMP, GMP*, AC/DC and
dense training, each at its own reference budget, with accuracy and exact training FLOPs (the reviewers'
iso-FLOP question about arXiv 2406.02773; ``REPRODUCTION.md`` Part 1).

SCULPT, LRR and cyclic PaI are built by :func:`~landscape.experiments.sculpting.high_sparsity_arms`, as the
``high-sparsity`` group builds them (the same configs, so the same run folders); the dynamic recipes come
from :mod:`training.recipes.dst`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landscape.experiments.review_settings import BUDGET_BASELINES, BudgetSettings
from landscape.experiments.sculpting import high_sparsity_arms
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, group_mean, mean_std, results_table, train_all
from training.config import MaskConfig, RecipeConfig, ScheduleConfig, TrainConfig

ERK = {"method": "random", "distribution": "erk"}
METHODS = ("sculpt", *BUDGET_BASELINES)


def settings_of(tier: Tier) -> BudgetSettings:
    """The tier's budget settings (refused in one line when the tier has none)."""
    return tier.group_settings("budget", "budget")


def _one_cycle(base: TrainConfig, epochs: int, **changes: Any) -> TrainConfig:
    return replace(base, schedule=ScheduleConfig(name="one-cycle", epochs=epochs), **changes)


def budget_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` per run; labels hold ``method`` (:data:`METHODS`), ``sparsity`` (0 for dense)
    and ``budget`` (the multiple of T; 1 except RigL's further multipliers)."""
    s = settings_of(tier)
    E, T = s.cycle_epochs, s.epochs
    out: list[tuple[dict[str, Any], TrainConfig]] = []
    for seed in tier.seeds:
        base = replace(tier.base, seed=seed)
        out.append(({"method": "dense", "sparsity": 0.0, "budget": 1}, _one_cycle(base, T)))
        for target in s.sparsities:
            erk = MaskConfig(**ERK, sparsity=target)
            dense_start = MaskConfig(sparsity=target)
            shared = high_sparsity_arms(
                base,
                target,
                epochs=E,
                sculpt_start=s.sculpt_start,
                sculpt_cycles=s.sculpt_cycles,
                lrr_prune_fraction=s.lrr_prune_fraction,
                pai_cycles=s.pai_cycles,
            )
            arms: list[tuple[str, int, TrainConfig]] = [(m, 1, cfg) for m, cfg in shared.items()]
            arms += [
                (
                    "rigl",
                    m,
                    _one_cycle(base, m * T, mask=erk, recipe=RecipeConfig(name="rigl", dst_interval=s.interval)),
                )
                for m in s.rigl_multipliers
            ]
            arms += [
                ("set", 1, _one_cycle(base, T, mask=erk, recipe=RecipeConfig(name="set"))),
                (
                    "gmp",
                    1,
                    _one_cycle(base, T, mask=dense_start, recipe=RecipeConfig(name="gmp", gmp_interval=s.interval)),
                ),
                (
                    "gmp-star",
                    1,
                    _one_cycle(
                        base, T, mask=dense_start, recipe=RecipeConfig(name="gmp-star", gmp_interval=s.interval)
                    ),
                ),
                ("acdc", 1, _one_cycle(base, T, mask=dense_start, recipe=RecipeConfig(name="acdc"))),
            ]
            out += [({"method": m, "sparsity": target, "budget": b}, cfg) for m, b, cfg in arms]
    return out


def nearest_budget(table: pd.DataFrame) -> pd.Series:
    """Per row: whether it is a RigL run at the budget whose mean ``train_flops`` is nearest (in log scale)
    to SCULPT's mean at the same sparsity (the B-2 comparison); False for every other row."""
    nearest = pd.Series(False, index=table.index)
    for _, rows in table.groupby("sparsity"):
        sculpt = rows.loc[rows["method"] == "sculpt", "train_flops"]
        rigl = rows[rows["method"] == "rigl"]
        if sculpt.empty or rigl.empty or not np.isfinite(sculpt).all():
            continue
        target = math.log(float(sculpt.mean()))
        means = rigl.groupby("budget")["train_flops"].mean()
        best = min(means.index, key=lambda b: abs(math.log(float(means[b])) - target))
        nearest[rigl.index[rigl["budget"] == best]] = True
    return nearest


def arm_name(method: str, budget: int) -> str:
    """The figure's and summary's name of an arm, e.g. ``rigl 2×``."""
    return method if budget == 1 else f"{method} {budget}×"


def run_budget(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`budget_configs`.

    ``table``: one row per run with ``method``, ``sparsity``, ``budget``, ``arm`` (:func:`arm_name`),
    ``nearest`` (:func:`nearest_budget`), ``seed`` and the results-table columns (``accuracy``,
    ``train_flops``, ``dense_epochs``, ``epochs``). ``summary``: ``seeds``, ``T``, ``accuracy``
    (``"<sparsity>/<arm>"`` → [mean, std]), ``train_flops`` and ``dense_epochs`` (→ means), and
    ``nearest_rigl_budget`` (``"<sparsity>"`` → RigL's multiple nearest SCULPT's FLOPs)."""
    labelled = budget_configs(tier)
    runs = train_all([cfg for _, cfg in labelled], runs_dir, quiet=quiet)
    labels = [{**lab, "arm": arm_name(lab["method"], lab["budget"]), "seed": cfg.seed} for lab, cfg in labelled]
    table = results_table(runs, labels=labels)
    table["nearest"] = nearest_budget(table)
    chosen = table[table["nearest"]].groupby("sparsity")["budget"].first()
    summary = {
        "seeds": len(tier.seeds),
        "T": settings_of(tier).epochs,
        "accuracy": mean_std(table, ["sparsity", "arm"]),
        "train_flops": group_mean(table, ["sparsity", "arm"], "train_flops"),
        "dense_epochs": group_mean(table, ["sparsity", "arm"], "dense_epochs"),
        "nearest_rigl_budget": {str(k): int(v) for k, v in chosen.items()},
    }
    return ExperimentResult(table=table, summary=summary)


def budget_figure_table(table: pd.DataFrame) -> pd.DataFrame:
    """The runs with the dense rows repeated in every sparsity's panel (for
    :func:`landscape.plot.plot_accuracy_vs_flops`)."""
    sparse = table[table["method"] != "dense"]
    dense = table[table["method"] == "dense"]
    copies = [dense.assign(sparsity=s) for s in sorted(sparse["sparsity"].unique())]
    return pd.concat([sparse, *copies], ignore_index=True)
