"""The ``keep-ratios`` group (descriptive; Paper 2's reviewer: "How close are the smart-ratios compared to
actual keep-ratios from existing methods?"): the per-layer keep ratio (kept / total weights of each
prunable layer) of every method against Su et al.'s smart ratios.

Masks pruned at initialisation (SNIP, GraSP, SynFlow, and the rules ERK and smart ratios) are made
exactly as a run of that config would make them (:func:`training.recipes.common.initial_mask` on the
run's initialisation), without training; LRR's and RigL's final masks are read from the ``budget``
group's runs (the same configs, trained once). Per method, sparsity and seed, one number: the Spearman
rank correlation of its per-layer keep ratios with the smart ratios, and the mean absolute difference.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from landscape.experiments.budget import budget_configs
from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, train_all
from training.checkpoint import read_checkpoint
from training.config import MaskConfig, TrainConfig
from training.data import load_data
from training.evaluate import resolve_device
from training.recipes.common import initial_mask
from training.trainer import Trainer

RULES = {"smart ratio": "smart-ratio", "erk": "erk"}
TRAINED = ("lrr", "rigl")


def trained_configs(tier: Tier) -> list[tuple[dict, TrainConfig]]:
    """The ``budget`` runs whose final masks are read: LRR and RigL (1×) at the settings' sparsities."""
    s = tier.group_settings("keep_ratios", "keep-ratios")
    return [
        (lab, cfg)
        for lab, cfg in budget_configs(tier)
        if lab["method"] in TRAINED and lab["budget"] == 1 and lab["sparsity"] in s.sparsities
    ]


def keep_ratios(mask: dict) -> dict[str, float]:
    """``{layer: kept / total}`` of a mask (name → 0/1 tensor), in the mask's order."""
    return {name: float(m.float().mean()) for name, m in mask.items()}


def initial_masks(tier: Tier) -> list[tuple[dict, dict]]:
    """``(labels, mask)`` of every method pruned at initialisation and every rule, per sparsity and seed."""
    s = tier.keep_ratios
    data = load_data(tier.base.data)
    device = resolve_device(tier.base.device)
    masks = {
        **{m: MaskConfig(method=m) for m in s.methods},
        **{name: MaskConfig(method="random", distribution=d) for name, d in RULES.items()},
    }
    out = []
    with tempfile.TemporaryDirectory() as scratch:  # the trainer needs a folder; nothing is written
        for sparsity in s.sparsities:
            for seed in tier.seeds:
                for method, mask in masks.items():
                    cfg = replace(tier.base, seed=seed, mask=replace(mask, sparsity=sparsity))
                    tr = Trainer(cfg, Path(scratch), data, device, quiet=True)
                    made = initial_mask(tr, tr.fresh_model(), sparsity, data)
                    out.append(({"method": method, "sparsity": sparsity, "seed": seed}, made))
    return out


def layer_table(masks: list[tuple[dict, dict]]) -> pd.DataFrame:
    """One row per (method, sparsity, seed, layer): ``layer``, ``index`` (order in the network),
    ``keep_ratio`` and ``smart_ratio`` (the smart-ratio mask's keep ratio of that layer, same sparsity)."""
    rows = []
    for labels, mask in masks:
        for index, (layer, ratio) in enumerate(keep_ratios(mask).items()):
            rows.append({**labels, "layer": layer, "index": index, "keep_ratio": ratio})
    table = pd.DataFrame(rows)
    smart = table[table["method"] == "smart ratio"].groupby(["sparsity", "layer"])["keep_ratio"].mean()
    table["smart_ratio"] = [
        smart.get((s, layer), np.nan) for s, layer in zip(table["sparsity"], table["layer"], strict=True)
    ]
    return table


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per (method, sparsity, seed): ``spearman`` (rank correlation of the per-layer keep ratios with the
    smart ratios; NaN when either is constant) and ``mean_abs_diff``."""
    rows = []
    for (method, sparsity, seed), df in table.groupby(["method", "sparsity", "seed"]):
        a, b = df["keep_ratio"].to_numpy(), df["smart_ratio"].to_numpy()
        constant = np.ptp(a) == 0 or np.ptp(b) == 0
        rho = np.nan if constant else float(stats.spearmanr(a, b).statistic)
        rows.append(
            {
                "method": method,
                "sparsity": sparsity,
                "seed": int(seed),
                "spearman": rho,
                "mean_abs_diff": float(np.abs(a - b).mean()),
            }
        )
    return pd.DataFrame(rows)


def run_keep_ratios(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """The masks of :func:`initial_masks` and the final masks of :func:`trained_configs` (trained or read
    back). ``table``: :func:`agreement`; ``tables["layers"]``: :func:`layer_table`. ``summary``:
    ``spearman`` and ``mean_abs_diff`` (``"<sparsity>/<method>"`` → [mean, std] over seeds)."""
    trained = trained_configs(tier)
    runs = train_all([cfg for _, cfg in trained], runs_dir, quiet=quiet)
    finals = [
        (
            {"method": lab["method"], "sparsity": lab["sparsity"], "seed": cfg.seed},
            read_checkpoint(run.checkpoint())["mask"],
        )
        for (lab, cfg), run in zip(trained, runs, strict=True)
    ]
    layers = layer_table(initial_masks(tier) + finals)
    table = agreement(layers)
    others = table[table["method"] != "smart ratio"]
    summary = {
        "seeds": len(tier.seeds),
        "spearman": {
            f"{s}/{m}": [float(df["spearman"].mean()), float(df["spearman"].std())]
            for (s, m), df in others.groupby(["sparsity", "method"])
        },
        "mean_abs_diff": {
            f"{s}/{m}": [float(df["mean_abs_diff"].mean()), float(df["mean_abs_diff"].std())]
            for (s, m), df in others.groupby(["sparsity", "method"])
        },
    }
    return ExperimentResult(table=table, summary=summary, tables={"layers": layers})
