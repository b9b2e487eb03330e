"""Batch analysis: tidy merge, values equal to direct calls, caching, diverged runs, path safety."""

import json

import numpy as np
import pytest
import xarray as xr

import landscape
from landscape.analysis import analyze, run_points
from landscape.overlap import overlap
from tests.helpers import tiny_config
from training.config import OptimConfig, replace_dotted
from training.errors import DivergedError, UserError
from training.run import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    out = tmp_path_factory.mktemp("batch")
    lrr = train(
        replace_dotted(
            tiny_config(),
            {
                "recipe.name": "lrr",
                "mask.method": "none",
                "mask.sparsity": 0.5,
                "recipe.prune_fraction": 0.5,
                "schedule.name": "one-cycle",
                "schedule.cycles": 1,
                "schedule.epochs": 1,
                "recipe.rewind_epoch": 1,
            },
        ),
        out,
        quiet=True,
    )
    return [tiny_run.run_dir, lrr.run_dir]


def test_points_follow_levels_and_cycles(runs):
    pts, status = run_points(runs[1])
    assert status == "complete"
    assert [(p.level, p.cycle) for p in pts] == [(0, 0), (0, 1), (1, 1)]
    assert pts[-1].sparsity == pytest.approx(0.5, abs=1e-3)


def test_analyze_merges_runs_and_matches_direct_calls(runs, tmp_path):
    ds = analyze(runs, lmc="consecutive", hessian_k=2, points=3, splits=("test",))
    assert ds.sizes["run"] == 2 and ds.sizes["point"] == 3
    assert ds["recipe"].values.tolist() == ["pai", "lrr"] and ds["status"].values.tolist() == ["complete"] * 2
    assert ds["level"].sel(run=runs[1].name).values.tolist() == [0, 0, 1]
    assert np.isnan(ds["error_barrier"].isel(point=0)).all()
    # LMC piece equals a direct interpolate call
    from training.config import DataConfig
    from training.data import load_data

    bundle = load_data(DataConfig(name="mnist1d"))
    direct = landscape.interpolate(
        runs[0] / "cycle_1.pt",
        runs[0] / "cycle_2.pt",
        {"test": bundle.eval_loader("test", 1000)},
        points=3,
        bn_data=bundle.eval_loader("train", 1000),
    )
    got = ds["error_barrier"].sel(run=runs[0].name, split="test").isel(point=2)
    assert float(got) == pytest.approx(float(direct["error_barrier"].sel(split="test")), abs=1e-12)
    flips = overlap(runs[1] / "level_0" / "cycle_1.pt", runs[1] / "level_1" / "cycle_1.pt")
    assert float(ds["flip_vs_prev"].sel(run=runs[1].name).isel(point=2)) == float(flips["flip_fraction_total"])
    assert ds["eigenvalue"].dims == ("run", "point", "k") and np.isfinite(ds["eigenvalue"]).all()
    assert (ds["eigenvalue"].isel(k=0) >= ds["eigenvalue"].isel(k=1)).all()
    assert float(ds["test_error"].sel(run=runs[0].name).isel(point=2)) < 0.9
    landscape.save_dataset(ds, tmp_path / "results.nc")
    assert landscape.load_dataset(tmp_path / "results.nc").identical(ds)


def test_rerun_only_computes_new_work(runs):
    first = analyze(runs, hessian_k=1, points=3)
    again = analyze(runs, hessian_k=1, points=3)
    assert again.attrs["cache_misses"] == 0 and again.attrs["cache_hits"] > 0
    xr.testing.assert_identical(first.drop_attrs(), again.drop_attrs())
    other = analyze(runs, hessian_k=1, points=5)  # a new option computes only the LMC pieces again
    assert 0 < other.attrs["cache_misses"] < other.attrs["cache_hits"] + other.attrs["cache_misses"]


def test_diverged_runs_are_reported(runs, tmp_path):
    cfg = replace_dotted(tiny_config(optim=OptimConfig(lr=1e8)), {"schedule.cycles": 2})
    with pytest.raises(DivergedError):
        train(cfg, tmp_path, quiet=True)
    ds = analyze([runs[0], tmp_path / cfg.run_name], lmc="init", signs=True, points=3)
    assert ds["status"].values.tolist() == ["complete", "diverged"]
    assert int((ds["level"].sel(run=cfg.run_name) >= 0).sum()) == 1  # only init.pt exists


def test_manifest_paths_cannot_escape(tmp_path, runs):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"][0]["path"] = "../../etc/passwd"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="leaves the run folder"):
        analyze([run])
    manifest["checkpoints"][0]["path"] = "/etc/passwd"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="leaves the run folder"):
        analyze([run])


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="run folder not found"):
        analyze([tmp_path / "nope"])
    with pytest.raises(UserError, match="not a run folder"):
        analyze([tmp_path])
    with pytest.raises(UserError, match="unknown --lmc mode"):
        analyze([tmp_path], lmc="all")


