"""The ``boost-vs-sparsity`` group: is the cyclic boost larger at higher sparsity (arXiv 2406.02773,
lines 294–295, which a reviewer reads the other way)? P1-1's arms (cyclic C×E against ordinary E
epochs) on random ERK masks at several sparsities; the claim is a positive slope of the paired boost
against ``x = −log10(1 − sparsity)`` (decades of density), the scale fixed in the protocol.

Per seed, the boost ``d(s) = acc(cyclic) − acc(ordinary)`` at every sparsity and the least-squares slope
of d against x; the claim's interval is the one-sample t interval of the seeds' slopes (a paired,
seed-level regression: each seed's slope uses only that seed's pairs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, mean_std, results_table, train_all
from training.config import MaskConfig, ScheduleConfig, TrainConfig


def density_decades(sparsity: float | np.ndarray) -> float | np.ndarray:
    """x = −log10(1 − sparsity): 1 at 90%, 2 at 99%."""
    return -np.log10(1.0 - np.asarray(sparsity, dtype=float))


def boost_configs(tier: Tier) -> list[tuple[dict[str, Any], TrainConfig]]:
    """``(labels, config)`` per sparsity, seed and arm (``cyclic``: C cycles of E; ``ordinary``: one
    cycle of E epochs); labels hold ``arm`` and ``sparsity``."""
    s = tier.group_settings("boost", "boost-vs-sparsity")
    schedules = {
        "cyclic": ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs),
        "ordinary": ScheduleConfig(name="one-cycle", epochs=s.epochs),
    }
    return [
        (
            {"arm": name, "sparsity": sparsity},
            replace(
                tier.base,
                seed=seed,
                schedule=schedule,
                mask=MaskConfig(method="random", distribution=s.distribution, sparsity=sparsity),
            ),
        )
        for sparsity in s.sparsities
        for seed in tier.seeds
        for name, schedule in schedules.items()
    ]


def boosts(table: pd.DataFrame) -> pd.DataFrame:
    """Per seed and sparsity: ``d`` = acc(cyclic) − acc(ordinary) and ``x`` (density decades)."""
    wide = table.pivot_table(index=["seed", "sparsity"], columns="arm", values="accuracy")
    out = (wide["cyclic"] - wide["ordinary"]).rename("d").reset_index()
    out["x"] = density_decades(out["sparsity"].to_numpy())
    return out


def seed_slopes(boost: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the least-squares ``slope`` of d against x (accuracy per decade of density) over the
    seed's finite pairs (NaN with fewer than two), and ``intercept``."""
    rows = []
    for seed, df in boost.groupby("seed"):
        ok = df[np.isfinite(df["d"])]
        if len(ok) < 2:
            slope, intercept = np.nan, np.nan
        else:
            slope, intercept = np.polyfit(ok["x"].to_numpy(), ok["d"].to_numpy(), 1)
        rows.append({"seed": int(seed), "slope": float(slope), "intercept": float(intercept), "points": len(ok)})
    return pd.DataFrame(rows)


def run_boost(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`boost_configs`. ``table``: one row per run (``arm``, ``sparsity``,
    ``seed``, results-table columns); ``tables["boosts"]``: :func:`boosts`; ``tables["slopes"]``:
    :func:`seed_slopes`. ``summary``: ``accuracy`` (``"<sparsity>/<arm>"`` → [mean, std]), ``boost``
    (``"<sparsity>"`` → [mean, std] of d), ``slope`` ([mean, std] over seeds), ``scale``."""
    labelled = boost_configs(tier)
    runs = train_all([cfg for _, cfg in labelled], runs_dir, quiet=quiet)
    table = results_table(runs, labels=[{**lab, "seed": cfg.seed} for lab, cfg in labelled])
    boost = boosts(table)
    slopes = seed_slopes(boost)
    summary = {
        "seeds": len(tier.seeds),
        "scale": "x = -log10(1 - sparsity)",
        "accuracy": mean_std(table, ["sparsity", "arm"]),
        "boost": mean_std(boost, ["sparsity"], "d"),
        "slope": [float(slopes["slope"].mean()), float(slopes["slope"].std())],
    }
    return ExperimentResult(table=table, summary=summary, tables={"boosts": boost, "slopes": slopes})
