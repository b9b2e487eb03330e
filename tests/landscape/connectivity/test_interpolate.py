import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn import functional as F

import landscape
from landscape.connectivity.interpolate import barrier, recalibrate_bn
from tests.helpers import checkpoint_meta, tiny_config
from training.checkpoint import save_checkpoint
from training.config import DataConfig
from training.data import load_data
from training.errors import CheckpointError, UserError
from training.evaluate import evaluate
from training.models import build


@pytest.fixture(scope="module")
def data():
    bundle = load_data(DataConfig(name="mnist1d"))
    return {"train": bundle.eval_loader("train", 500), "test": bundle.eval_loader("test", 500)}


def test_barrier_known_values():
    a = [0.0, 0.5, 1.0]
    assert barrier(a, [0.1, 0.5, 0.3]) == pytest.approx(0.5 - 0.2)
    assert barrier(a, [0.2, 0.1, 0.2]) == pytest.approx(0.0)
    assert barrier(a, [0.1, 0.5, 0.3], "linear") == pytest.approx(0.5 - 0.2)
    # the two definitions differ when the maximum is off-centre
    a5 = [0.0, 0.25, 0.5, 0.75, 1.0]
    v = [0.0, 0.2, 0.25, 0.9, 1.0]
    assert barrier(a5, v) == pytest.approx(1.0 - 0.5)
    assert barrier(a5, v, "linear") == pytest.approx(0.15)
    with pytest.raises(UserError):
        barrier([0.1, 1.0], [1, 2])


@given(st.lists(st.floats(0, 10), min_size=2, max_size=40))
def test_barrier_properties(values):
    alpha = np.linspace(0, 1, len(values))
    for kind in ("endpoint-mean", "linear"):
        b = barrier(alpha, values, kind)
        assert b >= -1e-12
        assert b == pytest.approx(barrier(alpha, values[::-1], kind), abs=1e-9)  # symmetric under reversal
    assert barrier(alpha, [values[0]] * len(values)) == 0.0


def test_identical_checkpoints_have_zero_barrier(tiny_run, data):
    ckpt = tiny_run.checkpoint()
    for bn in ("recalibrate", "none"):
        ds = landscape.interpolate(ckpt, ckpt, data, points=5, bn=bn)
        assert (ds["loss_barrier"].values == 0).all() and (ds["error_barrier"].values == 0).all()
        assert np.ptp(ds["loss"].values, axis=1).max() == 0  # the curve is flat, exactly


def test_endpoints_equal_evaluating_the_checkpoints(tiny_run, data):
    a, b = landscape.load_checkpoint(tiny_run.checkpoint(1)), landscape.load_checkpoint(tiny_run.checkpoint(2))
    ds = landscape.interpolate(a, b, data, points=4, bn="none")
    for ckpt, alpha in ((a, 0.0), (b, 1.0)):
        for split in ("train", "test"):
            loss, err = evaluate(ckpt.model, data[split])
            assert ds["loss"].sel(split=split, alpha=alpha).item() == loss
            assert ds["error"].sel(split=split, alpha=alpha).item() == err
    # with recalibration, the endpoints equal the checkpoints evaluated after recalibration
    ds_r = landscape.interpolate(a, b, data, points=3, bn="recalibrate")
    model = landscape.load_checkpoint(tiny_run.checkpoint(1)).model
    recalibrate_bn(model, data["train"], torch.device("cpu"), batch_size=a.meta["data_config"]["batch_size"])
    assert ds_r["loss"].sel(split="test", alpha=0.0).item() == evaluate(model, data["test"])[0]
    assert ds_r.attrs["bn_batch_size"] == a.meta["data_config"]["batch_size"]
    assert ds_r.attrs["bn_batch_size_from"] == "checkpoint" and ds_r.attrs["bn_samples"] == 4000
    assert a.model.training is False and torch.equal(  # the caller's model was not modified
        a.model.state_dict()["features.1.running_mean"], a.state["features.1.running_mean"]
    )


def test_swapping_endpoints_reverses_the_curve(tiny_run, data):
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    ab = landscape.interpolate(a, b, data, points=5)
    ba = landscape.interpolate(b, a, data, points=5)
    np.testing.assert_allclose(ab["loss"].values, ba["loss"].values[:, ::-1], rtol=1e-5)
    np.testing.assert_allclose(ab["loss_barrier"].values, ba["loss_barrier"].values, rtol=1e-5)