def test_epoch_checkpoints_as_points(tmp_path):
    """checkpoints="epochs": init.pt then every epoch_<n>.pt in order, each with its own epoch's metrics;
    the Hessian at a point equals a direct call on that file."""
    run = train(tiny_config(save_every=1), tmp_path, quiet=True)
    pts, _ = run_points(run.run_dir, "epochs")
    assert [(p.path.name, p.cycle, p.epoch) for p in pts] == [
        ("init.pt", 0, 0),
        ("epoch_1.pt", 0, 1),
        ("epoch_2.pt", 1, 2),
        ("epoch_3.pt", 1, 3),
        ("epoch_4.pt", 2, 4),
    ]
    from landscape.hessian.sequence import HessianOptions

    # cold starts, so that each point equals a direct call (warm starts agree within the tolerance only)
    cold = HessianOptions(warm_start=False)
    ds = analyze(
        [run.run_dir], lmc="none", signs=False, hessian_k=1, hessian_batch_size=64, checkpoints="epochs", hessian=cold
    )
    sel = ds.isel(run=0)
    assert sel["epoch"].values.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(sel["test_error"].values[1:], run.metrics["test_error"].values.ravel())
    assert np.isnan(sel["test_error"].values[0])
    from training.data import load_data

    batch = [next(iter(load_data(run.config.data).eval_loader("train", 64)))]
    direct = landscape.hessian_eigenvalues(run.run_dir / "epoch_1.pt", batch, k=1)
    assert float(sel["eigenvalue"].isel(point=1, k=0)) == pytest.approx(float(direct["eigenvalue"][0]), rel=1e-6)
    cycles = analyze([run.run_dir], lmc="none", signs=False)  # the default still takes the cycle checkpoints
    assert cycles["epoch"].isel(run=0).values.tolist() == [0, 2, 4]
    with pytest.raises(UserError, match="unknown checkpoints"):
        run_points(run.run_dir, "levels")


def test_foreign_or_truncated_cache_files_are_recomputed(runs, tmp_path):
    """The audit: a foreign netCDF in a run's analysis/ folder exited 1 (a truncated one was already
    recomputed). Every cache file now carries its piece's kind and key; any other file is recomputed."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs[0], run, ignore=shutil.ignore_patterns("analysis", ".lock"))
    first = analyze([run], hessian_k=1, points=3)
    cached = sorted((run / "analysis").glob("*.nc"))
    assert cached and all(xr.load_dataset(p).attrs["analysis_piece"] == p.name.split("-")[0] for p in cached)
    for damage in ("truncate", "foreign"):
        for path in cached:
            if damage == "truncate":
                path.write_bytes(path.read_bytes()[:100])
            else:
                xr.Dataset({"x": ("i", [1.0, 2.0])}, attrs={"title": "someone else's"}).to_netcdf(path)
        again = analyze([run], hessian_k=1, points=3)
        counts = [(ds.attrs["cache_hits"], ds.attrs["cache_misses"]) for ds in (first, again)]
        assert counts[0] == counts[1], counts  # every piece computed again, as the first time
        xr.testing.assert_identical(first.drop_attrs().drop_vars("run_dir"), again.drop_attrs().drop_vars("run_dir"))


def test_a_diagonal_across_architectures_is_refused_before_any_work(runs, tmp_path):
    """The audit: ``analyze --trace --diag`` over runs of two architectures computed every piece, then
    failed merging them (exit 1). It is now refused first, as ``--align`` is."""
    from training.config import ModelConfig

    mlp = train(tiny_config(model=ModelConfig(name="mlp", width=16)), tmp_path, quiet=True).run_dir
    from landscape.hessian.sequence import HessianOptions

    curvature = HessianOptions(trace="hutchinson", diag=True)
    with pytest.raises(UserError, match=r"--diag needs one architecture: run .* is cnn1d .* but run .* is mlp"):
        analyze([runs[0], mlp], lmc="none", signs=False, hessian_k=1, hessian=curvature)
    assert not (mlp / "analysis").exists() and not list((runs[0] / "analysis").glob("diagonal-*"))


def test_progress_after_a_cached_rerun_never_exceeds_the_total(runs, tmp_path, monkeypatch, capsys):
    """The audit: a rerun read from the cache printed "17/14 pieces" (a trace and a diagonal ride along with
    each spectrum, and the cache counted them). The bar counts what it promised."""
    import re
    import shutil

    from landscape.hessian.sequence import HessianOptions

    monkeypatch.delenv("CI", raising=False)  # progress lines on (stderr is not a terminal here)
    run = tmp_path / "run"
    shutil.copytree(runs[0], run, ignore=shutil.ignore_patterns("analysis", ".lock"))
    curvature = HessianOptions(trace="hutchinson", diag=True)
    for _ in range(2):
        analyze([run], hessian_k=1, points=3, hessian=curvature, quiet=False)
        counts = re.findall(r"analyze: (\d+)/(\d+) pieces", capsys.readouterr().err)
        assert counts and all(int(done) <= int(total) for done, total in counts), counts
        assert counts[-1][0] == counts[-1][1]
