"""The claim groups of the reproduction (``landscape reproduce GROUP``): train a group's runs, build its
tables with the experiment families, evaluate its claims and write the results.

A group writes, for its tier's results folder ``R`` and figures folder ``F``:

* ``R/<group>.nc``: the group's tables as one netCDF file: the runs (dimension ``run``: seed, arm
  labels, ``test_error``, ``accuracy``, ``train_loss``, ``train_set_loss``, ``epochs``, ...) and every
  further table on a dimension of its own (``barriers_row``, ``tickets_row``, ``loss_curves_row``;
  variables ``<table>.<column>``), with the claims as a JSON attribute;
* ``R/<group>-claims.json``: the tier, every claim result (effect, interval, n, verdict, the arms'
  means), the group's summary, the ``environment`` that wrote it (:func:`training.environment.environment`;
  each run's own is its manifest's, shown in the runs table's ``made_on``), and the time: ``wall_time_s``
  of the invocation that trained the runs (an invocation that only read complete runs back keeps the
  earlier time), the runs trained and read;
* ``F/<group>.png`` and ``.pdf``: the effects with their intervals (and, for the cyclic groups, the
  training-loss curves of every cyclic run; for connectivity, the barriers by kind of pair).

Runs live under the runs folder by config hash, so an interrupted group continues where it stopped.
The coupling runs name their LRR ticket by its path below the runs folder, which enters their hash:
run the command from the same folder (the repository root) with the same ``--runs`` to reuse them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from landscape.experiments import (
    architectures,
    barriers,
    boost,
    budget,
    coupling,
    cyclic,
    keep_ratios,
    review_groups,
    sanity,
    sculpting,
)
from landscape.experiments import sharpness as sharp
from landscape.experiments.claims import ClaimResult, evaluate_group
from landscape.experiments.outputs import save_figure
from landscape.experiments.parallel import train_parallel
from landscape.experiments.phases import Phase, Phases, coupling_phases, seed_label
from landscape.experiments.protocol import CLAIMS, GROUPS
from landscape.experiments.settings import TIERS, Tier, get_tier
from landscape.experiments.tables import ExperimentResult
from training.environment import environment
from training.errors import UserError
from training.fileio import atomic_netcdf, atomic_write_text, read_json


@dataclass(frozen=True)
class Group:
    """A claim group: the phases of runs to train (a phase may need the runs of the one before) and the
    experiment function that tabulates them (reading the runs back)."""

    name: str
    phases: Phases
    run: Callable[..., ExperimentResult]
    tier_suffix: str | None = None
    """The group runs in the tier ``<tier>-<suffix>`` (real images) instead of the tier itself."""


def _cyclic_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(f"{arm} {c.mask.method}@{c.mask.sparsity}", c), c) for arm, c in cyclic.cyclic_arms(tier)]


def _sculpt_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(f"{lab['method']} @{lab['target']}", c), c) for lab, c in sculpting.sculpting_configs(tier)]


def _barrier_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(lab["role"], c), c) for lab, c in barriers.barrier_configs(tier)]


def _check_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(f"{lab['method']} {lab['check']}", c), c) for lab, c in sanity.check_configs(tier)]


def _ticket_phases(tier: Tier, runs: Path) -> Iterator[Phase]:
    yield [(seed_label(f"{lab['ticket']} @{lab['sparsity']}", c), c) for lab, c in sanity.ticket_configs(tier)]


GROUP_SPECS: dict[str, Group] = {
    "cyclic": Group("cyclic", _cyclic_phases, cyclic.run_cyclic_vs_one_cycle),
    "high-sparsity": Group("high-sparsity", _sculpt_phases, sculpting.run_sculpting),
    "coupling": Group("coupling", coupling_phases, coupling.run_mask_init_coupling),
    "connectivity": Group("connectivity", _barrier_phases, barriers.run_cycle_barriers),
    "sanity": Group("sanity", _check_phases, sanity.run_checks),
    "tickets": Group("tickets", _ticket_phases, sanity.run_tickets),
    "images": Group("images", _cyclic_phases, cyclic.run_cyclic_vs_one_cycle, tier_suffix="images"),
    "coupling-ordinary": Group(
        "coupling-ordinary", review_groups.coupling_ordinary_phases, review_groups.run_coupling_ordinary
    ),
    "boost-vs-sparsity": Group("boost-vs-sparsity", review_groups.boost_phases, boost.run_boost),
    "sharpness": Group("sharpness", review_groups.sharpness_phases, sharp.run_sharpness),
    "budget": Group("budget", review_groups.budget_phases, budget.run_budget),
    "keep-ratios": Group("keep-ratios", review_groups.keep_ratio_phases, keep_ratios.run_keep_ratios),
    "architectures": Group(
        "architectures",
        review_groups.architecture_phases,
        architectures.run_architectures,
        tier_suffix="architectures",
    ),
}
assert tuple(GROUP_SPECS) == tuple(sorted(GROUP_SPECS, key=GROUPS.index))


def group_tier(group: str, tier: str | Tier) -> Tier:
    """The tier a group runs in: ``tier`` itself, or for ``images`` and ``architectures`` the tier
    ``<tier>-images`` or ``<tier>-architectures``."""
    if group not in GROUP_SPECS:
        raise UserError(f"unknown claim group {group!r}; choose from: {', '.join(GROUPS)}", param="group")
    base = tier if isinstance(tier, Tier) else get_tier(tier)
    suffix = GROUP_SPECS[group].tier_suffix
    if suffix is None:
        return base
    name = f"{base.name}-{suffix}"
    if name not in TIERS:
        raise UserError(f"tier {base.name!r} has no {suffix} tier ({name!r}); group {group} needs one", param="tier")
    return TIERS[name]


@dataclass
class GroupOutcome:
    """What :func:`reproduce_group` wrote and found."""

    group: str
    tier: str
    claims: list[ClaimResult]
    result: ExperimentResult
    paths: list[Path]
    payload: dict[str, Any]


def reproduce_group(
    group: str,
    tier: str | Tier,
    runs: str | Path,
    results: str | Path,
    figures: str | Path,
    *,
    jobs: int = 2,
    log: Callable[[str], None] | None = None,
) -> GroupOutcome:
    """Train (or read back) the runs of ``group`` under ``runs``, evaluate its claims and write
    ``<results>/<group>.nc``, ``<results>/<group>-claims.json`` and ``<figures>/<group>.png/.pdf``."""
    spec, chosen = GROUP_SPECS.get(group), group_tier(group, tier)
    assert spec is not None
    say = log or (lambda line: None)
    runs, results, figures = Path(runs), Path(results), Path(figures)
    start = time.perf_counter()
    trained: dict[str, float] = {}
    complete = 0
    threads: set[int] = set()
    say(f"group {group}: tier {chosen.name}, runs under {runs}")
    for phase in spec.phases(chosen, runs):
        done = train_parallel(phase, runs, jobs=jobs, log=say)
        trained.update(done.trained)
        complete += len(done.complete)
        threads.update(cfg.threads for _, cfg in phase)
    say(f"group {group}: tabulating and analysing")
    result = spec.run(chosen, runs, quiet=True)
    if group in ("cyclic", "images"):
        result.tables["loss_curves"] = loss_curves(result, chosen.connectivity.sparsity)
        result.summary["loss_flattening"] = loss_flattening(result.tables["loss_curves"])
    claims = evaluate_group(group, result, CLAIMS) if any(c.group == group for c in CLAIMS) else []
    wall = time.perf_counter() - start
    results.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    previous = results / f"{group}-claims.json"
    payload = claims_payload(
        group, chosen, claims, result, wall, trained, complete, previous, jobs=jobs, threads=sorted(threads)
    )
    paths = [
        atomic_netcdf(results_dataset(result, payload), results / f"{group}.nc"),
        write_json(payload, results / f"{group}-claims.json"),
    ]
    from landscape.plot.claims import plot_reproduction

    if claims:  # a descriptive group (keep-ratios) has only its own figures
        fig = plot_reproduction(
            payload["claims"],
            loss_curves=result.tables.get("loss_curves"),
            barriers=result.tables.get("barriers"),
            title=f"{group} ({chosen.name} tier, {len(chosen.seeds)} seeds)",
        )
        paths += save_figure(fig, group, figures)
    for suffix, extra in review_groups.group_figures(group, result).items():
        paths += save_figure(extra, f"{group}-{suffix}", figures)
    for c in claims:
        if not c.tested:
            say(f"{c.id} {c.label}: not tested (the tier has no run of an arm)")
            continue
        say(f"{c.id} {c.label}: {c.effect:+.4g} [{c.ci_low:+.4g}, {c.ci_high:+.4g}] n={c.n} {c.verdict}")
    say(f"group {group}: {len(trained)} runs trained, {complete} read back, {wall:.0f} s")
    return GroupOutcome(group, chosen.name, claims, result, paths, payload)


def claims_payload(
    group: str,
    tier: Tier,
    claims: list[ClaimResult],
    result: ExperimentResult,
    wall: float,
    trained: dict[str, float],
    complete: int,
    previous: Path,
    *,
    jobs: int,
    threads: list[int] | None = None,
) -> dict[str, Any]:
    """The JSON of a group. An invocation that trained nothing keeps the earlier file's training time
    (and its ``jobs``, the training processes side by side, which this invocation did not use).
    ``threads``: the torch thread counts its runs were trained with (their configs' ``threads``; every
    run folder's manifest checks it, :func:`training.run.check_threads`)."""
    timing = {"wall_time_s": wall, "runs_trained": len(trained), "runs_read_back": complete, "jobs": jobs}
    if threads is not None:
        timing["threads"] = threads
    before = read_json(previous)
    if not trained and before and before.get("timing", {}).get("runs_trained"):
        timing = {**before["timing"], "last_invocation_s": wall}
    return {
        "group": group,
        "tier": tier.name,
        "seeds": list(tier.seeds),
        "claims": [c.as_dict() for c in claims],
        "summary": result.summary,
        "timing": timing,
        "environment": environment(tier.base.device if tier.base.device != "auto" else None),
    }


def write_json(payload: dict[str, Any], path: Path) -> Path:
    """Strict JSON (non-finite numbers as ``null``), written atomically."""
    atomic_write_text(path, json.dumps(_plain(payload), indent=1, allow_nan=False, ensure_ascii=False) + "\n")
    return path


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, str):  # numpy scalars
        return _plain(obj.item())
    return obj


