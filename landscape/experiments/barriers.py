"""Claim P1-7 of the reproduction protocol: error barriers between consecutive cycles of cyclic
training (Paper: arXiv 2406.02773, §4, Fig. 3b), with two controls: the final states of two
independent seeds, and two runs from one initialisation and mask trained on two data orders
(Frankle et al. 2020's instability analysis, ``data_seed``).

The cyclic runs are the cyclic arm of :func:`~landscape.experiments.cyclic.cyclic_arms` (the mask of
``tier.connectivity``: method and sparsity), so the claim reuses the runs of claims P1-1 to P1-3.
Every path is evaluated on the test split at ``tier.connectivity.points`` values of α with BatchNorm
recalibrated on the unaugmented training split (:func:`landscape.connectivity.interpolate.interpolate`), and both
barrier definitions are computed from the same curve (:func:`landscape.connectivity.interpolate.barrier`):
Frankle et al.'s ``max_α f(α) − ½(f(0) + f(1))`` and the chord ``max_α [f(α) − ((1−α)f(0) + αf(1))]``
(Entezari et al. 2022). A pair is linearly connected when its error barrier is below 0.02.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from landscape.connectivity.interpolate import barrier, interpolate
from landscape.experiments.cyclic import cyclic_arms
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, results_table, train_all
from training.config import TrainConfig
from training.data import load_data
from training.errors import UserError

#: The data-order control trains seed s on data order ``s + DATA_ORDER_OFFSET``.
DATA_ORDER_OFFSET = 1000
CONNECTED = 0.02  # Frankle et al.'s threshold on the error barrier
KINDS = ("consecutive cycles", "independent seeds", "data orders")
DEFINITIONS = {"": "endpoint-mean", "_chord": "linear"}  # "linear" is the chord definition in every version


def barrier_configs(tier: Tier) -> list[tuple[dict, TrainConfig]]:
    """``(labels, config)``: per seed the cyclic run of the connectivity mask (``role`` ``cyclic``),
    then per seed the same run on data order ``seed + DATA_ORDER_OFFSET`` (``role`` ``data order``)."""
    s = tier.connectivity
    cyclic = [
        cfg
        for arm, cfg in cyclic_arms(tier)
        if arm == "cyclic" and cfg.mask.method == s.method and cfg.mask.sparsity == s.sparsity
    ]
    if not cyclic:
        raise UserError(f"tier {tier.name!r} has no cyclic run of {s.method} at sparsity {s.sparsity}")
    other = [replace(cfg, data_seed=cfg.seed + DATA_ORDER_OFFSET) for cfg in cyclic]
    return [({"role": "cyclic", "seed": c.seed}, c) for c in cyclic] + [
        ({"role": "data order", "seed": c.seed}, c) for c in other
    ]


def seed_pairs(seeds: tuple[int, ...]) -> list[tuple[int, int]]:
    """Pairs of independent seeds (s, next seed), wrapping around: (0,1), (1,2), …, (4,0); a single
    pair for two seeds."""
    pairs = [(seeds[i], seeds[(i + 1) % len(seeds)]) for i in range(len(seeds))]
    unique: dict[frozenset, tuple[int, int]] = {}
    for p in pairs:
        if p[0] != p[1]:
            unique.setdefault(frozenset(p), p)
    return list(unique.values())


def run_cycle_barriers(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`barrier_configs` and interpolate every pair.

    ``table``: one row per run (``role``, ``seed``, results-table columns). ``tables["barriers"]``:
    one row per pair with ``kind`` (one of :data:`KINDS`), ``pair`` (``"<k>→<k+1>"`` for cycles,
    ``"<s>,<t>"`` for seeds, ``"<s>,<s>+1000"`` for data orders), ``seed``, the test
    ``error_barrier``/``loss_barrier`` (Frankle et al.) and ``error_barrier_chord``/``loss_barrier_chord``
    (error as a fraction, loss in nats), ``connected`` and ``connected_chord`` (error barrier < 0.02),
    ``error_a``/``error_b`` (the endpoints' test errors). ``summary``: per kind the mean and std of
    each barrier and the fraction connected; per consecutive pair the mean barriers; ``points``, ``seeds``.
    """
    labelled = barrier_configs(tier)
    runs = train_all([cfg for _, cfg in labelled], runs_dir, quiet=quiet)
    table = results_table(runs, labels=[lab for lab, _ in labelled])
    cyclic = {lab["seed"]: run for (lab, _), run in zip(labelled, runs, strict=True) if lab["role"] == "cyclic"}
    orders = {lab["seed"]: run for (lab, _), run in zip(labelled, runs, strict=True) if lab["role"] == "data order"}
    data = load_data(tier.base.data)
    size = tier.base.data.eval_batch_size
    test, bn_data = {"test": data.eval_loader("test", size)}, data.eval_loader("train", size)
    points, device = tier.connectivity.points, tier.base.device

    def row(kind: str, pair: str, seed: int, a: Path, b: Path) -> dict:
        curve = interpolate(a, b, test, points=points, bn_data=bn_data, device=device)
        alpha = curve["alpha"].values
        out = {"kind": kind, "pair": pair, "seed": seed}
        for metric in ("error", "loss"):
            values = curve[metric].sel(split="test").values
            for suffix, definition in DEFINITIONS.items():
                out[f"{metric}_barrier{suffix}"] = barrier(alpha, values, definition)
            if metric == "error":
                out["error_a"], out["error_b"] = float(values[0]), float(values[-1])
        out["connected"] = bool(out["error_barrier"] < CONNECTED)
        out["connected_chord"] = bool(out["error_barrier_chord"] < CONNECTED)
        return out

    rows = []
    for seed, run in cyclic.items():
        cycles = run.stages[-1]["cycles"]
        for k in range(1, cycles):
            rows.append(row(KINDS[0], f"{k}→{k + 1}", seed, run.checkpoint(k), run.checkpoint(k + 1)))
    for s, t in seed_pairs(tuple(cyclic)):
        rows.append(row(KINDS[1], f"{s},{t}", s, cyclic[s].checkpoint(), cyclic[t].checkpoint()))
    for seed, run in orders.items():
        pair = f"{seed},{seed}+{DATA_ORDER_OFFSET}"
        rows.append(row(KINDS[2], pair, seed, cyclic[seed].checkpoint(), run.checkpoint()))
    barriers = pd.DataFrame(rows)
    summary = barrier_summary(barriers)
    summary.update({"points": points, "seeds": len(cyclic)})
    return ExperimentResult(table=table, summary=summary, tables={"barriers": barriers})


def barrier_summary(barriers: pd.DataFrame) -> dict:
    """Per kind (and per consecutive pair) the mean and sample std of every barrier and the fraction of
    pairs connected under each definition."""
    values = ["error_barrier", "error_barrier_chord", "loss_barrier", "loss_barrier_chord"]

    def stats(df: pd.DataFrame) -> dict:
        out: dict = {"pairs": len(df)}
        for v in values:
            out[f"{v}_mean"] = float(df[v].mean())
            out[f"{v}_std"] = float(df[v].std(ddof=1)) if len(df) > 1 else float("nan")
        out["fraction_connected"] = float(np.mean(df["connected"]))
        out["fraction_connected_chord"] = float(np.mean(df["connected_chord"]))
        return out

    consecutive = barriers[barriers["kind"] == KINDS[0]]
    return {
        "kinds": {kind: stats(df) for kind, df in barriers.groupby("kind", sort=False)},
        "consecutive_pairs": {pair: stats(df) for pair, df in consecutive.groupby("pair", sort=False)},
    }
