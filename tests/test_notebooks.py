"""Execute every figure notebook top to bottom in the quick tier (MNIST-1D) and check what it writes:
each PNG has a PDF twin, and ``0N_summary.json`` holds the expected keys with finite values in range.

Runs are named by config hash and shared by all notebooks (and all pytest-xdist workers) through one
folder of the session; training takes a lock per run folder, so concurrent notebooks never train
the same run twice.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from landscape.experiments import get_tier

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
QUICK = get_tier("quick")
SEEDS = len(QUICK.seeds)
TOL = 1e-9  # a barrier is max − mean of the endpoints, hence ≥ 0 up to rounding

FIGURES = {
    "00_schedules": {"schedules"},
    "01_cyclic_vs_one_cycle": {"01_cyclic_vs_one_cycle"},
    "02_lmc_and_sharpness_across_cycles": {"02_lmc_and_sharpness"},
    "03_mask_init_coupling": {"03_mask_init_coupling"},
    "04_sculpting": {"04_sculpting", "04_accuracy_vs_flops", "04_budget_accuracy_vs_flops"},
    "05_sanity_checks_random_tickets": {"05_sanity_checks", "05_keep_ratios"},
    "06_loss_surfaces": {"06_surface_cyclic", "06_surface_one-cycle", "06_surface_plane"},
    "07_alignment_and_curves": {"07_alignment_and_curves", "07_paths_two_seeds"},
    "08_your_own_models": {"08_your_own_models"},
}


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # each worker has its own basetemp below the session's folder
    path = base / "notebook-runs"
    path.mkdir(exist_ok=True)
    return path


# ------------------------------------------------------------------------------------- value checks


def finite(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fraction(x) -> bool:
    """An accuracy, error or fraction of weights."""
    return finite(x) and 0.0 <= x <= 1.0


def mean_std_of(check):
    """A ``[mean, std]`` pair over seeds: the mean passes ``check``, the std is a finite non-negative number."""

    def ok(v) -> bool:
        return isinstance(v, list) and len(v) == 2 and check(v[0]) and finite(v[1]) and v[1] >= 0.0

    return ok


def difference(x) -> bool:
    return finite(x) and -1.0 <= x <= 1.0


def seed_fraction(x) -> bool:
    """A fraction of the seeds: a multiple of 1/seeds in [0, 1]."""
    return fraction(x) and abs(x * SEEDS - round(x * SEEDS)) < 1e-9


def error_barrier(x) -> bool:
    return finite(x) and -TOL <= x <= 1.0


def loss_barrier(x) -> bool:
    return finite(x) and x >= -TOL


def non_negative(x) -> bool:
    return finite(x) and x >= 0.0


def check_summary(summary: dict, expected: dict, where: str = "") -> None:
    """``expected`` maps every key to a nested dict, a predicate or an exact value."""
    assert set(summary) == set(expected), f"{where}: keys {sorted(summary)} != {sorted(expected)}"
    for key, want in expected.items():
        got = summary[key]
        if isinstance(want, dict):
            check_summary(got, want, f"{where}/{key}")
        elif callable(want):
            assert want(got), f"{where}/{key} = {got!r} out of range"
        else:
            assert got == want, f"{where}/{key} = {got!r}, expected {want!r}"


def each(keys, check) -> dict:
    return dict.fromkeys(keys, check)


METHODS_AT = [f"{m}@{s}" for m in ("random", "snip", "synflow") for s in (0.5, 0.9, 0.98)]
PAIRS = ["1→2", "2→3", "3→4", "cyclic→one-cycle"]
BARRIER_STATS = {
    "error_barrier_test_mean": error_barrier,
    "error_barrier_test_std": non_negative,
    "loss_barrier_test_mean": loss_barrier,
    "loss_barrier_test_std": non_negative,
}
COUPLING = [f"{i}/{s}" for i in ("random", "random-signs", "warmup", "warmup-signs") for s in ("cyclic", "one-cycle")]
SCULPT = [
    f"{t}/{m}" for t in (0.9, 0.95) for m in ("cyclic PaI", "lrr", "sculpt s0=0.2", "sculpt s0=0.5", "sculpt s0=0.7")
]
CHECKS = ["half-data", "original", "random-labels", "random-pixels", "rearrange", "shuffle-weights"]
TICKETS = ["grasp", "hybrid", "lrr", "smart-ratio random", "snip", "uniform random"]
SURFACE = {"centre_loss": non_negative, "max_loss": non_negative}
PATHS_07 = [
    f"{kind}/{path}"
    for kind in ("consecutive cycles", "cyclic→one-cycle", "two seeds")
    for path in ("straight", "weight matching", "activation matching", "Bezier curve")
]


# Epochs per run, fixed by the configs: SCULPT-ing and cyclic PaI train 4 cycles of 3 epochs; LRR
# halves the density per level of 3 epochs: 5 levels to 90% (1, ½, ¼, ⅛, 0.1), 6 to 95%.
SCULPT_EPOCHS = {key: 15.0 if key == "0.9/lrr" else 18.0 if key == "0.95/lrr" else 12.0 for key in SCULPT}


SUMMARIES = {
    "01_cyclic_vs_one_cycle": {
        "cyclic_minus_one_cycle_accuracy": each(METHODS_AT, mean_std_of(difference)),
        "fraction_cyclic_lower_train_loss": each(METHODS_AT, seed_fraction),
        "seeds": SEEDS,
        "C": QUICK.cyclic.cycles,
        "E": QUICK.cyclic.epochs,
    },
    "02_lmc_and_sharpness_across_cycles": {
        "barriers": each(PAIRS, BARRIER_STATS),
        "sign_flips": each(PAIRS, fraction),
        "lambda_max": each([f"cycle {c} {w}" for c in range(1, 5) for w in ("start", "end")], finite),
        "seeds": SEEDS,
    },
    "03_mask_init_coupling": {
        "lrr_accuracy": fraction,
        "sparsity": QUICK.coupling.sparsity,
        "seeds": SEEDS,
        "accuracy": each(COUPLING, mean_std_of(fraction)),
    },
    "04_sculpting": {
        "seeds": SEEDS,
        "accuracy": each(SCULPT, mean_std_of(fraction)),
        "cost": each(SCULPT, lambda x: finite(x) and x > 0.0),  # at most the epochs: check_relations
        "train_flops": each(SCULPT, lambda x: finite(x) and x > 0.0),
        "epochs": SCULPT_EPOCHS,
    },
    "05_sanity_checks_random_tickets": {
        "sparsity": QUICK.sanity.sparsity,
        "seeds": len(QUICK.sanity_seeds),
        "checks": each([f"{m}/{c}" for m in ("grasp", "lrr", "lt", "snip") for c in CHECKS], fraction),
        "tickets": each(TICKETS, mean_std_of(fraction)),
    },
    "06_loss_surfaces": {
        "cyclic": SURFACE,
        "one-cycle": SURFACE,
        "plane": {"min_loss": non_negative, "max_loss": non_negative},
    },
    "07_alignment_and_curves": {
        "barriers": each(PATHS_07, BARRIER_STATS),
        "connected": each(PATHS_07, fraction),
        "seeds": SEEDS,
        "curve_epochs": QUICK.connectivity.epochs,
    },
    "08_your_own_models": {
        "barriers": each(
            ["recalibrated", "stored BN statistics", "weight matching"],
            {"error_barrier": error_barrier, "loss_barrier": loss_barrier},
        ),
        "density": lambda x: finite(x) and abs(x - 0.1) < 1e-3,  # pruned to 90% by global magnitude
        "lambda_max_pruned": lambda x: finite(x) and x > 0.0,
        "epochs": 2,
    },
}


def check_relations(name: str, summary: dict) -> None:
    """Relations every correct summary satisfies, beyond the ranges."""
    if name == "04_sculpting":
        for key, cost in summary["cost"].items():
            assert cost <= summary["epochs"][key] + 1e-9  # no epoch costs more than a dense one
        units = [flops / summary["cost"][key] for key, flops in summary["train_flops"].items()]
        assert max(units) == pytest.approx(min(units))  # one dense epoch's FLOPs: the same model and data
    if name == "06_loss_surfaces":
        for surface in ("cyclic", "one-cycle"):
            assert summary[surface]["centre_loss"] <= summary[surface]["max_loss"]
        assert summary["plane"]["min_loss"] <= summary["plane"]["max_loss"]


# ----------------------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_writes_its_numbers(path, tmp_path, shared_runs, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_FIGURES", str(tmp_path))
    monkeypatch.setenv("LANDSCAPE_RUNS", str(shared_runs))
    monkeypatch.setenv("LANDSCAPE_TIER", "quick")
    monkeypatch.delenv("LANDSCAPE_FULL", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    pngs = {f.stem for f in tmp_path.glob("*.png")}
    assert pngs == FIGURES[path.stem]
    assert {f.stem for f in tmp_path.glob("*.pdf")} == pngs  # every PNG has its PDF twin
    assert all((tmp_path / f"{stem}.png").stat().st_size > 5_000 for stem in pngs)
    summaries = sorted(tmp_path.glob("*_summary.json"))
    if path.stem not in SUMMARIES:
        assert not summaries
        return
    assert [s.name for s in summaries] == [f"{path.stem[:2]}_summary.json"]
    summary = json.loads(summaries[0].read_text())  # the numbers REPRODUCTION.md quotes
    check_summary(summary, SUMMARIES[path.stem], path.stem[:2])
    check_relations(path.stem, summary)


def test_every_notebook_is_covered_and_thin():
    """Every notebook has its expected figures, and its code is library calls: no definitions, no loops."""
    assert {p.stem for p in NOTEBOOKS} == set(FIGURES)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: outputs not cleared"
            for line in cell.source.splitlines():
                words = line.strip().split()
                assert not words or words[0] not in ("def", "class", "for", "while", "lambda"), f"{path.name}: {line}"
                assert "plt." not in line and "sns." not in line, f"{path.name}: figure built inline: {line}"
