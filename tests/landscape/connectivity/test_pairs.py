"""Barriers between runs (``analyze --align``): the same numbers as interpolating the final checkpoints
by hand, cached, and merged into the run analysis."""

import dataclasses

import numpy as np
import pytest

import landscape
from landscape.connectivity.pairs import compare_runs, final_checkpoint
from tests.helpers import tiny_config
from tests.landscape.test_cli import run_cli
from training.config import DataConfig
from training.data import load_data
from training.errors import UserError


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from training.run import train

    out = tmp_path_factory.mktemp("pairs")
    return [train(dataclasses.replace(tiny_config(), seed=s), out, quiet=True).run_dir for s in (3, 4, 5)]


def test_compare_runs_matches_interpolating_the_final_checkpoints(runs):
    ds = compare_runs(runs[:2], align=("none", "weight-matching"), points=5, splits=("train", "test"))
    assert dict(ds.sizes) == {"pair": 1, "align": 2, "split": 2, "alpha": 5}
    assert ds["run_a"].values.tolist() == [runs[0].name] and ds["run_b"].values.tolist() == [runs[1].name]
    a, b = final_checkpoint(runs[0]), final_checkpoint(runs[1])
    assert a.name == "cycle_2.pt"
    bundle = load_data(DataConfig(name="mnist1d"))
    data = {s: bundle.eval_loader(s, 1000) for s in ("train", "test")}
    for method in ("none", "weight-matching"):
        ref = landscape.interpolate(a, b, data, points=5, bn_data=bundle.eval_loader("train", 1000), align=method)
        sel = ds.sel(pair=0, align=method)
        np.testing.assert_allclose(sel["pair_error"].values, ref["error"].values)
        np.testing.assert_allclose(sel["pair_loss_barrier_chord"].values, ref["loss_barrier_chord"].values)
        assert np.array_equal(sel["pair_connected"].values, ref["connected"].values)
    wm = ds.sel(pair=0, align="weight-matching")
    assert float(wm["pair_align_cost_after"]) < float(wm["pair_align_cost_before"])
    assert np.isnan(float(ds.sel(pair=0, align="none")["pair_align_cost_after"]))
    cached = sorted(p.name for p in (runs[0] / "analysis").glob("pair-*.nc"))
    assert len(cached) == 2
    again = compare_runs(runs[:2], align=("none", "weight-matching"), points=5, splits=("train", "test"))
    assert again.identical(ds)


def test_pair_modes_and_errors(runs):
    assert compare_runs(runs, align=("none",), points=3).sizes["pair"] == 3
    consecutive = compare_runs(runs, align=("none",), points=3, pairs="consecutive")
    assert consecutive["run_b"].values.tolist() == [runs[1].name, runs[2].name]
    with pytest.raises(UserError, match="pairs must be one of all, consecutive"):
        compare_runs(runs, pairs="some")
    with pytest.raises(UserError, match="align must be one of"):
        compare_runs(runs, align=("magic",))
    with pytest.raises(UserError, match="at least two run folders"):
        compare_runs(runs[:1])


def test_analyze_command_with_align(tmp_path, runs, capsys):
    out = tmp_path / "all.nc"
    code, stdout, err = run_cli(
        ["analyze", str(runs[0]), str(runs[1]), "--align", "weight-matching", "--points", "3", "--no-signs",
         "--samples", "300", "--out", str(out), "--quiet", "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "barriers between the runs' final checkpoints" in stdout and "weight-matching" in stdout
    ds = landscape.load_dataset(out)
    assert {"lmc_error", "pair_error_barrier", "pair_connected"} <= set(ds.data_vars)
    assert ds["align"].values.tolist() == ["none", "weight-matching"]
