"""The notebooks' experiment library: tiers, the quick tier's runs, tables, cost, summaries and outputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from landscape import experiments
from landscape.experiments.connectivity import connectivity_summary, eigenvalue_table
from landscape.experiments.cyclic import cyclic_summary
from training.errors import UserError
from training.run import RunResult


def test_tier_from_env():
    assert experiments.tier_from_env({}).name == "quick"
    assert experiments.tier_from_env({"LANDSCAPE_FULL": "1"}).name == "full"  # the earlier switch
    assert experiments.tier_from_env({"LANDSCAPE_TIER": "quick", "LANDSCAPE_FULL": "1"}).name == "quick"
    full = experiments.tier_from_env({"LANDSCAPE_TIER": "full", "LANDSCAPE_DATA_ROOT": "/datasets"})
    assert full.base.data.root == "/datasets" and full.base.data.name == "cifar10"
    assert experiments.tier_from_env({"LANDSCAPE_TIER": "full"}).base.data.root == "/data"
    quick = experiments.tier_from_env({"LANDSCAPE_DATA_ROOT": "/datasets"})
    assert quick.base.data.root is None  # MNIST-1D is generated, not read from a folder
    assert experiments.tier_from_env({"LANDSCAPE_TIER": "medium"}).base.model.name == "resnet20_1d"
    images = experiments.tier_from_env({"LANDSCAPE_TIER": "medium-images", "LANDSCAPE_DATA_ROOT": "/fm"})
    assert images.base.data.name == "fashion-mnist" and images.base.data.root == "/fm"
    with pytest.raises(UserError, match="LANDSCAPE_TIER='huge' is not a tier"):
        experiments.tier_from_env({"LANDSCAPE_TIER": "huge"})
    with pytest.raises(UserError, match="unknown tier name"):
        experiments.get_tier("huge")


def test_data_root_never_changes_a_run_name():
    full = experiments.get_tier("full")
    moved = experiments.get_tier("full", data_root="/elsewhere")
    assert [c.run_name for c in experiments.cyclic_configs(full)] == [
        c.run_name for c in experiments.cyclic_configs(moved)
    ]


def _digest(names) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


# The run names of the notebooks' inline configs before they moved into landscape.experiments (checked
# run by run against the folders those notebooks wrote). Notebook 03's coupling runs name the LRR ticket
# by its path below the runs folder, here ../runs/notebooks, and that path enters their hash.
PINNED = {
    "01": "5fc5d0710b01b936",
    "02": "c5552b17a3262c45",
    "03": "c2aa7a8ca6a92240",
    "04": "f1b42bd9fd5b5133",
    "05": "be3a779d36a55c71",
    "06": "57ae7278b00dae09",
}


def test_quick_tier_trains_the_runs_the_notebooks_trained_before():
    """The quick tier's configs hash to the same run folders as the notebooks' inline settings did
    before they moved here (127 runs, digests of their sorted names), so their numbers are unchanged."""
    tier = experiments.get_tier("quick")
    lrr = experiments.lrr_config(tier)
    stages = [{"dir": f"level_{k}", "level": k, "cycles": 1} for k in range(5)]  # LRR from 0 to 90% by halves
    lrr_run = RunResult(Path("../runs/notebooks") / lrr.run_name, lrr, xr.Dataset(), stages)
    cyclic, one = experiments.connectivity_configs(tier)
    names = {
        "01": [c.run_name for c in experiments.cyclic_configs(tier)],
        "02": [c.run_name for c in cyclic + one],
        "03": [lrr.run_name] + [c.run_name for c in experiments.coupling_configs(tier, lrr_run)],
        "04": [c.run_name for _, c in experiments.sculpting_configs(tier)],
        "05": [c.run_name for _, c in experiments.check_configs(tier) + experiments.ticket_configs(tier)],
        "06": [c.run_name for c in experiments.surface_configs(tier)],
    }
    assert {k: len(v) for k, v in names.items()} == {"01": 36, "02": 4, "03": 17, "04": 20, "05": 60, "06": 2}
    assert {k: _digest(v) for k, v in names.items()} == PINNED
    assert all(c.save_every == 1 for c in cyclic) and all(c.save_every == 0 for c in one)


def _metrics(test_error, density, level_dim=False):
    dims = ("level", "cycle", "epoch") if level_dim else ("cycle", "epoch")
    arr = np.asarray(test_error, dtype=float)
    return xr.Dataset(
        {
            "test_error": (dims, arr),
            "train_loss": (dims, arr * 2),
            "density": (dims, np.asarray(density, dtype=float)),
        }
    )


def test_final_value_is_last_finite_epoch_of_last_level():
    nan = np.nan
    m = _metrics(
        [[[0.5, 0.4], [0.3, 0.2]], [[0.25, 0.15], [nan, nan]]],
        [[[1.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [nan, nan]]],
        level_dim=True,
    )
    assert experiments.final_value(m, "test_error") == 0.15  # level 1 ran one cycle of the two
    assert experiments.final_value(m, "train_loss") == 0.3
    single = _metrics([[0.5, 0.4], [0.3, nan]], [[1.0, 1.0], [1.0, nan]])
    assert experiments.final_value(single, "test_error") == 0.3
    assert experiments.final_level(m).sizes["cycle"] == 1


def test_training_cost_reads_the_cumulative_flops():
    nan = np.nan
    m = _metrics(
        [[[0.5, 0.4], [0.3, 0.2]], [[0.25, 0.15], [nan, nan]]],
        [[[1.0, 1.0], [1.0, 1.0]], [[0.1, 0.1], [nan, nan]]],
        level_dim=True,
    )
    assert np.isnan(experiments.training_cost(m).train_flops)  # a run made before FLOPs were counted
    unit = 3 * 1000.0 * 50  # 3·f_D per sample, 50 samples per epoch
    flops = np.cumsum([1, 1, 1, 1, 0.25, 0.25]) * unit  # four dense epochs, two at a quarter of the FLOPs
    m["train_flops"] = (("level", "cycle", "epoch"), np.array([*flops, nan, nan]).reshape(2, 2, 2))
    m.attrs.update(dense_forward_flops=1000.0, train_samples_per_epoch=50)
    cost = experiments.training_cost(m)
    assert cost.epochs == 6 and cost.train_flops == flops[-1] and cost.dense_epochs == pytest.approx(4.5)


def test_results_table_rows(tiny_run):
    table = experiments.results_table([tiny_run], ["mask.sparsity", "seed"], labels=[{"arm": "a"}])
    row = table.iloc[0]
    assert list(table.columns[:3]) == ["arm", "mask.sparsity", "seed"]
    assert row["test_error"] == float(tiny_run.metrics["test_error"].values[-1, -1])
    assert row["accuracy"] == pytest.approx(1 - row["test_error"])
    assert row["epochs"] == 4 and 0.19 < row["dense_epochs"] / 4 < 0.21  # 2 × 2 epochs at 80% sparsity
    assert row["train_flops"] == float(tiny_run.metrics["train_flops"].values[-1, -1])
    with pytest.raises(ValueError, match="labels"):
        experiments.results_table([tiny_run], labels=[])


def test_cyclic_summary_pairs_runs_by_seed():
    tier = experiments.get_tier("quick")
    rows = []
    for seed, (cyc, one, loss_c, loss_o) in enumerate([(0.8, 0.7, 0.1, 0.2), (0.6, 0.7, 0.3, 0.2)]):
        for sched, acc, loss in (("cyclic", cyc, loss_c), ("one-cycle", one, loss_o)):
            rows.append(
                {"mask.method": "snip", "mask.sparsity": 0.9, "seed": seed, "arm": sched}
                | {"accuracy": acc, "train_loss": loss}
            )
    summary = cyclic_summary(pd.DataFrame(rows), tier)
    mean, std = summary["cyclic_minus_one_cycle_accuracy"]["snip@0.9"]
    assert mean == pytest.approx(0.0) and std == pytest.approx(np.std([0.1, -0.1], ddof=1))
    assert summary["fraction_cyclic_lower_train_loss"] == {"snip@0.9": 0.5}
    assert (summary["seeds"], summary["C"], summary["E"]) == (2, 4, 3)


def test_eigenvalue_table_marks_cycle_starts_and_ends():
    hessian = xr.Dataset(
        {"eigenvalue": (("run", "point", "k"), np.arange(14, dtype=float).reshape(2, 7, 1))},
        coords={"run": ["a", "b"], "k": [1], "epoch": (("run", "point"), [[0, 1, 2, 3, 4, 5, 6]] * 2)},
    )
    table = eigenvalue_table(hessian, (0, 1), epochs=3)
    assert table["when"].tolist()[:6] == ["start", "", "end", "start", "", "end"]
    assert table["cycle"].tolist()[:6] == [1, 1, 1, 2, 2, 2]
    assert table["lambda_max"].tolist()[:3] == [1.0, 2.0, 3.0]  # init.pt (epoch 0) is left out
    barriers = pd.DataFrame(
        [{"pair": "1→2", "error_barrier_test": b, "loss_barrier_test": 2 * b, "flip_fraction": 0.1} for b in (0, 1)]
    )
    summary = connectivity_summary(barriers, table, 2)
    assert summary["lambda_max"]["cycle 1 start"] == pytest.approx((1.0 + 8.0) / 2)
    assert summary["barriers"]["1→2"]["loss_barrier_test_mean"] == 1.0 and summary["seeds"] == 2


def test_write_summary_is_strict_json(tmp_path):
    path = experiments.write_summary("09", {"a": [1.0, float("nan")], "b": {"c": 2}}, tmp_path)
    assert path == tmp_path / "09_summary.json"
    assert json.loads(path.read_text()) == {"a": [1.0, None], "b": {"c": 2}}


def test_save_figure_writes_png_and_a_reproducible_pdf(tmp_path):
    def figure():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    png, pdf = experiments.save_figure(figure(), "x", tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    first = pdf.read_bytes()
    experiments.save_figure(figure(), "x", tmp_path)
    assert pdf.read_bytes() == first
