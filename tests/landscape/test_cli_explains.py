"""The CLI explains itself: every option has help and shows its default, progress goes to logs as lines,
Ctrl-C says what was kept and how to go on, very long requests print an estimate, checkpoints trained on
different data are refused unless told otherwise, and BatchNorm recalibration of the endpoints is noted."""

from __future__ import annotations

import importlib
import itertools
import json
import re

import pytest
import typer
import xarray as xr

from landscape.cli import app, main
from landscape.cli.main import INTERRUPTED
from training.config import TrainConfig
from training.pruning import METHODS
from training.validate import CHOICES


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def commands() -> dict:
    return typer.main.get_command(app).commands


def test_every_option_of_every_command_has_a_help_line():
    for name, command in commands().items():
        assert command.help, name
        for p in command.params:
            if getattr(p, "param_type_name", "") == "option":
                assert p.help and p.help.strip(), (name, p.opts)


def test_help_shows_defaults_and_lists_every_pruning_method(capsys):
    code, out, _err = run_cli(["interpolate", "--help"], capsys)
    out = " ".join(out.split())  # help lines wrap at any space
    assert code == 0 and "[default: 31]" in out and "[default: recalibrate]" in out
    assert "[default: endpoint-mean]" in out and "--allow-different-data" in out
    code, out, _err = run_cli(["train", "--help"], capsys)
    out = " ".join(out.split())
    assert code == 0 and f"[default: {TrainConfig().optim.lr}]" in out
    by_flag = {opt: p for p in commands()["train"].params for opt in getattr(p, "opts", ())}
    methods = CHOICES["mask.method"][1]
    assert set(METHODS) <= set(methods)
    assert all(m in by_flag["--prune"].help for m in methods)
    prune_method = next(p for p in commands()["prune"].params if "--method" in getattr(p, "opts", ()))
    assert all(m in prune_method.help for m in METHODS)


def test_debug_and_exit_codes_are_documented(capsys):
    code, out, _err = run_cli(["--help"], capsys)
    out = " ".join(out.split())
    assert code == 0 and "Add --debug anywhere on a command line to see the traceback" in out
    assert "2 bad input (one line: error: ...)" in out and "130 interrupted" in out


def test_progress_is_a_line_per_epoch_and_per_point_without_a_terminal(tmp_path, tiny_run, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # the test's stderr is not a terminal: plain lines, no bar
    args = ["train", "--model", "cnn1d", "--width", "8", "--schedule", "cyclic", "--cycles", "1", "--epochs", "2"]
    code, _out, err = run_cli([*args, "--batch-size", "512", "--device", "cpu", "--out", tmp_path], capsys)
    assert code == 0, err
    epochs = [ln for ln in err.splitlines() if re.search(r": \d/2 epochs \(cycle 1 epoch \d: train loss", ln)]
    assert len(epochs) == 2 and "\r" not in err and epochs[-1].split(": ")[1].startswith("2/2")
    code, _out, err = run_cli(["interpolate", tiny_run.checkpoint(1), tiny_run.checkpoint(2), "--points", "3"], capsys)
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.startswith("interpolate: ")] == [
        f"interpolate: {i}/3 α (α = {a})" for i, a in ((1, "0.000"), (2, "0.500"), (3, "1.000"))
    ]
    code, _out, err = run_cli(
        ["interpolate", tiny_run.checkpoint(1), tiny_run.checkpoint(2), "--points", "3", "-q"], capsys
    )
    assert code == 0 and "interpolate: " not in err


