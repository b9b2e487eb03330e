"""Notebook 02: error and loss barriers between consecutive cycles of a cyclic run and between the
cyclic and one-cycle solutions of the same mask and initialisation, the sign flips between them, and
the top Hessian eigenvalue at every epoch (Paper: arXiv 2406.02773, Fig. 3)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from landscape.analysis import analyze
from landscape.connectivity.interpolate import interpolate
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, results_table, train_all
from landscape.overlap import overlap
from training.config import MaskConfig, ScheduleConfig, TrainConfig
from training.data import load_data

SPLITS = ("train", "test")
CROSS_PAIR = "cyclic→one-cycle"
# Cyclic runs with per-epoch checkpoints live in their own folder: save_every does not enter the run
# hash, so the same config trained elsewhere without it would lack the epoch files.
PER_EPOCH = "per-epoch"


def connectivity_configs(tier: Tier) -> tuple[list[TrainConfig], list[TrainConfig]]:
    """Per seed, the cyclic run (``epoch_<n>.pt`` after every epoch) and the one-cycle run of equal length."""
    s = tier.connectivity
    mask = MaskConfig(method=s.method, sparsity=s.sparsity)
    cyclic = ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs)
    one = ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs)
    return (
        [replace(tier.base, mask=mask, seed=seed, save_every=1, schedule=cyclic) for seed in tier.seeds],
        [replace(tier.base, mask=mask, seed=seed, schedule=one) for seed in tier.seeds],
    )


def run_lmc_and_sharpness(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`connectivity_configs` and analyse them.

    Barriers, sign flips and eigenvalues between and at the cyclic runs' checkpoints come from
    :func:`landscape.analyze` (cached in each run folder); the cross-run pair (the cyclic run's last
    checkpoint against the one-cycle run's) from :func:`landscape.interpolate` and
    :func:`landscape.overlap`. Barriers are ``max_α f(α) − ½(f(0) + f(1))`` with BatchNorm
    recalibrated, over ``points`` values of α.

    ``tables["barriers"]``: one row per (seed, pair) with ``error_barrier_<split>``,
    ``loss_barrier_<split>`` (split train or test; error as a fraction, loss in nats) and
    ``flip_fraction`` (fraction of kept weights whose sign differs). ``tables["eigenvalues"]``: one row
    per (seed, epoch) with ``cycle``, ``when`` (``start`` for a cycle's first epoch, ``end`` for its
    last, else empty) and ``lambda_max``. ``summary``: ``barriers`` (pair → mean and std of the test
    barriers), ``sign_flips`` (pair → mean flip fraction), ``lambda_max`` (``"cycle <k> start|end"``
    → mean), ``seeds``.
    """
    s = tier.connectivity
    cyclic_cfgs, one_cfgs = connectivity_configs(tier)
    cyclic = train_all(cyclic_cfgs, Path(runs_dir) / PER_EPOCH, quiet=quiet)
    one = train_all(one_cfgs, runs_dir, quiet=quiet)
    table = results_table(cyclic + one, ["seed", "schedule.name"])
    device = tier.base.device
    dirs = [run.run_dir for run in cyclic]
    lmc = analyze(dirs, lmc="consecutive", signs=True, points=s.points, splits=SPLITS, device=device, quiet=quiet)
    hessian = analyze(
        dirs,
        lmc="none",
        signs=False,
        hessian_k=1,
        hessian_batch_size=s.hessian_batch_size,
        checkpoints="epochs",
        device=device,
        quiet=quiet,
    )
    data = load_data(tier.base.data)
    splits = {split: data.eval_loader(split, tier.base.data.eval_batch_size) for split in SPLITS}
    cross = [
        (
            interpolate(c.checkpoint(), o.checkpoint(), splits, points=s.points, device=device),
            overlap(c.checkpoint(), o.checkpoint()),
        )
        for c, o in zip(cyclic, one, strict=True)
    ]
    barriers = barrier_table(lmc, cross, tier.seeds)
    eigenvalues = eigenvalue_table(hessian, tier.seeds, s.epochs)
    summary = connectivity_summary(barriers, eigenvalues, len(tier.seeds))
    return ExperimentResult(
        table=table,
        summary=summary,
        tables={"barriers": barriers, "eigenvalues": eigenvalues},
        data={"lmc": lmc, "hessian": hessian},
    )


