"""Mode-connecting curves: an untrained midpoint bend is the straight line, the endpoints are exact,
the bend stays on its mask, a trained curve lowers a clear linear barrier, and the CLI round trip."""

import numpy as np
import pytest
import torch

import landscape
from landscape.connectivity.curves import curve_point, evaluate_curve, fit_curve, midpoint_bend, path_length
from tests.landscape.connectivity.test_align import make_checkpoint
from tests.landscape.test_cli import run_cli
from training.config import DataConfig
from training.data import load_data
from training.errors import UserError


@pytest.fixture(scope="module")
def bundle():
    return load_data(DataConfig(name="mnist1d"))


def test_curve_points_are_exact_at_the_ends_and_linear_through_the_midpoint():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    mid = torch.lerp(a, b, 0.5)
    for kind in ("bezier", "polychain"):
        assert torch.equal(curve_point(kind, a, mid * 3, b, 0.0), a)
        assert torch.equal(curve_point(kind, a, mid * 3, b, 1.0), b)
        for t in (0.1, 0.5, 0.77):
            torch.testing.assert_close(curve_point(kind, a, mid, b, t), a + t * (b - a), rtol=1e-6, atol=1e-6)
    bend = torch.randn(50, generator=gen)
    t = 0.3  # the Bezier formula of Garipov et al.
    expected = (1 - t) ** 2 * a + 2 * t * (1 - t) * bend + t**2 * b
    torch.testing.assert_close(curve_point("bezier", a, bend, b, t), expected)
    assert torch.equal(curve_point("polychain", a, bend, b, 0.5), bend)


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_untrained_midpoint_bend_is_the_linear_path(two_seeds, bundle, kind):
    a, b = (landscape.load_checkpoint(p) for p in two_seeds)
    data = {"test": bundle.eval_loader("test", 1000)}
    bn_data = bundle.eval_loader("train", 1000)
    line = landscape.interpolate(a, b, data, points=5, bn_data=bn_data)
    bend = fit_curve(a, b, bundle.train_loader(256, seed=0), kind=kind, epochs=0)
    ds = evaluate_curve(a, b, bend, data, kind=kind, points=5, bn_data=bn_data)
    np.testing.assert_allclose(ds["loss"].values, line["loss"].values, rtol=1e-5)
    np.testing.assert_allclose(ds["error"].values, line["error"].values, atol=1.5e-3)  # at most one sample
    assert (
        ds["loss"].values[0, 0] == line["loss"].values[0, 0] and ds["loss"].values[0, -1] == line["loss"].values[0, -1]
    )
    assert ds["path_length"].item() == pytest.approx(ds["linear_path_length"].item(), rel=1e-6)  # float32 bend


def test_trained_curve_lowers_a_clear_linear_barrier(two_seeds, bundle):
    """Measured: test error barrier 0.519 straight, 0.044 along a Bezier curve trained 4 epochs."""
    a, b = two_seeds
    data = {"test": bundle.eval_loader("test", 1000)}
    bn_data = bundle.eval_loader("train", 1000)
    line = landscape.interpolate(a, b, data, points=11, bn_data=bn_data)
    assert line["error_barrier"].item() > 0.2
    ds, _ = landscape.curve(
        a, b, data, lambda e: bundle.train_loader(128, seed=e), epochs=4, points=11, bn_data=bn_data
    )
    assert ds["error_barrier"].item() < line["error_barrier"].item() / 2
    assert ds["loss_barrier"].item() < line["loss_barrier"].item() / 2
    assert ds["path_length"].item() > ds["linear_path_length"].item()
    assert list(ds["epoch"].values) == [1, 2, 3, 4] and ds["train_loss"].values[-1] < ds["train_loss"].values[0]
    assert {"loss_barrier_chord", "error_barrier_endpoint_mean", "connected"} <= set(ds.data_vars)


@pytest.mark.parametrize("mask", ["union", "intersection"])
def test_bend_stays_on_its_mask(mask):
    a, b = make_checkpoint("cnn1d", 0), make_checkpoint("cnn1d", 1)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(32, 1, 40, generator=gen), torch.randint(0, 10, (32,), generator=gen)) for _ in range(3)]
    bend = fit_curve(a, b, batches, epochs=2, mask=mask, lr=0.1)
    for name, m in bend.mask.items():
        expected = a.mask[name] | b.mask[name] if mask == "union" else a.mask[name] & b.mask[name]
        assert torch.equal(m, expected)
        assert torch.equal(bend.state[name][~m], torch.zeros_like(bend.state[name][~m]))
        assert (bend.state[name][m] != midpoint_bend(a, b, mask).state[name][m]).any()  # it trained
        for t in (0.25, 0.5, 0.9):  # coordinates pruned in both endpoints are zero all along the curve
            point = curve_point("bezier", a.state[name], bend.state[name], b.state[name], t)
            assert torch.equal(
                point[~m & ~a.mask[name] & ~b.mask[name]], torch.zeros(int((~m & ~a.mask[name] & ~b.mask[name]).sum()))
            )
    assert bend.meta["curve"]["mask"] == mask and len(bend.meta["curve"]["train_loss"]) == 2
    assert path_length("polychain", a, bend, b) >= path_length("line", a, bend, b)


def test_bad_curve_requests_are_clear_errors():
    a = make_checkpoint("mlp")
    with pytest.raises(UserError, match="kind must be one of bezier, polychain; got 'spline'"):
        fit_curve(a, a, [], kind="spline")
    with pytest.raises(UserError, match=r"mask \(of the bend\) must be one of union, intersection; got 'both'"):
        fit_curve(a, a, [], mask="both")
    with pytest.raises(UserError, match="training iterable is empty"):
        fit_curve(a, a, [], epochs=1)


def test_curve_command_writes_dataset_and_bend(tmp_path, two_seeds, capsys):
    out = tmp_path / "curve.nc"
    code, stdout, err = run_cli(
        ["curve", str(two_seeds[0]), str(two_seeds[1]), "--epochs", "1", "--points", "3", "--samples", "500",
         "--kind", "polychain", "--align", "weight-matching", "--out", str(out), "--device", "cpu", "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "chord" in stdout and "path length" in stdout and "aligned by weight-matching" in stdout
    ds = landscape.load_dataset(out)
    assert ds.attrs["samples"] == 500 and ds.attrs["kind"] == "polychain"
    assert ds.attrs["align_method"] == "weight-matching"
    bend = landscape.load_checkpoint(tmp_path / "curve.bend.pt")
    assert bend.meta["curve"]["kind"] == "polychain" and ds.attrs["bend_path"].endswith("curve.bend.pt")
    code, _, err = run_cli(["curve", str(two_seeds[0]), str(two_seeds[1]), "--kind", "spline"], capsys)
    assert code == 2 and "--kind must be one of bezier, polychain; got 'spline'" in err and "Traceback" not in err