def _mlp_checkpoint(tmp_path, name, seed):
    torch.manual_seed(seed)
    model = build("mlp", 10, input_shape=(1, 40), width=16)
    mask = {n: torch.rand_like(p) > 0.5 for n, p in model.named_parameters() if n.endswith("weight")}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    meta = checkpoint_meta(model="mlp", model_kwargs={"input_shape": [1, 40], "width": 16}, epoch=0, cycle=0)
    return save_checkpoint(tmp_path / name, model.state_dict(), mask, meta), model


def test_matches_naive_reference_loop(tmp_path, data):
    """Reference: rebuild θ(α) = (1-α)θ_A + αθ_B by hand and evaluate with F.cross_entropy on all samples."""
    pa, ma = _mlp_checkpoint(tmp_path, "a.pt", 0)
    pb, mb = _mlp_checkpoint(tmp_path, "b.pt", 1)
    ds = landscape.interpolate(pa, pb, data["test"], points=7)
    x = torch.cat([b[0] for b in data["test"]])
    y = torch.cat([b[1] for b in data["test"]])
    ref = build("mlp", 10, input_shape=(1, 40), width=16)
    sa, sb = ma.state_dict(), mb.state_dict()
    for i, alpha in enumerate(np.linspace(0, 1, 7)):
        ref.load_state_dict({k: (1 - alpha) * sa[k] + alpha * sb[k] for k in sa})
        with torch.no_grad():
            out = ref(x)
        assert ds["loss"].values[0, i] == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-5)
        assert ds["error"].values[0, i] == pytest.approx((out.argmax(1) != y).sum().item() / len(y), abs=1e-12)
    assert ds["split"].values.tolist() == ["data"] and ds.attrs["bn"] == "none"  # no BN to recalibrate


def test_recalibration_does_not_depend_on_the_evaluation_batch_size(tiny_run):
    """The audit's case: the evaluation loader's batch size (7, 500) used to change the recalibrated
    statistics; the samples are now re-cut into the training batch size, so the statistics are bitwise
    equal and the curves agree to float summation order."""
    bundle = load_data(DataConfig(name="mnist1d"))
    a, b = (landscape.load_checkpoint(tiny_run.checkpoint(c)) for c in (1, 2))
    curves = []
    for size in (7, 500):
        data = {"train": bundle.eval_loader("train", size), "test": bundle.eval_loader("test", size)}
        curves.append(landscape.interpolate(a, b, {"test": data["test"]}, points=3, bn_data=data["train"]))
        model = landscape.load_checkpoint(tiny_run.checkpoint(1)).model
        recalibrate_bn(model, data["train"], torch.device("cpu"), batch_size=a.meta["data_config"]["batch_size"])
        curves[-1].attrs["mean"] = model.state_dict()["features.1.running_mean"]
    assert torch.equal(curves[0].attrs.pop("mean"), curves[1].attrs.pop("mean"))  # bitwise
    np.testing.assert_allclose(curves[0]["loss"].values, curves[1]["loss"].values, rtol=1e-5)
    np.testing.assert_array_equal(curves[0]["error"].values, curves[1]["error"].values)
    # explicitly given: recorded as given; another batch size gives other statistics
    other = landscape.interpolate(a, b, {"test": data["test"]}, points=3, bn_data=data["train"], bn_batch_size=1000)
    assert other.attrs["bn_batch_size"] == 1000 and other.attrs["bn_batch_size_from"] == "given"
    assert not np.array_equal(other["loss"].values, curves[1]["loss"].values)
    with pytest.raises(UserError, match="bn_batch_size"):
        landscape.interpolate(a, b, {"test": data["test"]}, bn_data=data["train"], bn_batch_size=0)


def test_rebatched_cuts_any_batching_into_the_same_batches():
    from landscape.connectivity.recalibration import rebatched

    x = torch.arange(23.0).view(23, 1)
    for source in ([x], list(x.split(1)), list(x.split(5)), [(b, None) for b in x.split(7)]):
        out = list(rebatched(source, 4))
        assert [len(b) for b in out] == [4, 4, 4, 4, 4, 3]
        assert torch.equal(torch.cat(out), x)
    assert list(rebatched([], 4)) == []


def test_foreign_checkpoints_recalibrate_with_the_default_batch_size(data):
    from landscape.connectivity.recalibration import DEFAULT_BN_BATCH_SIZE

    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    ds = landscape.interpolate(model, model, data, points=2)
    assert ds.attrs["bn_batch_size"] == DEFAULT_BN_BATCH_SIZE == 128 and ds.attrs["bn_batch_size_from"] == "default"


