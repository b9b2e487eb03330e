"""Batch analysis of checkpoints from elsewhere: an open_lth run folder read as levels in order, and a
folder of files sorted by name; every piece equals the single analysis of the same pair or checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import landscape
from landscape.run_folders import foreign_runs
from tests.landscape.sources.test_commands import run_cli
from training.errors import UserError


def open_lth_run(root, code, levels=3):
    """An open_lth run folder: per level ``mask.pth`` (int 0/1, every Conv/Linear weight) and the
    level's start and end models (the end one non-zero at pruned positions, as open_lth leaves it)."""
    run = root / "lottery_0123" / "replicate_1"
    torch.manual_seed(0)
    net = code.Net()
    gen = torch.Generator().manual_seed(1)
    keep = {n: torch.ones_like(p, dtype=torch.int32) for n, p in net.named_parameters() if n.endswith("weight")
            and p.dim() > 1}  # fmt: skip
    for level in range(levels):
        folder = run / f"level_{level}" / "main"
        folder.mkdir(parents=True)
        torch.save(keep, folder / "mask.pth")
        torch.save(net.state_dict(), folder / "model_ep0_it0.pth")
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        torch.save(net.state_dict(), folder / "model_ep4_it0.pth")
        keep = {n: m * torch.rand(m.shape, generator=gen).gt(0.3).int() for n, m in keep.items()}  # prune 30%
    return run


def test_open_lth_run_is_read_as_levels_and_matches_single_analyses(user):
    name, root, code = user
    run = open_lth_run(root, code)
    [(folder, points)] = foreign_runs([run])
    assert folder == run and [p.path.parent.parent.name for p in points] == ["level_0", "level_1", "level_2"]
    assert all(p.path.name == "model_ep4_it0.pth" for p in points) and [p.epoch for p in points] == [4, 4, 4]

    data = code.data()
    spec = {"model": f"{name}:Net", "model_args": {"width": 4}}
    ds = landscape.analyze([run], points=3, hessian_k=1, data=data, data_name="test data", **spec)
    ends = [landscape.load(p.path, **spec) for p in points]
    masks = [torch.load(p.path.parent / "mask.pth") for p in points]
    expected_sparsity = [1 - sum(int(m.sum()) for m in mk.values()) / sum(m.numel() for m in mk.values())
                         for mk in masks]  # fmt: skip
    np.testing.assert_allclose(ds["sparsity"].values[0], expected_sparsity)
    for i in (1, 2):
        single = landscape.interpolate(ends[i - 1], ends[i], {"test": data["test"]}, points=3, bn_data=data["train"])
        np.testing.assert_allclose(
            float(ds["error_barrier"].values[0, i, 0]), float(single["error_barrier"].sel(split="test"))
        )
        signs = landscape.overlap(ends[i - 1], ends[i])
        assert float(ds["flip_vs_prev"].values[0, i]) == float(signs["flip_fraction_total"])
    for i, ckpt in enumerate(ends):
        top = landscape.hessian_eigenvalues(ckpt, [data["train"][0]], k=1, tol=1e-3)
        np.testing.assert_allclose(ds["eigenvalue"].values[0, i, 0], top["eigenvalue"].values[0], rtol=1e-3)
    assert ds["recipe"].values[0] == "-" and ds["status"].values[0] == "complete"
    assert ds.attrs["source_model"] == f"{name}:Net" and ds.attrs["source_model_args"] == '{"width": 4}'
    assert ds.attrs["source_mask"] == "auto" and ds.attrs["source_data"] == "test data"
    assert ds.attrs["cache_misses"] > 0
    again = landscape.analyze([run], points=3, hessian_k=1, data=data, data_name="test data", **spec)
    assert again.attrs["cache_misses"] == 0  # every piece cached in the folder's analysis/
    other = landscape.analyze([run], points=3, hessian_k=1, data=data, data_name="other", mask="none", **spec)
    assert other.attrs["cache_misses"] > 0  # another mask: other pieces


def test_folder_of_files_sorted_by_name_through_the_cli(user, capsys):
    name, root, code = user
    folder = root / "ckpts"
    folder.mkdir()
    for i, stem in enumerate(["step_10", "step_02", "step_01"]):
        torch.manual_seed(i)
        torch.save({"model_state_dict": code.Net().state_dict()}, folder / f"{stem}.pt")
    [(_, points)] = foreign_runs([folder])
    assert [p.path.name for p in points] == ["step_01.pt", "step_02.pt", "step_10.pt"]
    rc, _, err = run_cli(["analyze", folder, "--model", f"{name}:Net", "--data", f"{name}:data", "--points", "2",
                          "--out", root / "seq.nc", "--quiet"], capsys)  # fmt: skip
    assert rc == 0, err
    ds = xr.load_dataset(root / "seq.nc")
    assert ds.sizes["point"] == 3 and np.isnan(ds["error_barrier"].values[0, 0, 0])
    assert np.isfinite(ds["error_barrier"].values[0, 1:, 0]).all()
    rc, _, err = run_cli(["analyze", folder, "--data", f"{name}:data"], capsys)
    assert rc == 2 and "need --model" in err
    rc, _, err = run_cli(["analyze", folder, "--model", f"{name}:Net"], capsys)
    assert rc == 2 and "need --data" in err, err


@pytest.mark.parametrize("bad", ["empty", "nomodel"])
def test_foreign_folders_that_hold_nothing_are_refused(tmp_path, bad):
    folder = tmp_path / "runs"
    (folder / "level_0" / "main").mkdir(parents=True)
    if bad == "empty":
        (folder / "level_0" / "main").rmdir()
        (folder / "level_0").rmdir()
        with pytest.raises(UserError, match="holds no checkpoint files"):
            foreign_runs([folder])
    else:
        with pytest.raises(UserError, match=r"holds no model_ep<E>_it<I>\.pth"):
            foreign_runs([folder])
