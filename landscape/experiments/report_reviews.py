"""The generated sections of ``REPRODUCTION.md`` Part 2 for the groups added for the reviewers: the
numbers behind each group's claims, from the summaries in their ``<group>-claims.json`` files (the
claims themselves are in the main claims table)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

FIGURES = "figures/medium"


def _pm(pair: Any, factor: float = 100.0, spec: str = ".2f") -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or pair[0] is None:
        return "—"
    sd = pair[1] if pair[1] is not None and math.isfinite(pair[1]) else math.nan
    return f"{pair[0] * factor:{spec}} ± {sd * factor:{spec}}"


def _split(key: str) -> tuple[str, ...]:
    return tuple(key.split("/"))


def budget_section(payload: Mapping[str, Any]) -> list[str]:
    """Per sparsity and arm: accuracy (mean ± sd over seeds, %), training FLOPs and dense epochs (means)."""
    s = payload.get("summary", {})
    lines = [
        f"Arms at their reference budgets (T = {s.get('T', '?')} epochs); RigL's budget nearest SCULPT's FLOPs: "
        + ", ".join(f"{k}: {v}×" for k, v in s.get("nearest_rigl_budget", {}).items()),
        "",
        "| sparsity | arm | accuracy (%) | training FLOPs | FLOPs in dense epochs |",
        "|---|---|---|---|---|",
    ]
    for key, acc in s.get("accuracy", {}).items():
        sparsity, arm = _split(key)
        flops, dense = s.get("train_flops", {}).get(key), s.get("dense_epochs", {}).get(key)
        flop_text = f"{flops:.3e}" if isinstance(flops, float) else "—"
        dense_text = f"{dense:.1f}" if isinstance(dense, float) else "—"
        lines.append(f"| {float(sparsity):.0%} | {arm} | {_pm(acc)} | {flop_text} | {dense_text} |")
    lines += ["", f"![accuracy against training FLOPs]({FIGURES}/budget-accuracy-vs-flops.png)"]
    return lines


def boost_section(payload: Mapping[str, Any]) -> list[str]:
    """Per sparsity: the mean boost ± sd (pp), and the seed-level slope."""
    s = payload.get("summary", {})
    lines = ["| sparsity | cyclic − ordinary (pp, mean ± sd over seeds) |", "|---|---|"]
    lines += [f"| {float(k):.0%} | {_pm(v)} |" for k, v in s.get("boost", {}).items()]
    lines += [
        "",
        f"Seed-level slope on {s.get('scale', 'x')}: {_pm(s.get('slope'))} pp per decade of density.",
        "",
        f"![the boost against sparsity]({FIGURES}/boost-vs-sparsity-boost.png)",
    ]
    return lines


def sharpness_section(payload: Mapping[str, Any]) -> list[str]:
    """λ_max per method, arm and subspace, and the Hutch++ trace on the mask subspace (means ± sd)."""
    s = payload.get("summary", {})
    lines = [
        f"On the first {s.get('samples', '?')} training samples (eval mode):",
        "",
        "| mask | arm | where | λ_max (mean ± sd) |",
        "|---|---|---|---|",
    ]
    for key, pair in s.get("lambda_max", {}).items():
        method, arm, where = _split(key)
        place = "all parameters" if where.endswith("_all") else "mask subspace"
        lines.append(f"| {method} | {arm} | {place} | {_pm(pair, 1.0, '.2f')} |")
    lines += ["", "| mask | arm | Hutch++ trace, mask subspace (mean ± sd) |", "|---|---|---|"]
    for key, pair in s.get("trace_mask", {}).items():
        method, arm = _split(key)
        lines.append(f"| {method} | {arm} | {_pm(pair, 1.0, '.1f')} |")
    return lines


def coupling_ordinary_section(payload: Mapping[str, Any]) -> list[str]:
    """Accuracy per initialisation and schedule, and the LRR tickets'."""
    s = payload.get("summary", {})
    lines = ["| initialisation / schedule | accuracy (%) |", "|---|---|"]
    lines += [f"| {k} | {_pm(v)} |" for k, v in s.get("accuracy", {}).items()]
    if isinstance(s.get("lrr_accuracy"), float):
        lines += ["", f"LRR tickets (the masks' own runs): {100 * s['lrr_accuracy']:.2f}% on average."]
    return lines


def keep_ratio_section(payload: Mapping[str, Any]) -> list[str]:
    """Per sparsity and method: Spearman correlation with smart ratios and mean absolute difference."""
    s = payload.get("summary", {})
    lines = [
        "| sparsity | method | Spearman ρ with smart ratios (mean ± sd) | mean abs. keep-ratio difference |",
        "|---|---|---|---|",
    ]
    for key, rho in s.get("spearman", {}).items():
        sparsity, method = _split(key)
        diff = s.get("mean_abs_diff", {}).get(key)
        lines.append(f"| {float(sparsity):.0%} | {method} | {_pm(rho, 1.0, '.3f')} | {_pm(diff, 1.0, '.4f')} |")
    lines += ["", f"![keep ratios per layer]({FIGURES}/keep-ratios-layers.png)"]
    return lines


def architecture_section(payload: Mapping[str, Any]) -> list[str]:
    """Per model, arm and mask method: accuracy (mean ± sd, %), the final training-set loss (nats, mean ±
    sd), the epochs trained and the training FLOPs (means)."""
    s = payload.get("summary", {})
    lines = [
        "| model | arm | mask | accuracy (%) | final training-set loss (nats) | epochs | training FLOPs |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, pair in s.get("accuracy", {}).items():
        model, arm, method = _split(key)
        loss = _pm(s.get("train_set_loss", {}).get(key), 1.0, ".3f")
        epochs, flops = s.get("epochs", {}).get(key), s.get("train_flops", {}).get(key)
        epoch_text = f"{epochs[0]:.0f}" if isinstance(epochs, list) and epochs[0] is not None else "—"
        flop_text = f"{flops[0]:.3e}" if isinstance(flops, list) and flops[0] is not None else "—"
        lines.append(f"| {model} | {arm} | {method} | {_pm(pair)} | {loss} | {epoch_text} | {flop_text} |")
    return lines


SECTIONS = {
    "budget": ("Budget: accuracy and training FLOPs per arm (MNIST-1D)", budget_section),
    "boost-vs-sparsity": ("Boost against sparsity (random ERK)", boost_section),
    "sharpness": ("Sharpness of cyclic and one-cycle solutions", sharpness_section),
    "coupling-ordinary": ("The LRR mask under one-cycle and cyclic training", coupling_ordinary_section),
    "keep-ratios": ("Keep ratios against smart ratios (descriptive)", keep_ratio_section),
    "architectures": ("Beyond ResNets: ViT and MobileNetV2 (Fashion-MNIST)", architecture_section),
}


def review_sections(medium: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The markdown lines of every review group with medium results, in :data:`SECTIONS` order."""
    lines: list[str] = []
    for group, (title, section) in SECTIONS.items():
        if group in medium:
            lines += ["", f"### {title}", "", *section(medium[group])]
    return lines