def test_bn_recalibration_is_the_cumulative_average(data):
    """Reference: BN's recalibrated running mean equals the mean of the per-batch means of its input."""
    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    batches = list(data["train"])  # 8 equal batches of 500
    model.eval()
    recalibrate_bn(model, batches, torch.device("cpu"))
    conv = model.features[0]
    with torch.no_grad():
        means = torch.stack([conv(x).mean(dim=(0, 2)) for x, _ in batches])
        variances = torch.stack([conv(x).var(dim=(0, 2), unbiased=True) for x, _ in batches])
    torch.testing.assert_close(model.features[1].running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.features[1].running_var, variances.mean(0), rtol=1e-4, atol=1e-5)
    assert not model.training  # the caller's mode is restored


def test_dataset_schema_provenance_and_netcdf_round_trip(tmp_path, tiny_run, data):
    ds = landscape.interpolate(tiny_run.checkpoint(1), tiny_run.checkpoint(2), data, points=3)
    assert dict(ds.sizes) == {"split": 2, "alpha": 3, "endpoint": 2}
    # with BN recalibration, the endpoints as stored (their own running statistics) are kept beside α = 0, 1
    from training.checkpoint import load_checkpoint
    from training.evaluate import evaluate

    for e, ckpt in enumerate((tiny_run.checkpoint(1), tiny_run.checkpoint(2))):
        loss, error = evaluate(load_checkpoint(ckpt).model, data["test"], "cpu")
        assert float(ds["stored_loss"].sel(split="test").isel(endpoint=e)) == pytest.approx(loss, rel=1e-6)
        assert float(ds["stored_error"].sel(split="test").isel(endpoint=e)) == pytest.approx(error, abs=1e-9)
    assert ds["alpha"].values.tolist() == [0.0, 0.5, 1.0]
    assert {"loss", "error", "loss_barrier", "error_barrier"} <= set(ds.data_vars)
    assert ds.attrs["a_path"].endswith("cycle_1.pt") and len(ds.attrs["b_sha256"]) == 16
    assert '"cycle": 2' in ds.attrs["b_meta"] and ds.attrs["landscape_version"]
    assert ds.attrs["bn"] == "recalibrate" and ds.attrs["barrier_definition"] == "endpoint-mean"
    path = landscape.save_dataset(ds, tmp_path / "lmc.nc")
    back = landscape.load_dataset(path)
    assert back.identical(ds)


def test_mismatched_checkpoints_are_refused(tmp_path, tiny_run, data):
    other, _ = _mlp_checkpoint(tmp_path, "mlp.pt", 0)
    with pytest.raises(CheckpointError, match=r"different architectures: .*cnn1d.* mlp"):
        landscape.interpolate(tiny_run.checkpoint(1), other, data, points=3)
    from training.run import train

    wide = train(
        tiny_config(
            model=dataclasses.replace(tiny_config().model, width=4),
            schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1),
        ),
        tmp_path,
        quiet=True,
    )
    with pytest.raises(CheckpointError, match="different architectures"):
        landscape.interpolate(tiny_run.checkpoint(1), wide.checkpoint(), data, points=3)


def test_bad_arguments(tiny_run, data):
    with pytest.raises(UserError, match=r"^points must be at least 2, got 1$"):
        landscape.interpolate(tiny_run.checkpoint(1), tiny_run.checkpoint(2), data, points=1)
    for bn in ("sometimes", "auto"):  # "auto" was a synonym of "recalibrate" and is gone
        with pytest.raises(UserError, match=f"unknown BN mode '{bn}'; choose from: recalibrate, none"):
            landscape.interpolate(tiny_run.checkpoint(1), tiny_run.checkpoint(2), data, bn=bn)


