"""The Python API validates like the CLI: every analysis refuses checkpoints with non-finite weights and
masks that do not fit, naming the tensor; wrong types and misspelt options raise the toolkit's own errors
(or Python's TypeError for a keyword the function does not have), and the inputs are left as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.connectivity.interpolate import interpolate
from landscape.hessian import hessian_eigenvalues
from landscape.overlap import overlap
from landscape.surface import plane, surface
from training.checkpoint import checkpoint_bundle, load_checkpoint
from training.errors import CheckpointError, UserError


@pytest.fixture(scope="module")
def pair(tiny_run):
    return load_checkpoint(tiny_run.checkpoint(1)), load_checkpoint(tiny_run.checkpoint(2))


@pytest.fixture(scope="module")
def batches(pair):
    """One test batch of 200 samples: enough to evaluate and to take curvature on."""
    return [next(iter(checkpoint_bundle(pair[0]).eval_loader("test", 200)))]


def weight_name(c) -> str:
    return next(k for k, v in c.state.items() if k in c.mask and v.dim() > 1)


def analyses(a, b, data):
    """Every analysis of checkpoint ``b`` (with ``a`` where it takes two or three)."""
    return {
        "interpolate": lambda: interpolate(a, b, data, points=2),
        "interpolate (as A)": lambda: interpolate(b, a, data, points=2, bn="none"),
        "overlap": lambda: overlap(a, b),
        "hessian_eigenvalues": lambda: hessian_eigenvalues(b, data, k=1, max_iter=3),
        "surface": lambda: surface(b, data, directions=1, grid=2),
        "plane": lambda: plane(a, a, b, data, grid=2, bn="none"),
    }


def states(*ckpts):
    return [{k: v.clone() for k, v in c.state.items()} for c in ckpts]


def unchanged(before, *ckpts):
    """Whether every tensor of ``ckpts`` still equals its copy in ``before`` (NaN equal to NaN)."""

    def same(x, y):
        return x.shape == y.shape and bool(((x == y) | ((x != x) & (y != y))).all())

    return all(same(s[k], v) for s, c in zip(before, ckpts, strict=True) for k, v in c.state.items())


@pytest.mark.parametrize("value, kind", [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_every_analysis_refuses_non_finite_weights_naming_the_tensor(pair, batches, value, kind):
    a, b = pair
    weight = weight_name(b)
    bad = b.clone()
    bad.state[weight] = bad.state[weight].clone()
    bad.state[weight].view(-1)[3] = value
    before = states(a, bad)
    for name, call in analyses(a, bad, batches).items():
        with pytest.raises(CheckpointError, match=rf"tensor {weight} has 1 {kind} value") as exc:
            call()
        assert "\n" not in str(exc.value), name
    assert unchanged(before, a, bad)


def test_every_analysis_refuses_a_mask_that_does_not_fit(pair, batches):
    a, b = pair
    weight = weight_name(b)
    bad = b.clone()
    bad.mask[weight] = bad.mask[weight][..., :-1]  # one column short
    for name, call in analyses(a, bad, batches).items():
        with pytest.raises(CheckpointError, match=rf"mask entry {weight} has shape") as exc:
            call()
        assert "\n" not in str(exc.value), name
    # a module and a separate mask: the same check, the library's error naming the parameter
    with pytest.raises(UserError, match=rf"{weight} has shape") as exc:
        hessian_eigenvalues(b.model, batches, k=1, max_iter=3, mask=bad.mask)
    assert exc.value.param == "mask"
    with pytest.raises(UserError, match=r"does not have: nowhere\.weight"):
        hessian_eigenvalues(b.model, batches, k=1, max_iter=3, mask={"nowhere.weight": torch.ones(2, dtype=bool)})


FLOAT_LABELS = r"cross-entropy needs integer class labels, one per sample; the targets are float32 of shape \(200,\)"


@pytest.mark.parametrize(
    "call, pattern, param",
    [
        (lambda a, b, d: interpolate(a, b, d, points="3"), "points must be a number, got '3'", "points"),
        (lambda a, b, d: interpolate(a, b, d, points=2.5), "points must be at least 2", "points"),
        (lambda a, b, d: interpolate(a, b, d, points=float("nan")), "points must be a finite number", "points"),
        (lambda a, b, d: interpolate(a, b, d, bn_batches=0), "bn_batches must be positive", "bn_batches"),
        (lambda a, b, d: interpolate(a, b, d, bn="sometimes"), "unknown BN mode 'sometimes'", "bn"),
        (lambda a, b, d: interpolate(a, b, d, device="tpu"), "device 'tpu'", "device"),
        (lambda a, b, d: hessian_eigenvalues(b, d, k=0), "k must be positive", "k"),
        (lambda a, b, d: hessian_eigenvalues(b, d, k="2"), "k must be a number", "k"),
        (lambda a, b, d: hessian_eigenvalues(b, d, tol=float("nan")), "tol must be a finite number", "tol"),
        (lambda a, b, d: hessian_eigenvalues(b, d, max_iter=0), "max_iter must be positive", "max_iter"),
        (lambda a, b, d: hessian_eigenvalues(b, d, method="qr"), "unknown .*'qr'", None),
        (lambda a, b, d: surface(b, d, grid=1), "grid must be at least 2", "grid"),
        (lambda a, b, d: surface(b, d, directions=3), "directions", None),
        (lambda a, b, d: interpolate(a, "missing.pt", d), "no such checkpoint: missing.pt", None),
        (lambda a, b, d: overlap(a, {"model": b.state}), "mask", None),
        # round two of the audit: wrong types name the parameter; labels the loss cannot take are data errors
        (lambda a, b, d: interpolate(5, b, d), "ckpt_a must be a Checkpoint, a path or an nn.Module, got int", None),
        (lambda a, b, d: overlap(1, 2), "a must be a Checkpoint, a path or an nn.Module, got int", None),
        (lambda a, b, d: interpolate(a, b, "batches", bn="none"), "data must be an iterable of .* got str", None),
        (lambda a, b, d: interpolate(a, b, d[0][0], bn="none"), "data must be an iterable of .* got Tensor", None),
        (lambda a, b, d: hessian_eigenvalues(b, "batches"), "data must be an iterable of .* got str", None),
        (lambda a, b, d: interpolate(a, b, [(d[0][0], d[0][1].float())], bn="none"), FLOAT_LABELS, "data"),
        (lambda a, b, d: hessian_eigenvalues(b, [(d[0][0], d[0][1].float())]), "needs integer class labels", "data"),
        (lambda a, b, d: interpolate(a, b, [(d[0][0], d[0][1][:, None])], bn="none"), r"of shape \(200, 1\)", "data"),
        (lambda a, b, d: interpolate(a, b, {"test": d}, bn_data=iter(d)), "bn_data is a one-pass iterator", "bn_data"),
    ],
)
def test_wrong_types_and_values_raise_the_toolkits_errors(pair, batches, call, pattern, param):
    a, b = pair
    before = states(a, b)
    with pytest.raises(UserError, match=pattern) as exc:
        call(a, b, batches)
    assert "\n" not in str(exc.value)
    if param is not None:
        assert exc.value.param == param
    assert unchanged(before, a, b)


def test_a_misspelt_keyword_is_an_error(pair, batches):
    a, b = pair
    for call in (
        lambda: interpolate(a, b, batches, pointz=3),
        lambda: hessian_eigenvalues(b, batches, top_k=2),
        lambda: surface(b, batches, grids=3),
        lambda: overlap(a, b, strict=True),
    ):
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            call()


def test_the_api_never_writes_vectors_over_the_checkpoint_it_reads(tiny_run):
    """The CLI refused this; hessian_eigenvalues(path, ..., vectors_path=path) used to replace the checkpoint."""
    path = tiny_run.checkpoint()
    before = path.read_bytes()
    batch = [next(iter(checkpoint_bundle(load_checkpoint(path)).eval_loader("train", 64)))]
    for model in (path, str(path), load_checkpoint(path)):
        with pytest.raises(UserError, match=r"^vectors_path .* is one of the inputs"):
            hessian_eigenvalues(model, batch, return_vectors=True, vectors_path=path)
    assert path.read_bytes() == before


def test_non_finite_losses_make_the_pair_not_connected(tiny_run):
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    x = torch.full((8, 1, 40), float("nan"))
    with pytest.warns(RuntimeWarning, match="non-finite loss at alpha = 0.000, 0.500, 1.000"):
        ds = interpolate(a, b, {"test": [(x, torch.zeros(8, dtype=torch.long))]}, points=3, bn="none")
    assert np.isnan(ds["loss"].values).all() and np.isnan(ds["error"].values).all()
    assert not bool(ds["connected"].sel(split="test")) and np.isnan(float(ds["error_barrier"].sel(split="test")))


def test_analyze_takes_a_single_folder_given_as_a_string(tiny_run):
    import landscape

    ds = landscape.analyze(str(tiny_run.run_dir), lmc="none", signs=True)
    assert ds.sizes["run"] == 1 and ds["run_dir"].values[0] == str(tiny_run.run_dir)
