"""Sign and mask statistics against hand counts; surfaces against direct evaluation."""

import pytest
import torch

import landscape
from landscape.overlap import overlap
from landscape.surface import plane, plane_basis, random_direction, surface
from training.config import DataConfig
from training.data import load_data
from training.errors import CheckpointError, UserError
from training.evaluate import evaluate


def test_sign_flips_hand_counted():
    a = {
        "model": {"w": torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0, 0.0])},
        "mask": {"w": torch.tensor([True, True, True, True, False, False])},
    }
    b = {
        "model": {"w": torch.tensor([-1.0, -2.0, 3.0, 4.0, 5.0, 1.0])},
        "mask": {"w": torch.tensor([True, True, False, True, True, True])},
    }
    ds = overlap(a, b)
    # U = {0, 1, 3}; flips at 0 and 3
    assert float(ds["flip_fraction"].sel(layer="w")) == pytest.approx(2 / 3)
    assert float(ds["iou"].sel(layer="w")) == pytest.approx(3 / 6)  # |A∧B| = 3, |A∨B| = 6
    assert float(ds["hamming"].sel(layer="w")) == pytest.approx(3 / 6)  # positions 2, 4, 5 differ
    assert float(ds["retention"].sel(layer="w")) == pytest.approx(3 / 4)
    assert float(ds["keep_ratio_a"].sel(layer="w")) == pytest.approx(4 / 6)
    assert float(ds["keep_ratio_b"].sel(layer="w")) == pytest.approx(5 / 6)


def test_totals_pool_counts_and_identical_states_have_no_flips(tiny_run):
    same = overlap(tiny_run.checkpoint(1), tiny_run.checkpoint(1))
    assert float(same["flip_fraction_total"]) == 0 and float(same["iou_total"]) == 1
    assert float(same["hamming_total"]) == 0 and float(same["retention_total"]) == 1
    ds = overlap(tiny_run.checkpoint(0), tiny_run.checkpoint(2))
    both = ds["kept_in_both"].values
    assert float(ds["flip_fraction_total"]) == pytest.approx(
        float((ds["flip_fraction"].values * both).sum() / both.sum())
    )
    assert 0 < float(ds["flip_fraction_total"]) < 0.5
    assert ds["layer"].values.tolist()[0] == "features.0.weight"
    assert ds.attrs["a_path"].endswith("init.pt")


def test_sign_flips_with_different_masks_counts_only_the_common_support(tmp_path):
    # imp-lrr-lts's sign_similarity.py subtracts the zeros of the first mask and is wrong here; ours is not.
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    a = {"model": {"w": w}, "mask": {"w": torch.tensor([True, True, False, False])}}
    b = {"model": {"w": -w}, "mask": {"w": torch.tensor([False, True, True, False])}}
    assert float(overlap(a, b)["flip_fraction_total"]) == 1.0


def test_sign_flips_refuses_mismatched_masks():
    a = {"model": {"w": torch.ones(3)}, "mask": {"w": torch.ones(3, dtype=torch.bool)}}
    b = {"model": {"v": torch.ones(3)}, "mask": {"v": torch.ones(3, dtype=torch.bool)}}
    with pytest.raises(CheckpointError, match="different parameters"):
        overlap(a, b)


def test_filter_normalised_direction_respects_mask(tiny_run):
    ckpt = landscape.load_checkpoint(tiny_run.checkpoint())
    names = [n for n, _ in ckpt.model.named_parameters()]
    d = random_direction(ckpt.state, names, ckpt.mask, torch.Generator().manual_seed(0))
    for n in names:
        w = ckpt.state[n]
        if w.dim() <= 1:
            assert torch.all(d[n] == 0), n  # biases and BN ignored
            continue
        torch.testing.assert_close(d[n].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5, atol=1e-6)
        if n in ckpt.mask:
            assert torch.all(d[n][~ckpt.mask[n]] == 0), n  # a sparse model stays sparse


@pytest.fixture(scope="module")
def test_batches():
    return load_data(DataConfig(name="mnist1d")).eval_loader("test", 500)


def test_surface_centre_and_slice_equal_direct_evaluation(tiny_run, test_batches):
    ckpt = landscape.load_checkpoint(tiny_run.checkpoint())
    ds = surface(ckpt, test_batches, directions=1, grid=5, span=(-0.5, 0.5), seed=3)
    assert ds["loss"].dims == ("x",)
    centre_loss, _centre_err = evaluate(ckpt.model, test_batches)
    assert float(ds["loss"].sel(x=0.0)) == pytest.approx(centre_loss, rel=1e-6)
    names = [n for n, _ in ckpt.model.named_parameters()]
    d = random_direction(ckpt.state, names, ckpt.mask, torch.Generator().manual_seed(3))
    model = landscape.load_checkpoint(tiny_run.checkpoint()).model
    model.load_state_dict({k: v + 0.5 * d[k] if k in d else v for k, v in ckpt.state.items()})
    assert float(ds["loss"].sel(x=0.5)) == pytest.approx(evaluate(model, test_batches)[0], rel=1e-5)
    ds2 = surface(ckpt, test_batches, directions=2, grid=3, span=(-0.2, 0.2))
    assert ds2["loss"].dims == ("x", "y") and ds2.sizes == {"x": 3, "y": 3}
    assert float(ds2["loss"].sel(x=0.0, y=0.0)) == pytest.approx(centre_loss, rel=1e-6)


def test_plane_through_three_checkpoints(tiny_run, test_batches):
    a, b, c = (landscape.load_checkpoint(tiny_run.checkpoint(k)) for k in (0, 1, 2))
    u, v, pts = plane_basis(a.state, b.state, c.state)
    for point, target in ((pts[1], b.state), (pts[2], c.state)):
        for k in u:
            rebuilt = a.state[k].double() + point[0] * u[k] + point[1] * v[k]
            torch.testing.assert_close(rebuilt, target[k].double(), rtol=1e-6, atol=1e-6)
    ds = plane(a, b, c, test_batches, x=[0.0, pts[1, 0]], y=[0.0], bn="none")
    assert float(ds["loss"].sel(x=0.0, y=0.0)) == pytest.approx(evaluate(a.model, test_batches)[0], rel=1e-6)
    assert float(ds["loss"].isel(x=1, y=0)) == pytest.approx(evaluate(b.model, test_batches)[0], rel=1e-4)
    grid = plane(a, b, c, test_batches, grid=3, bn_data=test_batches)
    assert grid.sizes["x"] == 3 and grid["point"].values.tolist() == ["a", "b", "c"]
    assert grid.attrs["bn"] == "recalibrate" and grid.attrs["bn_data"] == "bn_data"
    with pytest.raises(UserError, match="recalibrating BatchNorm needs training data"):
        plane(a, b, c, test_batches, grid=3)  # never on the data it evaluates
    with pytest.raises(UserError, match="identical"):
        plane(a, a, c, test_batches)