def barrier_table(lmc: xr.Dataset, cross: list[tuple[xr.Dataset, xr.Dataset]], seeds: tuple[int, ...]) -> pd.DataFrame:
    """Rows (seed, pair) from an :func:`analyze` Dataset of cyclic runs (one per seed, in order; pairs
    of consecutive cycle checkpoints ``"<k>→<k+1>"``) and per seed the (interpolate, overlap) results of
    the cyclic → one-cycle pair."""
    rows = []
    for run, seed, (curve, flips) in zip(lmc["run"].values, seeds, cross, strict=True):
        sel = lmc.sel(run=run)
        cycles = sel["cycle"].values
        for i in np.flatnonzero((sel["level"].values >= 0) & (cycles >= 2)):
            rows.append(
                {
                    "seed": seed,
                    "pair": f"{cycles[i - 1]}→{cycles[i]}",
                    **_barriers(sel.isel(point=i)),
                    "flip_fraction": float(sel["flip_vs_prev"].values[i]),
                }
            )
        rows.append(
            {"seed": seed, "pair": CROSS_PAIR, **_barriers(curve), "flip_fraction": float(flips["flip_fraction_total"])}
        )
    return pd.DataFrame(rows)


def _barriers(ds: xr.Dataset) -> dict[str, float]:
    return {f"{v}_{s}": float(ds[v].sel(split=s)) for v in ("error_barrier", "loss_barrier") for s in SPLITS}


def eigenvalue_table(hessian: xr.Dataset, seeds: tuple[int, ...], epochs: int) -> pd.DataFrame:
    """Rows (seed, epoch) of the top eigenvalue from an ``analyze(..., checkpoints="epochs")`` Dataset
    of single-level cyclic runs with ``epochs`` epochs per cycle (``init.pt`` is left out)."""
    rows = []
    for run, seed in zip(hessian["run"].values, seeds, strict=True):
        sel = hessian.sel(run=run, k=1)
        for epoch, value in zip(sel["epoch"].values, sel["eigenvalue"].values, strict=True):
            if epoch < 1:  # init.pt, and padding of a shorter run
                continue
            within = (epoch - 1) % epochs + 1
            when = "start" if within == 1 else "end" if within == epochs else ""
            rows.append(
                {
                    "seed": seed,
                    "epoch": int(epoch),
                    "cycle": (int(epoch) - 1) // epochs + 1,
                    "when": when,
                    "lambda_max": float(value),
                }
            )
    return pd.DataFrame(rows)


def connectivity_summary(barriers: pd.DataFrame, eigenvalues: pd.DataFrame, seeds: int) -> dict:
    """The summary of :func:`run_lmc_and_sharpness` from its two tables."""
    stats = barriers.groupby("pair")[["error_barrier_test", "loss_barrier_test"]].agg(["mean", "std"])
    marked = eigenvalues[eigenvalues["when"] != ""]
    return {
        "barriers": {
            pair: {
                f"{var}_{stat}": float(row[(var, stat)])
                for var in ("error_barrier_test", "loss_barrier_test")
                for stat in ("mean", "std")
            }
            for pair, row in stats.iterrows()
        },
        "sign_flips": {pair: float(v) for pair, v in barriers.groupby("pair")["flip_fraction"].mean().items()},
        "lambda_max": {
            f"cycle {c} {w}": float(v) for (c, w), v in marked.groupby(["cycle", "when"])["lambda_max"].mean().items()
        },
        "seeds": seeds,
    }
