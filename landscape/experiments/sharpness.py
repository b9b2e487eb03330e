"""The ``sharpness`` group: the top Hessian eigenvalue of cyclic and one-cycle solutions (arXiv 2406.02773,
§4, Fig. 3; ``REPRODUCTION.md`` Part 1, S-1 and S-2).

The runs are P1-2's arms of the tier's cyclic group (cyclic C×E against one cycle of C·E epochs, the
settings' methods at its sparsity): the same configs, so the same run folders. Every final solution's
λ_max is computed on one fixed batch (the first ``samples`` unaugmented training samples, eval mode,
mean cross-entropy) two ways: over every parameter (``subspace="dense"``, PyHessian's protocol: pruned
weights, BatchNorm and biases included) and on the mask subspace (the kept weights). Descriptive: the
Hutch++ trace of each final solution on the mask subspace, and for the cyclic runs λ_max at the end of
every cycle (:func:`landscape.analyze`, each checkpoint warm-started from the previous one's Ritz vector)
with the sign-flip fraction of the kept weights between consecutive cycles.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr

from landscape.analysis import analyze
from landscape.experiments.cyclic import cyclic_arms
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, mean_std, results_table, train_all
from landscape.hessian import hessian_eigenvalues, hessian_trace
from landscape.hessian.sequence import HessianOptions
from training.config import TrainConfig
from training.data import load_data

ARMS = ("cyclic", "one-cycle")


def sharpness_configs(tier: Tier) -> list[tuple[str, TrainConfig]]:
    """``(arm, config)`` of the cyclic group's cyclic and one-cycle runs of the settings' methods at its
    sparsity."""
    s = tier.group_settings("sharpness", "sharpness")
    return [
        (arm, cfg)
        for arm, cfg in cyclic_arms(tier)
        if arm in ARMS and cfg.mask.method in s.methods and abs(cfg.mask.sparsity - s.sparsity) < 1e-12
    ]


def hessian_batch(tier: Tier, samples: int) -> list:
    """One batch: the first ``samples`` training samples, unaugmented (the split's evaluation loader)."""
    data = load_data(tier.base.data)
    return [next(iter(data.eval_loader("train", samples)))]


def _final_curvature(path: Path, batch: list, tier: Tier) -> dict[str, float]:
    s = tier.sharpness
    out: dict[str, float] = {}
    for subspace, name in (("dense", "all"), ("mask", "mask")):
        ds = hessian_eigenvalues(
            str(path), batch, k=1, tol=s.tol, max_iter=s.max_iter, subspace=subspace, device=tier.base.device
        )
        out[f"lambda_max_{name}"] = float(ds["eigenvalue"].values.ravel()[0])
        out[f"converged_{name}"] = float(ds.attrs.get("converged", float("nan")))
    trace = hessian_trace(
        str(path), batch, method="hutchpp", max_probes=s.trace_matvecs, subspace="mask", device=tier.base.device
    )
    out["trace_mask"] = float(trace["trace"].values.ravel()[0])
    return out


def cycle_table(per_cycle: xr.Dataset, labels: list[dict]) -> pd.DataFrame:
    """One row per (cyclic run, cycle end): ``mask.method``, ``seed``, ``cycle``, ``lambda_max`` (mask
    subspace, warm-started) and ``flip_vs_prev`` (sign flips of kept weights since the previous cycle)."""
    rows = []
    for run, lab in zip(per_cycle["run"].values, labels, strict=True):
        sel = per_cycle.sel(run=run)
        for i in range(sel.sizes["point"]):
            cycle = int(sel["cycle"].values[i])
            if cycle < 1:  # the initialisation
                continue
            rows.append(
                {
                    **lab,
                    "cycle": cycle,
                    "lambda_max": float(sel["eigenvalue"].sel(k=1).values[i]),
                    "flip_vs_prev": float(sel["flip_vs_prev"].values[i]) if cycle > 1 else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def run_sharpness(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`sharpness_configs` and measure them.

    ``table``: one row per run with ``arm``, ``mask.method``, ``seed``, ``lambda_max_all``,
    ``lambda_max_mask``, ``converged_all``, ``converged_mask`` (1/0), ``trace_mask`` and the results-table
    columns. ``tables["cycles"]``: :func:`cycle_table` of the cyclic runs. ``summary``: ``lambda_max``
    (``"<method>/<arm>/<subspace>"`` → [mean, std]), ``samples``, ``seeds``."""
    s = tier.sharpness
    arms = sharpness_configs(tier)
    runs = train_all([cfg for _, cfg in arms], runs_dir, quiet=quiet)
    batch = hessian_batch(tier, s.samples)
    curvature = [_final_curvature(run.checkpoint(), batch, tier) for run in runs]
    labels = [{"arm": arm, "mask.method": cfg.mask.method, "seed": cfg.seed} for arm, cfg in arms]
    table = results_table(runs, labels=[{**lab, **c} for lab, c in zip(labels, curvature, strict=True)])
    cyclic = [(run, lab) for run, lab in zip(runs, labels, strict=True) if lab["arm"] == "cyclic"]
    per_cycle = analyze(
        [run.run_dir for run, _ in cyclic],
        lmc="none",
        signs=True,
        hessian_k=1,
        hessian_batch_size=s.samples,
        hessian=HessianOptions(tol=s.tol, max_iter=s.max_iter),
        device=tier.base.device,
        quiet=True,
    )
    cycles = cycle_table(per_cycle, [{"mask.method": lab["mask.method"], "seed": lab["seed"]} for _, lab in cyclic])
    long = table.melt(
        id_vars=["mask.method", "arm"], value_vars=["lambda_max_all", "lambda_max_mask"], var_name="subspace"
    )
    summary = {
        "seeds": len(tier.seeds),
        "samples": s.samples,
        "lambda_max": mean_std(long, ["mask.method", "arm", "subspace"], "value"),
        "trace_mask": mean_std(table, ["mask.method", "arm"], "trace_mask"),
    }
    return ExperimentResult(table=table, summary=summary, tables={"cycles": cycles}, data={"per_cycle": per_cycle})
