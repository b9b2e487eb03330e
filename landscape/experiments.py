"""Helpers for the figure notebooks: run a grid of configs in this process and tabulate the results.

The notebooks call these with a ``QUICK`` switch: MNIST-1D settings small enough for CI, or the
papers' settings (CIFAR/ImageNet from a data root, on a GPU). Runs are named by config hash, so a
notebook re-executed after an interruption only trains what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landscape.sweep import expand
from training.config import TrainConfig, to_dict
from training.run import RunResult, train


def figure_dir() -> Path:
    """Where notebooks write figures: ``$LANDSCAPE_FIGURES`` or ``../figures`` (from ``notebooks/``)."""
    path = Path(os.environ.get("LANDSCAPE_FIGURES", "../figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_grid(base: TrainConfig, grid: Mapping[str, list], out: str | Path) -> list[RunResult]:
    """Train every config of the grid's product over ``base`` (sequentially, in this process)."""
    return [train(cfg, out, quiet=True) for cfg in expand(base, grid)]


def _final_level(metrics: Any) -> Any:
    if "level" in metrics.dims:
        metrics = metrics.isel(level=-1).dropna("cycle", how="all")
    return metrics


def results_table(runs: list[RunResult], keys: list[str]) -> pd.DataFrame:
    """One row per run: the dotted config ``keys``, final test error/accuracy, final train loss,
    total epochs trained (all stages) and the run folder."""
    rows = []
    for run in runs:
        flat = _flat(to_dict(run.config))
        m = _final_level(run.metrics)
        test_error = float(m["test_error"].values[np.isfinite(m["test_error"].values)][-1])
        train_loss = float(m["train_loss"].values[np.isfinite(m["train_loss"].values)][-1])
        epochs = int(np.isfinite(run.metrics["train_loss"].values).sum())
        rows.append(
            {
                **{k: flat[k] for k in keys},
                "test_error": test_error,
                "accuracy": 1 - test_error,
                "train_loss": train_loss,
                "epochs": epochs,
                "run_dir": str(run.run_dir),
            }
        )
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame, by: list[str], value: str = "accuracy") -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` over seeds, grouped by ``by``."""
    return df.groupby(by)[value].agg(["mean", "std", "count"]).reset_index()


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
