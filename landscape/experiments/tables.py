"""Training a list of configs and tabulating the runs: one row per run, read at its last level and
last finite epoch, and summaries over seeds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from landscape.experiments.cost import training_cost
from landscape.run_folders import find_run_folders
from landscape.sweep import expand
from training.config import TrainConfig, load_yaml, to_dict
from training.environment import describe
from training.fileio import read_json
from training.metrics import progress_disabled
from training.run import RunResult, train


@dataclass
class ExperimentResult:
    """What an experiment function returns.

    ``table``: one row per run (:func:`results_table` columns plus the experiment's labels);
    ``summary``: the numbers the notebook writes to ``0N_summary.json`` (plain JSON types);
    ``tables``: further tables derived from the runs (e.g. barriers per pair of checkpoints);
    ``data``: other results (xarray Datasets, masks) keyed by name.
    """

    table: pd.DataFrame
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def train_all(configs: Iterable[TrainConfig], out: str | Path, *, quiet: bool = False) -> list[RunResult]:
    """Train every config under ``out``, one after another in this process. Runs are named by config
    hash, so complete runs are read back instead of trained and interrupted ones resume."""
    configs = list(configs)
    bar = tqdm(configs, desc="runs", unit="run", disable=progress_disabled(quiet), leave=False)
    return [train(cfg, out, quiet=True) for cfg in bar]


def run_grid(base: TrainConfig, grid: Mapping[str, list], out: str | Path, *, quiet: bool = False) -> list[RunResult]:
    """Train every config of the grid's product over ``base`` (dotted keys, see :func:`landscape.sweep.expand`)."""
    return train_all(expand(base, grid), out, quiet=quiet)


def final_level(metrics: xr.Dataset) -> xr.Dataset:
    """A run's metrics at its last level (pruning round), without cycles that level never ran."""
    if "level" in metrics.dims:
        metrics = metrics.isel(level=-1).dropna("cycle", how="all")
    return metrics


def final_value(metrics: xr.Dataset, name: str) -> float:
    """Metric ``name`` at the last finite epoch of the last level: the value a run ends with."""
    values = np.asarray(final_level(metrics)[name].values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else float("nan")


def results_table(
    runs: Sequence[RunResult], keys: Sequence[str] = (), labels: Sequence[Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per run: the experiment's ``labels`` (one mapping per run), the dotted config ``keys``,
    the final ``test_error`` and ``accuracy`` (1 − test error), the final ``train_loss`` (nats; the
    running mean over the last epoch's augmented batches), ``train_set_loss`` (nats; the loss over the
    whole unaugmented training set in eval mode at the end of the last cycle, NaN for runs made before
    it was recorded), the cost (``epochs`` over all stages, ``train_flops`` and ``dense_epochs``,
    see :func:`training_cost`), ``run_dir`` and ``made_on`` (where the run was made:
    :func:`training.environment.describe` of its manifest's environment). Final means the last finite
    epoch (or cycle) of the last level (:func:`final_value`)."""
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    rows = []
    for i, run in enumerate(runs):
        flat = _flat(to_dict(run.config))
        test_error = final_value(run.metrics, "test_error")
        cost = training_cost(run.metrics)
        rows.append(
            {
                **(dict(labels[i]) if labels is not None else {}),
                **{k: flat[k] for k in keys},
                "test_error": test_error,
                "accuracy": 1 - test_error,
                "train_loss": final_value(run.metrics, "train_loss"),
                "train_set_loss": (
                    final_value(run.metrics, "train_set_loss") if "train_set_loss" in run.metrics else float("nan")
                ),
                "epochs": cost.epochs,
                "train_flops": cost.train_flops,
                "dense_epochs": cost.dense_epochs,
                "run_dir": str(run.run_dir),
                "made_on": _made_on(run.run_dir),
            }
        )
    return pd.DataFrame(rows)


def _made_on(run_dir: Path) -> str:
    """One line naming where the run was made (its manifest's environment), ``""`` for older runs."""
    env = (read_json(Path(run_dir) / "manifest.json") or {}).get("environment")
    return describe(env) if isinstance(env, dict) else ""


def runs_table(
    paths: Iterable[str | Path], keys: Sequence[str] = ("recipe.name", "mask.method", "mask.sparsity", "seed")
) -> pd.DataFrame:
    """:func:`results_table` of every complete run folder under ``paths`` (run folders, or folders holding
    them at any depth), with the dotted config ``keys`` as columns: any set of runs, however they were
    launched, e.g. for :func:`landscape.plot.plot_accuracy_vs_flops`. Runs not complete are left out."""
    folders, _ = find_run_folders(list(paths))
    runs = []
    for folder in folders:
        manifest = read_json(folder / "manifest.json") or {}
        if manifest.get("status") != "complete":
            continue
        metrics = xr.load_dataset(folder / "metrics.nc")
        runs.append(RunResult(folder, load_yaml(folder / "config.yaml"), metrics, manifest.get("stages", [])))
    return results_table(runs, keys=keys)


def summarise(df: pd.DataFrame, by: list[str], value: str = "accuracy") -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` over seeds, grouped by ``by``."""
    return df.groupby(by)[value].agg(["mean", "std", "count"]).reset_index()


def mean_std(df: pd.DataFrame, by: list[str], value: str = "accuracy", sep: str = "/") -> dict[str, list[float]]:
    """``{"<by values joined by sep>": [mean, std]}`` of ``value`` over the rows of each group (the
    sample standard deviation, NaN for one row), in sorted group order."""
    stats = df.groupby(by)[value].agg(["mean", "std"])
    return {_label(k, sep): [float(r["mean"]), float(r["std"])] for k, r in stats.iterrows()}


def group_mean(df: pd.DataFrame, by: list[str], value: str, sep: str = "/") -> dict[str, float]:
    """``{"<by values joined by sep>": mean}`` of ``value`` per group, in sorted group order."""
    return {_label(k, sep): float(v) for k, v in df.groupby(by)[value].mean().items()}


def _label(key: Any, sep: str) -> str:
    return sep.join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
