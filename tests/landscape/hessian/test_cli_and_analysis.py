"""`landscape hessian` and `landscape analyze` with the curvature options; warm starts along a run."""

import numpy as np
import pytest
import xarray as xr

from landscape.analysis import analyze
from landscape.hessian import load_ritz_vectors
from landscape.hessian.sequence import HessianOptions
from tests.helpers import tiny_config
from training.run import train


@pytest.fixture(scope="module")
def epoch_run(tmp_path_factory):
    """A tiny run that saved a checkpoint every epoch (init + 4 epochs)."""
    return train(tiny_config(save_every=1), tmp_path_factory.mktemp("epochs"), quiet=True).run_dir


def _cli(args, capsys):
    from landscape.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_hessian_command_with_every_curvature_option(tiny_run, tmp_path, capsys):
    run = tiny_run.run_dir
    out = tmp_path / "h.nc"
    args = ["hessian", str(run / "cycle_2.pt"), "--top-k", "2", "--operator", "ggn", "--per-layer", "--vectors",
            "--trace", "--trace-method", "hutchpp", "--diag", "--batch-size", "64", "--out", str(out)]  # fmt: skip
    code, text, err = _cli(args, capsys)
    assert code == 0, err
    assert "GGN of the mean loss over 64 samples (mask subspace" in text and "h.vectors.pt" in text
    ds = xr.load_dataset(out)
    from training.checkpoint import load_checkpoint

    modules = {n.rpartition(".")[0] for n, _ in load_checkpoint(run / "cycle_2.pt").model.named_parameters()}
    assert ds["eigenvalue"].dims == ("group", "k") and set(ds["group"].values.tolist()) == modules
    assert ds["trace"].dims == ("group",) and "diagonal" in ds and ds.attrs["operator"] == "ggn"
    assert (ds["eigenvalue"] >= -1e-6).all()  # the GGN is positive semi-definite
    payload = load_ritz_vectors(tmp_path / "h.vectors.pt")
    assert set(payload["groups"]) == set(ds["group"].values.tolist())
    code, text, err = _cli(
        ["hessian", str(run / "cycle_2.pt"), "--top-k", "2", "--which", "smallest", "--batch-size", "64",
         "--params", "features.*", "--params", "fc.*"], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "smallest eigenvalues" in text and "fc.*" in text
    for bad, message in [
        (["--which", "middle"], "unknown --which 'middle'"),
        (["--params", "nope*"], "--params pattern 'nope*' matches no trainable parameter"),
        (["--operator", "kfac"], "unknown --operator 'kfac'"),
        (["--trace", "--trace-method", "xtrace"], "unknown --trace-method 'xtrace'"),
        (["--vectors"], "--vectors writes the Ritz vectors beside --out"),
        (["--criterion", "exact"], "unknown convergence --criterion"),
    ]:
        code, _text, err = _cli(["hessian", str(run / "cycle_2.pt"), "--batch-size", "32", *bad], capsys)
        assert code == 2 and message in err and "Traceback" not in err, (bad, err)


def test_warm_starts_find_the_converged_eigenvalues_deterministically(epoch_run):
    common = {"lmc": "none", "signs": False, "hessian_k": 3, "hessian_batch_size": 64, "checkpoints": "epochs"}
    # the reference: every checkpoint cold, to residuals of 1e-10 (eigenvalues exact to rounding)
    exact = HessianOptions(warm_start=False, tol=1e-10, max_iter=400, criterion="residual")
    ref = analyze([epoch_run], cache=False, hessian=exact, **common)["eigenvalue"].values
    warm = analyze([epoch_run], cache=False, hessian=HessianOptions(tol=1e-6, max_iter=200), **common)
    np.testing.assert_allclose(warm["eigenvalue"].values, ref, rtol=1e-5)
    cold = analyze([epoch_run], cache=False, hessian=HessianOptions(warm_start=False, tol=1e-6), **common)
    w, c = warm["hessian_matvecs"].values[0], cold["hessian_matvecs"].values[0]
    assert w[0] == c[0] and warm.attrs["cache_misses"] > 0  # the first checkpoint starts cold either way
    # deterministic, and the same whether the previous checkpoint's piece is computed or read from the cache
    again = analyze([epoch_run], hessian=HessianOptions(tol=1e-6, max_iter=200), **common)
    cached = analyze([epoch_run], hessian=HessianOptions(tol=1e-6, max_iter=200), **common)
    assert cached.attrs["cache_misses"] == 0
    xr.testing.assert_identical(warm.drop_attrs(), again.drop_attrs())
    xr.testing.assert_identical(again.drop_attrs(), cached.drop_attrs())


def test_analyze_with_groups_trace_diagonal_and_vectors(epoch_run, tmp_path, capsys):
    out = tmp_path / "a.nc"
    args = ["analyze", str(epoch_run), "--lmc", "none", "--no-signs", "--hessian-k", "2", "--hessian-batch-size",
            "64", "--params", "features.*", "--params", "fc.*", "--trace", "hutchpp", "--diag", "--vectors",
            "--operator", "fisher", "--quiet", "--out", str(out)]  # fmt: skip
    code, _text, err = _cli(args, capsys)
    assert code == 0, err
    ds = xr.load_dataset(out).isel(run=0)
    assert ds["eigenvalue"].dims == ("point", "group", "k") and ds.sizes["group"] == 2
    assert ds["trace"].dims == ("point", "group") and (ds["hessian_matvecs"] > 0).all()
    n = sum(p.numel() for p in load_ritz_vectors(
        epoch_run / "analysis" / "vectors" / "init.vectors.pt")["groups"]["fc.*"]["vectors"].values())  # fmt: skip
    assert n > 0 and ds.sizes["coordinate"] > n and (epoch_run / "analysis" / "vectors" / "cycle_2.vectors.pt").exists()
    # NaN exactly at the pruned coordinates of the full parameter vector
    from training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(epoch_run / "cycle_2.pt")  # the command analyses the cycle checkpoints
    import torch

    kept = torch.cat([ckpt.mask[n].flatten() if n in ckpt.mask else torch.ones(p.numel(), dtype=torch.bool)
                      for n, p in ckpt.model.named_parameters()]).numpy()  # fmt: skip
    assert np.array_equal(np.isfinite(ds["diagonal"].isel(point=-1).values), kept)
    # a new option value is a new cache key: the Fisher pieces are not reused for the Hessian
    again = analyze([epoch_run], lmc="none", signs=False, hessian_k=2, hessian_batch_size=64,
                    hessian=HessianOptions(params=("features.*", "fc.*")))  # fmt: skip
    assert again.attrs["cache_misses"] > 0
    assert not np.allclose(again["eigenvalue"].values, xr.load_dataset(out)["eigenvalue"].values)
