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
TICKETS = ("smart-ratio random", "uniform random", "snip", "grasp", "hybrid", "lrr")
#: Tickets trained at ``hybrid_sparsities`` (the others at ``ticket_sparsities``).
HYBRID_TICKETS = ("hybrid", "lrr")


def _methods(tier: Tier, sparsity: float | None = None) -> dict[str, tuple[MaskConfig, RecipeConfig]]:
    """SNIP, GraSP, LT (IMP, rewinding to θ₀) and LRR at ``sparsity`` (default: the tier's), LT and LRR
    one-shot when the tier says so: ``{name: (mask, recipe)}``."""
    s = tier.sanity
    sparsity = s.sparsity if sparsity is None else sparsity
    prune: dict[str, Any] = {"prune_fraction": s.prune_fraction, "rewind_epoch": 1}
    if s.one_shot:
        prune["one_shot"] = True
    return {
        "snip": (MaskConfig(method="snip", sparsity=sparsity), RecipeConfig()),
        "grasp": (MaskConfig(method="grasp", sparsity=sparsity), RecipeConfig()),
        "lt": (MaskConfig(sparsity=sparsity), RecipeConfig(name="imp", **prune)),
        "lrr": (MaskConfig(sparsity=sparsity), RecipeConfig(name="lrr", **prune)),
    }


def _base(tier: Tier) -> TrainConfig:
    s = tier.sanity
    base = replace(tier.base, schedule=s.schedule, model=s.model)
    if s.optim is not None:
        base = replace(base, optim=s.optim)
    if s.batch_size is not None:
        base = replace(base, data=replace(base.data, batch_size=s.batch_size))
    return base


def check_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` for every method × check × seed; ``labels`` hold ``method``, ``check``, ``seed``."""
    base = _base(tier)
    checks = {name: CHECKS[name] for name in (tier.sanity.checks or CHECKS)}
    out = []
    for method, (mask, recipe) in _methods(tier).items():
        for check, change in checks.items():
            for seed in tier.sanity_seeds:
                m = replace(mask, mask_op=change["mask_op"]) if "mask_op" in change else mask
                r = replace(recipe, corrupt=change["corrupt"]) if "corrupt" in change else recipe
                out.append(
                    ({"method": method, "check": check, "seed": seed}, replace(base, seed=seed, mask=m, recipe=r))
                )
    return out


def ticket_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` for every ticket × sparsity × seed: smart-ratio and uniform random masks,
    SNIP, GraSP, a hybrid ticket and LRR (the tier's ``tickets``); ``labels`` hold ``ticket``,
    ``sparsity`` and ``seed``."""
    s = tier.sanity
    pai = RecipeConfig()
    base = _base(tier)
    out = []
    for name in s.tickets or TICKETS:
        hybrid = name in HYBRID_TICKETS
        for sparsity in (s.hybrid_sparsities if hybrid else s.ticket_sparsities) or (s.sparsity,):
            methods = _methods(tier, sparsity)
            mask, recipe = {
                "smart-ratio random": (MaskConfig(method="random", distribution="smart-ratio", sparsity=sparsity), pai),
                "uniform random": (MaskConfig(method="random", sparsity=sparsity), pai),
                "hybrid": (MaskConfig(sparsity=sparsity), RecipeConfig(name="hybrid", rewind_epoch=1)),
                **methods,
            }[name]
            for seed in tier.sanity_seeds:
                labels = {"ticket": name, "sparsity": sparsity, "seed": seed}
                out.append((labels, replace(base, seed=seed, mask=mask, recipe=recipe)))
    return out


def run_checks(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`check_configs`. ``table``: one row per run (``method``, ``check``,
    ``seed``, results-table columns); ``summary``: ``sparsity``, ``seeds``, ``checks``
    (``"<method>/<check>"`` → mean accuracy over seeds)."""
    checks = check_configs(tier)
    runs = train_all([cfg for _, cfg in checks], runs_dir, quiet=quiet)
    table = results_table(runs, labels=[lab for lab, _ in checks])
    summary = {
        "sparsity": tier.sanity.sparsity,
        "seeds": len(tier.sanity_seeds),
        "checks": group_mean(table, ["method", "check"], "accuracy"),
    }
    return ExperimentResult(table=table, summary=summary)


def run_tickets(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`ticket_configs`. ``table``: one row per run (``ticket``, ``sparsity``,
    ``seed``, results-table columns); ``data["masks"]``: the final mask of each ticket's run with the
    last seed at the tier's sparsity (else at the ticket's highest), ``{ticket: {layer: bool tensor}}``;
    ``summary``: ``tickets`` (ticket, or ``"<ticket>@<sparsity>"`` when there are several sparsities →
    [mean, std])."""
    tickets = ticket_configs(tier)
    runs = train_all([cfg for _, cfg in tickets], runs_dir, quiet=quiet)
    table = results_table(runs, labels=[lab for lab, _ in tickets])
    last: dict[str, dict[float, Any]] = {}
    for (lab, _), run in zip(tickets, runs, strict=True):
        if lab["seed"] == tier.sanity_seeds[-1]:
            last.setdefault(lab["ticket"], {})[lab["sparsity"]] = run.checkpoint()
    chosen = {t: by_s.get(tier.sanity.sparsity, by_s[max(by_s)]) for t, by_s in last.items()}
    masks = {t: read_checkpoint(path)["mask"] for t, path in chosen.items()}
    by = ["ticket"] if table["sparsity"].nunique() == 1 else ["ticket", "sparsity"]
    summary = {"tickets": mean_std(table, by, sep="@")}
    return ExperimentResult(table=table, summary=summary, data={"masks": masks})


def run_sanity_checks(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`check_configs` and :func:`ticket_configs` (:func:`run_checks`,
    :func:`run_tickets`).

    ``table``: one row per check run (``method``, ``check``, ``seed``, results-table columns);
    ``tables["tickets"]``: one row per ticket run (``ticket``, ``sparsity``, ``seed``, ...);
    ``data["masks"]``: see :func:`run_tickets`. ``summary``: ``sparsity``, ``seeds``, ``checks``
    (``"<method>/<check>"`` → mean accuracy over seeds) and ``tickets`` (ticket → [mean, std]).
    """
    checks = run_checks(tier, runs_dir, quiet=quiet)
    tickets = run_tickets(tier, runs_dir, quiet=quiet)
    return ExperimentResult(
        table=checks.table,
        summary={**checks.summary, **tickets.summary},
        tables={"tickets": tickets.table},
        data=tickets.data,
    )
