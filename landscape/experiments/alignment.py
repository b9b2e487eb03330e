"""Notebook 07: connectivity beyond the straight line. On the runs of notebook 02
(:func:`~landscape.experiments.connectivity.connectivity_configs`: per seed, a cyclic run and the
one-cycle run of the same mask and initialisation), the barriers between

* consecutive cycles of a cyclic run (``"k→k+1"``, kind ``consecutive cycles``),
* the cyclic and one-cycle solutions of one seed (``"cyclic→one-cycle"``),
* the cyclic solutions of two seeds (``"seed a↔seed b"``, kind ``two seeds``: different inits and masks),

each along four paths: the straight line (``straight``), the straight line after permuting B's units
to match A by weight matching or activation matching (:func:`landscape.align`), and a quadratic Bezier
curve trained for ``curve_epochs`` epochs (:func:`landscape.curve`, Garipov et al. 2018). BatchNorm is
recalibrated at every point of every path; barriers are ``max f − ½(f(0) + f(1))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from landscape.connectivity.curves import curve
from landscape.connectivity.interpolate import interpolate
from landscape.experiments.connectivity import PER_EPOCH, SPLITS, connectivity_configs
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, results_table, train_all
from training.checkpoint import load_checkpoint
from training.data import load_data
from training.fileio import derive_seed

PATHS = ("straight", "weight matching", "activation matching", "Bezier curve")
KINDS = ("consecutive cycles", "cyclic→one-cycle", "two seeds")
_ALIGN = {"straight": "none", "weight matching": "weight-matching", "activation matching": "activation-matching"}


def run_alignment_and_curves(
    tier: Tier, runs_dir: str | Path, *, curve_epochs: int | None = None, quiet: bool = False
) -> ExperimentResult:
    """Train (or read back) notebook 02's runs and measure every pair along every path (module doc).

    ``curve_epochs`` defaults to the epochs of one cycle. ``tables["barriers"]``: one row per (seed,
    kind, pair, path) with ``error_barrier_<split>``, ``loss_barrier_<split>`` (endpoint-mean),
    ``error_barrier_chord_test`` and ``connected_test`` (test error barrier < 0.02); the two-seeds
    pair is listed under its first seed. ``tables["profiles"]``: test ``error`` and ``loss`` at every
    point ``x`` (α or t) of every path. ``summary``: ``barriers`` (``"<kind>/<path>"`` → mean and sd
    over pairs of the test barriers), ``connected`` (the fraction of pairs connected on test),
    ``seeds`` and ``curve_epochs``. ``data``: for the first pair of each kind, ``{path: Dataset}``
    (:func:`landscape.interpolate` or :func:`landscape.curve` Datasets).
    """
    s = tier.connectivity
    epochs = s.epochs if curve_epochs is None else curve_epochs
    cyclic_cfgs, one_cfgs = connectivity_configs(tier)
    cyclic = train_all(cyclic_cfgs, Path(runs_dir) / PER_EPOCH, quiet=quiet)
    one = train_all(one_cfgs, runs_dir, quiet=quiet)
    data = load_data(tier.base.data)
    size = tier.base.data.eval_batch_size
    splits = {split: data.eval_loader(split, size) for split in SPLITS}
    bn_data = data.eval_loader("train", size)
    pairs = []
    for seed, c, o in zip(tier.seeds, cyclic, one, strict=True):
        pairs += [(seed, KINDS[0], f"{k}→{k + 1}", c.checkpoint(k), c.checkpoint(k + 1)) for k in range(1, s.cycles)]
        pairs.append((seed, KINDS[1], "cyclic→one-cycle", c.checkpoint(), o.checkpoint()))
    for i in range(len(cyclic) - 1):  # the cyclic solutions of consecutive seeds
        sa, sb = tier.seeds[i], tier.seeds[i + 1]
        pairs.append((sa, KINDS[2], f"seed {sa}↔seed {sb}", cyclic[i].checkpoint(), cyclic[i + 1].checkpoint()))
    rows, profiles, first = [], [], {}
    for seed, kind, label, path_a, path_b in pairs:
        a, b = load_checkpoint(path_a), load_checkpoint(path_b)
        results = {
            path: interpolate(a, b, splits, points=s.points, bn_data=bn_data, align=method, device=tier.base.device)
            for path, method in _ALIGN.items()
        }
        results["Bezier curve"], _ = curve(
            a, b, splits, lambda e, seed=seed, label=label: data.train_loader(
                tier.base.data.batch_size, seed=derive_seed(seed, "curve", label, e)
            ),
            epochs=epochs, points=s.points, lr=tier.base.optim.lr, bn_data=bn_data, seed=seed,
            device=tier.base.device,
        )  # fmt: skip
        first.setdefault(kind, results)
        for path, ds in results.items():
            rows.append({"seed": seed, "kind": kind, "pair": label, "path": path, **_barriers(ds)})
            profiles += _profile(ds, {"seed": seed, "kind": kind, "pair": label, "path": path})
    barriers = pd.DataFrame(rows)
    summary = {**_summary(barriers), "seeds": len(tier.seeds), "curve_epochs": epochs}
    return ExperimentResult(
        table=results_table(cyclic + one, ["seed", "schedule.name"]),
        summary=summary,
        tables={"barriers": barriers, "profiles": pd.DataFrame(profiles)},
        data=first,
    )


def _barriers(ds: xr.Dataset) -> dict:
    out = {f"{v}_{s}": float(ds[v].sel(split=s)) for v in ("error_barrier", "loss_barrier") for s in SPLITS}
    out["error_barrier_chord_test"] = float(ds["error_barrier_chord"].sel(split="test"))
    out["connected_test"] = bool(ds["connected"].sel(split="test"))
    return out


def _profile(ds: xr.Dataset, labels: dict) -> list[dict]:
    x = ds["alpha"].values if "alpha" in ds.coords else ds["t"].values
    test = ds.sel(split="test")
    return [
        {**labels, "x": float(xi), "error": float(e), "loss": float(lo)}
        for xi, e, lo in zip(x, test["error"].values, test["loss"].values, strict=True)
    ]


def _summary(barriers: pd.DataFrame) -> dict:
    """Per ``"<kind>/<path>"``: mean and sd (0 for one pair) of the test barriers, and the connected fraction."""
    out: dict = {"barriers": {}, "connected": {}}
    for (kind, path), group in barriers.groupby(["kind", "path"], sort=False):
        key = f"{kind}/{path}"
        out["barriers"][key] = {
            f"{v}_{stat}": float(np.nan_to_num(group[v].agg(stat)))  # sd of a single pair: 0
            for v in ("error_barrier_test", "loss_barrier_test")
            for stat in ("mean", "std")
        }
        out["connected"][key] = float(group["connected_test"].mean())
    return out