def _columns(df: pd.DataFrame, dim: str, prefix: str = "") -> dict[str, xr.Variable]:
    out = {}
    for column in df.columns:
        values = df[column]
        if values.dtype == object:
            values = values.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        out[f"{prefix}{column}"] = xr.Variable(dim, values.to_numpy())
    return out


def results_dataset(result: ExperimentResult, payload: dict[str, Any]) -> xr.Dataset:
    """The group's tables as one Dataset: the runs on ``run``, every other table ``name`` on
    ``<name>_row`` with variables ``<name>.<column>``; attributes: group, tier, claims (JSON)."""
    variables = _columns(result.table.reset_index(drop=True), "run")
    for name, table in result.tables.items():
        variables.update(_columns(table.reset_index(drop=True), f"{name}_row", f"{name}."))
    attrs = {
        "group": payload["group"],
        "tier": payload["tier"],
        "claims": json.dumps(_plain(payload["claims"]), allow_nan=False, ensure_ascii=False),
        "environment": json.dumps(_plain(payload.get("environment", {})), ensure_ascii=False),
    }
    return xr.Dataset(variables, attrs=attrs)


def loss_curves(result: ExperimentResult, sparsity: float) -> pd.DataFrame:
    """Per epoch of every cyclic-arm run at ``sparsity`` of a cyclic experiment: ``method``, ``seed``,
    ``cycle``, ``epoch`` (within the cycle), ``global_epoch``, ``train_loss`` (the epoch's running mean,
    nats) and, at each cycle's last epoch, ``train_set_loss`` (the whole unaugmented training set, NaN
    elsewhere)."""
    table = result.table[(result.table["arm"] == "cyclic") & (result.table["mask.sparsity"] == sparsity)]
    rows = []
    for _, r in table.iterrows():
        m = result.data["runs"][Path(r["run_dir"]).name].metrics
        per_cycle = m["train_set_loss"].values if "train_set_loss" in m else [math.nan] * m.sizes["cycle"]
        for ci, cycle in enumerate(m["cycle"].values):
            for ei, epoch in enumerate(m["epoch"].values):
                last = ei == m.sizes["epoch"] - 1
                rows.append(
                    {
                        "method": r["mask.method"],
                        "seed": int(r["seed"]),
                        "cycle": int(cycle),
                        "epoch": int(epoch),
                        "global_epoch": int(m["global_epoch"].values[ci, ei]),
                        "train_loss": float(m["train_loss"].values[ci, ei]),
                        "train_set_loss": float(per_cycle[ci]) if last else math.nan,
                    }
                )
    return pd.DataFrame(rows)


def loss_flattening(curves: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per cycle, means over the runs of :func:`loss_curves` of the last epoch's training loss, its
    relative fall from the epoch before (``(L[E−1] − L[E]) / L[E−1]``) and the training-set loss at the
    cycle's end."""
    out = {}
    last = int(curves["epoch"].max())
    for cycle, df in curves.groupby("cycle"):
        end = df[df["epoch"] == last].set_index(["method", "seed"])["train_loss"]
        before = df[df["epoch"] == last - 1].set_index(["method", "seed"])["train_loss"]
        out[f"cycle {cycle}"] = {
            "last_epoch_train_loss": float(end.mean()),
            "last_epoch_relative_fall": float(((before - end) / before).mean()) if last > 1 else math.nan,
            "train_set_loss": float(df.loc[df["epoch"] == last, "train_set_loss"].mean()),
        }
    return out
