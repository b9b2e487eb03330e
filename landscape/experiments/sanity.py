"""Notebook 05: Su et al. 2020's sanity checks of pruning methods, random tickets with smart ratios,
hybrid tickets, and the keep ratio of every layer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, group_mean, mean_std, results_table, train_all
from training.checkpoint import read_checkpoint
from training.config import MaskConfig, RecipeConfig, TrainConfig

#: Each check changes the mask config (``mask_op``) or the data of pruning scores and pretraining (``corrupt``).
CHECKS: dict[str, dict[str, str]] = {
    "original": {},
    "random-labels": {"corrupt": "random-labels"},
    "random-pixels": {"corrupt": "random-pixels"},
    "half-data": {"corrupt": "half-data"},
    "rearrange": {"mask_op": "rearrange"},
    "shuffle-weights": {"mask_op": "shuffle-weights"},
}


def _methods(tier: Tier) -> dict[str, tuple[MaskConfig, RecipeConfig]]:
    """SNIP, GraSP, LT (IMP, rewinding to θ₀) and LRR at the tier's sparsity: ``{name: (mask, recipe)}``."""
    s = tier.sanity
    prune = {"prune_fraction": s.prune_fraction, "rewind_epoch": 1}
    return {
        "snip": (MaskConfig(method="snip", sparsity=s.sparsity), RecipeConfig()),
        "grasp": (MaskConfig(method="grasp", sparsity=s.sparsity), RecipeConfig()),
        "lt": (MaskConfig(sparsity=s.sparsity), RecipeConfig(name="imp", **prune)),
        "lrr": (MaskConfig(sparsity=s.sparsity), RecipeConfig(name="lrr", **prune)),
    }


def _base(tier: Tier) -> TrainConfig:
    return replace(tier.base, schedule=tier.sanity.schedule, model=tier.sanity.model)


def check_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` for every method × check × seed; ``labels`` hold ``method``, ``check``, ``seed``."""
    base = _base(tier)
    out = []
    for method, (mask, recipe) in _methods(tier).items():
        for check, change in CHECKS.items():
            for seed in tier.sanity_seeds:
                m = replace(mask, mask_op=change["mask_op"]) if "mask_op" in change else mask
                r = replace(recipe, corrupt=change["corrupt"]) if "corrupt" in change else recipe
                out.append(
                    ({"method": method, "check": check, "seed": seed}, replace(base, seed=seed, mask=m, recipe=r))
                )
    return out


def ticket_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` for every ticket × seed: smart-ratio and uniform random masks, SNIP, GraSP,
    a hybrid ticket and LRR; ``labels`` hold ``ticket`` and ``seed``."""
    s = tier.sanity
    methods = _methods(tier)
    pai = RecipeConfig()
    tickets = {
        "smart-ratio random": (MaskConfig(method="random", distribution="smart-ratio", sparsity=s.sparsity), pai),
        "uniform random": (MaskConfig(method="random", sparsity=s.sparsity), pai),
        "snip": methods["snip"],
        "grasp": methods["grasp"],
        "hybrid": (MaskConfig(sparsity=s.sparsity), RecipeConfig(name="hybrid", rewind_epoch=1)),
        "lrr": methods["lrr"],
    }
    base = _base(tier)
    out = []
    for name, (mask, recipe) in tickets.items():
        for seed in tier.sanity_seeds:
            out.append(({"ticket": name, "seed": seed}, replace(base, seed=seed, mask=mask, recipe=recipe)))
    return out


def run_sanity_checks(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`check_configs` and :func:`ticket_configs`.

    ``table``: one row per check run (``method``, ``check``, ``seed``, results-table columns);
    ``tables["tickets"]``: one row per ticket run (``ticket``, ``seed``, ...); ``data["masks"]``: the
    final mask of each ticket's run with the last seed, ``{ticket: {layer: bool tensor}}``. ``summary``:
    ``sparsity``, ``seeds``, ``checks`` (``"<method>/<check>"`` → mean accuracy over seeds) and
    ``tickets`` (ticket → [mean, std]).
    """
    checks = check_configs(tier)
    check_runs = train_all([cfg for _, cfg in checks], runs_dir, quiet=quiet)
    table = results_table(check_runs, labels=[lab for lab, _ in checks])
    tickets = ticket_configs(tier)
    ticket_runs = train_all([cfg for _, cfg in tickets], runs_dir, quiet=quiet)
    ticket_table = results_table(ticket_runs, labels=[lab for lab, _ in tickets])
    last_seed = tier.sanity_seeds[-1]
    masks = {
        lab["ticket"]: read_checkpoint(run.checkpoint())["mask"]
        for (lab, _), run in zip(tickets, ticket_runs, strict=True)
        if lab["seed"] == last_seed
    }
    summary = {
        "sparsity": tier.sanity.sparsity,
        "seeds": len(tier.sanity_seeds),
        "checks": group_mean(table, ["method", "check"], "accuracy"),
        "tickets": mean_std(ticket_table, ["ticket"]),
    }
    return ExperimentResult(table=table, summary=summary, tables={"tickets": ticket_table}, data={"masks": masks})