def test_both_barrier_definitions_and_connected(tmp_path, tiny_run, data):
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    ds = landscape.interpolate(a, b, data, points=5, connected_threshold=0.5)
    alpha = ds["alpha"].values
    for metric in ("loss", "error"):
        for j in range(2):
            curve = ds[metric].values[j]
            assert ds[f"{metric}_barrier_endpoint_mean"].values[j] == barrier(alpha, curve, "endpoint-mean")
            assert ds[f"{metric}_barrier_chord"].values[j] == barrier(alpha, curve, "chord")
        assert np.array_equal(ds[f"{metric}_barrier"].values, ds[f"{metric}_barrier_endpoint_mean"].values)
    assert ds["connected"].dtype == bool
    assert np.array_equal(ds["connected"].values, ds["error_barrier"].values < 0.5)
    assert ds.attrs["connected_threshold"] == 0.5 and ds["connected"].attrs["threshold"] == 0.5
    assert ds.attrs["align_method"] == "none"
    chord = landscape.interpolate(a, b, data, points=5, barrier_kind="linear")  # the chord's former name
    assert chord.attrs["barrier_definition"] == "chord"
    assert np.array_equal(chord["error_barrier"].values, chord["error_barrier_chord"].values)
    assert np.array_equal(chord["connected"].values, chord["error_barrier_chord"].values < 0.02)
    back = landscape.load_dataset(landscape.save_dataset(chord, tmp_path / "chord.nc"))
    assert back.identical(chord) and back["connected"].dtype == bool


def test_cli_align_and_samples(tmp_path, tiny_run, capsys):
    from tests.landscape.test_cli import run_cli

    out = tmp_path / "aligned.nc"
    args = ["interpolate", str(tiny_run.checkpoint(1)), str(tiny_run.checkpoint(2)), "--points", "3"]
    code, stdout, err = run_cli(
        [*args, "--align", "weight-matching", "--samples", "200", "--split", "both", "--out", str(out), "--quiet"],
        capsys,
    )
    assert code == 0, err
    assert "endpoint-mean" in stdout and "chord" in stdout and "aligned by weight-matching" in stdout
    assert "% of units moved" in stdout and "connected" in stdout
    ds = landscape.load_dataset(out)
    assert ds.attrs["samples"] == 200 and ds.attrs["samples_seed"] == 0
    assert (
        ds.attrs["align_method"] == "weight-matching" and ds.attrs["align_cost_after"] <= ds.attrs["align_cost_before"]
    )
    code, _, err = run_cli([*args, "--align", "magic"], capsys)
    assert code == 2 and "--align must be one of none, weight-matching, activation-matching" in err
    code, _, err = run_cli([*args, "--bn", "repair"], capsys)
    assert code == 2 and "--bn 'repair' is for networks without BatchNorm" in err


def test_samples_option_on_hessian_and_surface(tmp_path, tiny_run, capsys):
    from tests.landscape.test_cli import run_cli

    ckpt = str(tiny_run.checkpoint(2))
    code, _, err = run_cli(
        ["surface", ckpt, "--grid", "3", "--directions", "1", "--samples", "100", "--out", str(tmp_path / "s.nc")],
        capsys,
    )
    assert code == 0, err
    assert landscape.load_dataset(tmp_path / "s.nc").attrs["samples"] == 100
    code, stdout, err = run_cli(
        [
            "hessian",
            ckpt,
            "--samples",
            "60",
            "--samples-seed",
            "2",
            "--batch-size",
            "128",
            "--out",
            str(tmp_path / "h.nc"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "60 samples" in stdout  # one batch of the whole 60-sample subset
    h = landscape.load_dataset(tmp_path / "h.nc")
    assert h.attrs["samples"] == 60 and h.attrs["samples_seed"] == 2


def test_batchnorm_is_never_recalibrated_on_the_evaluated_data(tiny_run, data):
    """The README's example once recalibrated on the test split, the only one it gave; now the training
    batches come from bn_data or a train split, and the result says which and how many samples."""
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    with pytest.raises(UserError, match="recalibrating BatchNorm needs training data: pass bn_data"):
        landscape.interpolate(a, b, {"test": data["test"]}, points=3)
    given = landscape.interpolate(a, b, {"test": data["test"]}, bn_data=data["train"], points=3)
    split = landscape.interpolate(a, b, data, points=3)
    assert (given.attrs["bn_data"], split.attrs["bn_data"]) == ("bn_data", "train")
    n_train = sum(len(y) for _, y in data["train"])
    assert given.attrs["bn_samples"] == split.attrs["bn_samples"] == n_train
    np.testing.assert_array_equal(given["loss"].sel(split="test").values, split["loss"].sel(split="test").values)
    leaked = landscape.interpolate(a, b, {"test": data["test"]}, bn_data=data["test"], points=3)
    assert not np.array_equal(leaked["loss"].values, given["loss"].values)  # the statistics did depend on it
    plain = landscape.interpolate(a, b, {"test": data["test"]}, bn="none", points=3)
    assert (plain.attrs["bn_data"], plain.attrs["bn_samples"]) == ("none", 0)
