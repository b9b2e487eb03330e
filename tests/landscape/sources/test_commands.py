"""The CLI on a researcher's own model, files and data: the user's module imported from the current
folder, every analysis command, and every bad input as one line with exit code 2."""

from __future__ import annotations

import pathlib

import pytest
import torch
import xarray as xr

import landscape
from landscape.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_every_analysis_command_on_a_users_model_and_data(user, capsys):
    name, root, code = user
    spec = ["--model", f"{name}:Net", "--model-arg", "width=4", "--data", f"{name}:data"]
    rc, _, err = run_cli(["interpolate", "a.pt", "b.pt", *spec, "--points", "3", "--split", "both",
                            "--out", "lmc.nc", "--quiet"], capsys)  # fmt: skip
    assert rc == 0, err
    ds = xr.load_dataset(root / "lmc.nc")
    assert ds.attrs["a_model_spec"] == f"{name}:Net" and ds.attrs["a_model_args"] == '{"width": 4}'
    splits = code.data()
    api = landscape.interpolate(
        root / "a.pt", root / "b.pt", {"train": splits["train"], "test": splits["test"]}, points=3,
        bn_data=splits["train"], model=f"{name}:Net", model_args={"width": 4},
    )  # fmt: skip
    assert (ds["loss"].values == api["loss"].values).all()

    rc, _, err = run_cli(["hessian", "a.pt", *spec, "--top-k", "2", "--out", "h.nc"], capsys)
    assert rc == 0, err
    assert xr.load_dataset(root / "h.nc").attrs["checkpoint_format"] == "torch-zip"
    rc, _, err = run_cli(["signs", "a.pt", "b.pt", "--model", f"{name}:Net", "--out", "s.nc"], capsys)
    assert rc == 0, err
    assert float(xr.load_dataset(root / "s.nc")["keep_ratio_a_total"]) == 1.0  # no mask in the files: dense
    rc, _, err = run_cli(["surface", "a.pt", *spec, "--grid", "3", "--directions", "1", "--quiet"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["interpolate", "a.pt", "b.pt", *spec, "--points", "2", "--loss", "mse"], capsys)
    message = "error: loss mse needs targets of the outputs' shape: outputs (8, 10), targets (8,)"
    assert rc == 2 and err.strip() == message


def test_bad_input_from_elsewhere_exits_2_with_one_line(user, capsys):
    name, root, _ = user
    torch.save({"net": {"conv.weight": torch.zeros(1)}}, root / "tiny.pt")
    torch.save({"model": torch.load(root / "a.pt")["net"], "root": pathlib.PosixPath("/x")}, root / "unsafe.pt")
    scripted = torch.jit.trace(torch.nn.Linear(2, 2), torch.randn(1, 2))
    scripted.save(str(root / "scripted.pt"))
    torch.save({"fc.weight": torch.ones(2, 2)}, root / "badmask.pth")
    model = ["--model", f"{name}:Net"]
    cases = [
        (["interpolate", "a.pt", "b.pt"], "say which network reads it with --model"),
        (["interpolate", "a.pt", "b.pt", "--model", "nosuch_module:Net"], "cannot import nosuch_module"),
        (["interpolate", "a.pt", "b.pt", "--model", "torchvision:nosuch"], "unknown torchvision model"),
        (["interpolate", "a.pt", "b.pt", "--model", f"{name}:Net", "--model-arg", "depth=3"],
         "raised TypeError"),
        (["interpolate", "tiny.pt", "tiny.pt", *model],
         "does not fit the model: 8 missing (conv.bias, bn.weight, bn.bias and 5 more); 1 of another shape"),
        (["interpolate", "unsafe.pt", "unsafe.pt", *model], "safe loading does not allow (pathlib.PosixPath)"),
        (["interpolate", "scripted.pt", "scripted.pt", *model], "is a TorchScript archive"),
        (["signs", "a.pt", "b.pt", *model, "--mask", "badmask.pth"], "fc.weight has shape (2, 2)"),
        (["interpolate", "a.pt", "b.pt", *model, "--data", f"{name}:shuffled"], "DataLoader that shuffles"),
        (["interpolate", "a.pt", "b.pt", *model, "--data", f"{name}:broken"], "raised RuntimeError: the data"),
        (["interpolate", "a.pt", "b.pt", *model], "records no dataset: pass --data"),
    ]  # fmt: skip
    for args, message in cases:
        rc, _, err = run_cli(args, capsys)
        lines = err.strip().splitlines()
        assert rc == 2, (args, err)
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, err)
        assert "Traceback" not in err and "weights_only=False" not in err


def test_curve_between_a_users_checkpoints_writes_a_bend_that_loads_again(user, capsys):
    name, root, _ = user
    spec = ["--model", f"{name}:Net", "--model-arg", "width=4", "--data", f"{name}:data"]
    rc, _, err = run_cli(["curve", "a.pt", "b.pt", *spec, "--epochs", "1", "--points", "3", "--out", "curve.nc",
                          "--quiet"], capsys)  # fmt: skip
    assert rc == 0, err
    ds = xr.load_dataset(root / "curve.nc")
    assert ds.attrs["a_model_spec"] == f"{name}:Net" and ds.sizes["t"] == 3
    bend = landscape.load(root / "curve.bend.pt", model=f"{name}:Net", model_args={"width": 4})
    assert bend.meta["source"]["layout"] == "plain"
    a = landscape.load(root / "a.pt", model=f"{name}:Net", model_args={"width": 4})
    assert not torch.equal(bend.state["conv.weight"], a.state["conv.weight"])  # the bend was trained


def test_a_registry_model_from_a_plain_state_dict_on_a_registry_dataset(tmp_path, capsys):
    """A cnn1d trained elsewhere, saved as a plain state dict: --model cnn1d with its arguments, --data mnist1d."""
    from training.models import build

    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save(build("cnn1d", 10, input_shape=[1, 40], width=8).state_dict(), tmp_path / f"{seed}.pt")
    args = ["--model", "cnn1d", "--model-arg", "num_classes=10", "--model-arg", "input_shape=[1, 40]",
            "--model-arg", "width=8", "--data", "mnist1d", "--samples", "200"]  # fmt: skip
    rc, _, err = run_cli(["interpolate", tmp_path / "0.pt", tmp_path / "1.pt", *args, "--points", "3",
                            "--align", "weight-matching", "--out", tmp_path / "lmc.nc", "--quiet"], capsys)  # fmt: skip
    assert rc == 0, err
    ds = xr.load_dataset(tmp_path / "lmc.nc")
    assert ds.attrs["a_model_spec"] == "cnn1d" and ds.attrs["samples"] == 200
    assert ds.attrs["align_method"] == "weight-matching"  # the registry's declared permutation structure
    rc, _, err = run_cli(["interpolate", tmp_path / "0.pt", tmp_path / "1.pt", "--model", "cnn1d"], capsys)
    assert rc == 2 and "needs its number of classes: --model-arg num_classes=N" in err