def test_ctrl_c_in_training_says_what_was_kept_and_the_same_command_resumes(tmp_path, capsys, monkeypatch):
    from training.trainer import Trainer

    original, calls = Trainer._end_of_epoch, {"n": 0}

    def interrupted_after_one_epoch(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return result

    args = ["train", "--model", "cnn1d", "--width", "8", "--schedule", "one-cycle", "--epochs", "2", "--quiet"]
    args += ["--batch-size", "512", "--device", "cpu", "--out", tmp_path]
    with monkeypatch.context() as m:
        m.setattr(Trainer, "_end_of_epoch", interrupted_after_one_epoch)
        code, _out, err = run_cli(args, capsys)
    assert code == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.fullmatch(
        rf"interrupted: the run folder {re.escape(str(tmp_path))}/\S+ keeps every finished epoch; "
        "run the same command again to resume from the last one",
        lines[0],
    ), err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert list(run_dir.rglob("epoch_1.pt")) or list(run_dir.rglob("resume.pt"))
    code, out, err = run_cli(args, capsys)
    assert code == 0 and out.strip() == str(run_dir) and calls["n"] == 1
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


def test_very_long_requests_print_an_estimate_and_ctrl_c_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    from training.progress import Progress

    interpolate_module = importlib.import_module(
        "landscape.connectivity.interpolate"
    )  # the package exports a function so named

    clock = itertools.count(0.0, 2.0)  # every reading 2 s later: the first α "takes" 2 s

    class StopAfterFirst(Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, clock=lambda: next(clock), **kwargs)

        def update(self, n=1, note=""):
            super().update(n, note)
            raise KeyboardInterrupt  # Ctrl-C during the second α

    monkeypatch.setattr(interpolate_module, "Progress", StopAfterFirst)
    monkeypatch.delenv("CI", raising=False)
    out = tmp_path / "lmc.nc"
    args = ["interpolate", tiny_run.checkpoint(1), tiny_run.checkpoint(2), "--points", "100000", "--out", out]
    code, _out, err = run_cli(args, capsys)
    assert code == 130 and "Traceback" not in err
    assert "interpolate: 100000 α will take about 2 d 7 h (2 s each, measured on the first)" in err
    assert [ln for ln in err.splitlines() if ln.strip()][-1] == f"interrupted: {INTERRUPTED}"
    assert not out.exists() and not list(tmp_path.iterdir())


def test_checkpoints_trained_on_different_data_are_refused_unless_allowed(tiny_run, tmp_path, capsys):
    import torch

    for change in ({"dataset": "synthetic", "name": "synthetic"}, {"synthetic_train": 7}):
        raw = torch.load(tiny_run.checkpoint(2), weights_only=True)
        data_config = {**raw["meta"]["data_config"], **{k: v for k, v in change.items() if k != "dataset"}}
        raw["meta"].update(data_config=data_config, dataset=change.get("dataset", raw["meta"]["dataset"]))
        other = tmp_path / "other.pt"
        torch.save(raw, other)
        code, _out, err = run_cli(["interpolate", tiny_run.checkpoint(1), other, "--points", "2"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert re.search(r"^error: .* were trained on different data \(.*\); pass .*--allow-different-data", err)
        what = "mnist1d and synthetic" if "dataset" in change else "different data settings"
        assert what in err
        code, _out, err = run_cli(
            ["interpolate", tiny_run.checkpoint(1), other, "--points", "2", "--allow-different-data"], capsys
        )
        assert code == 0, err
    # nothing else differs between the same run's checkpoints, so they compare without the flag
    code, _out, err = run_cli(["interpolate", tiny_run.checkpoint(1), tiny_run.checkpoint(2), "--points", "2"], capsys)
    assert code == 0, err


def test_the_table_notes_when_bn_recalibration_changed_the_endpoints(tiny_run, tmp_path, capsys):
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    out = tmp_path / "lmc.nc"
    code, text, err = run_cli(["interpolate", a, b, "--points", "2", "--split", "both", "--out", out], capsys)
    assert code == 0, err
    ds = xr.load_dataset(out)
    assert ds["stored_error"].dims == ("split", "endpoint")
    for split in ("train", "test"):
        shown = [  # the note appears only when a change is visible at the 4 digits it prints
            f"{v:.4f}"
            for m in ("loss", "error")
            for v in (*ds[f"stored_{m}"].sel(split=split).values, *ds[m].sel(split=split).values[[0, -1]])
        ]
        changed = shown[0:2] != shown[2:4] or shown[4:6] != shown[6:8]
        note = f"note: BatchNorm recalibration changed the endpoints on {split}"
        assert (note in text) == changed, (split, shown)
    assert "note: BatchNorm recalibration changed the endpoints on test" in text  # running stats are EMAs
    flat = " ".join(text.split())  # the console wraps long lines
    assert re.search(r"A: error \d\.\d{4} → \d\.\d{4}, loss \d\.\d{4} → \d\.\d{4}", flat)
    state = r"(not connected \(error barrier \d\.\d{4} ≥ 0\.02\)|connected \(error barrier \d\.\d{4} < 0\.02\))"
    assert re.search(state, flat)
    code, text, err = run_cli(["interpolate", a, b, "--points", "2", "--bn", "none", "--out", out], capsys)
    assert code == 0 and "note: BatchNorm" not in text and "stored_error" not in xr.load_dataset(out)
