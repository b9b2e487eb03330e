"""``landscape reproduce`` end to end on a tiny test-only tier (2 seeds, 1-epoch cycles): the runs are
trained (in this process and in two worker processes), the claims evaluated, and the netCDF file, the
claims JSON and the figures written; a second invocation trains nothing and keeps the first's time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from landscape.cli.main import main
from landscape.connectivity.interpolate import barrier, interpolate
from landscape.experiments.settings import ConnectivitySettings, CyclicSettings
from training.data import load_data


@pytest.fixture
def tiny_tier(hidden_tier):
    """A hidden tier (not in TIERS outside this test): cnn1d of width 4, cycles of one epoch, 2 seeds."""
    return hidden_tier(
        "tiny",
        4,
        cyclic=CyclicSettings(
            cycles=2, epochs=1, sparsities=(0.9,), methods=("random",), extra_arms=("ordinary", "cosine")
        ),
        connectivity=ConnectivitySettings(cycles=2, epochs=1, points=3, hessian_batch_size=64),
    )


def _reproduce(group, tmp_path, *extra):
    args = ["reproduce", group, "--tier", "tiny", "--runs", str(tmp_path / "runs"), "--quiet"]
    args += ["--results", str(tmp_path / "results"), "--figures", str(tmp_path / "figures"), *extra]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0


def test_reproduce_cyclic_writes_results_claims_and_figures(tiny_tier, tmp_path, capsys):
    _reproduce("cyclic", tmp_path, "--jobs", "1")
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / p) for p in ("results/cyclic.nc", "results/cyclic-claims.json")] + [
        str(tmp_path / "figures" / f"cyclic.{fmt}") for fmt in ("png", "pdf")
    ]
    ds = xr.load_dataset(tmp_path / "results" / "cyclic.nc")
    assert ds.sizes["run"] == 8 and sorted(set(ds["arm"].values)) == ["cosine", "cyclic", "one-cycle", "ordinary"]
    assert np.isfinite(ds["train_set_loss"].values).all() and set(ds["epochs"].values) == {1, 2}
    assert ds.sizes["loss_curves_row"] == 2 * 2  # the cyclic runs' epochs: 2 seeds × 2 cycles × 1 epoch
    payload = json.loads((tmp_path / "results" / "cyclic-claims.json").read_text())
    assert payload["tier"] == "tiny" and payload["timing"]["runs_trained"] == 8
    claims = {(c["id"], c["label"]): c for c in payload["claims"]}
    p11 = claims[("P1-1", "random@90%, cyclic vs ordinary")]
    columns = (ds["arm"].values, ds["seed"].values, ds["accuracy"].values)
    acc = {(a, int(s)): float(v) for a, s, v in zip(*columns, strict=True)}
    diffs = [acc[("cyclic", s)] - acc[("ordinary", s)] for s in (0, 1)]
    assert p11["n"] == 2 and p11["effect"] == pytest.approx(np.mean(diffs)) and p11["tested"]
    assert p11["verdict"] in ("reproduces", "contradicts", "inconclusive")
    p13 = claims[("P1-3", "random@90%, cyclic vs one-cycle")]
    assert p13["metric"] == "train_set_loss" and p13["direction"] == -1
    assert not claims[("P1-1", "SNIP@90%, cyclic vs ordinary")]["tested"]  # the tiny tier has no SNIP mask
    assert json.loads(ds.attrs["claims"]) == payload["claims"]
    assert (tmp_path / "figures" / "cyclic.png").stat().st_size > 5_000
    assert payload["timing"]["jobs"] == 1
    # a file written before `jobs` was recorded: reading back with 2 processes must not claim they trained it
    del payload["timing"]["jobs"]
    (tmp_path / "results" / "cyclic-claims.json").write_text(json.dumps(payload))
    _reproduce("cyclic", tmp_path, "--jobs", "2")  # everything is read back
    again = json.loads((tmp_path / "results" / "cyclic-claims.json").read_text())
    assert again["claims"] == payload["claims"] and "jobs" not in again["timing"]
    assert again["timing"]["runs_trained"] == 8 and again["timing"]["wall_time_s"] == payload["timing"]["wall_time_s"]


def test_reproduce_connectivity_in_two_worker_processes(tiny_tier, tmp_path):
    _reproduce("connectivity", tmp_path, "--jobs", "2")
    ds = xr.load_dataset(tmp_path / "results" / "connectivity.nc")
    assert sorted(set(ds["role"].values)) == ["cyclic", "data order"] and ds.sizes["run"] == 4
    kinds = list(ds["barriers.kind"].values)
    assert kinds == ["consecutive cycles"] * 2 + ["independent seeds", "data orders", "data orders"]
    frankle, chord = ds["barriers.error_barrier"].values, ds["barriers.error_barrier_chord"].values
    spread = np.abs(ds["barriers.error_b"].values - ds["barriers.error_a"].values) / 2
    assert (frankle >= 0).all() and (chord >= -1e-12).all() and (np.abs(chord - frankle) <= spread + 1e-12).all()
    assert (ds["barriers.connected"].values == (frankle < 0.02)).all()
    # the data-order row of seed 0 is the path between the two runs' final checkpoints
    columns = (ds["role"].values, ds["seed"].values, ds["run_dir"].values)
    runs = {(r, int(s)): d for r, s, d in zip(*columns, strict=True)}
    data = load_data(tiny_tier.base.data)
    curve = interpolate(
        f"{runs[('cyclic', 0)]}/cycle_2.pt",
        f"{runs[('data order', 0)]}/cycle_2.pt",
        {"test": data.eval_loader("test", 1000)},
        points=3,
        bn_data=data.eval_loader("train", 1000),
    )
    expected = barrier(curve["alpha"].values, curve["error"].sel(split="test").values)
    assert frankle[kinds.index("data orders")] == pytest.approx(expected, abs=1e-12)
    payload = json.loads((tmp_path / "results" / "connectivity-claims.json").read_text())
    assert [c["label"] for c in payload["claims"]] == ["Frankle et al.'s barrier", "chord barrier"]
    assert payload["claims"][0]["n"] == 2 and payload["claims"][0]["mean_b"] == 0.0
    assert payload["summary"]["kinds"]["data orders"]["pairs"] == 2


def test_reproduce_refuses_unknown_groups_and_tiers_without_images(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "everything", "--results", str(tmp_path)])
    assert exit_info.value.code == 2 and "unknown claim group 'everything'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "images", "--tier", "quick", "--results", str(tmp_path)])
    assert exit_info.value.code == 2 and "has no images tier" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
