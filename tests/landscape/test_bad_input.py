"""Careless and hostile input at the command line: an output never overwrites an input or a run folder's
files, non-finite weights, degenerate options and malformed checkpoints exit 2 with one line and leave
every input untouched (compared by checksum), and batch analysis reports gaps and failed runs."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from landscape.cli import main
from training.errors import UserError


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def assert_one_line_error(code, err, pattern, args=None):
    """Exit code 2 and exactly one stderr line, ``error: ...`` matching ``pattern``, no traceback."""
    assert code == 2, (args, code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert re.search(pattern, lines[0]), (args, pattern, lines[0])


def checksums(*paths) -> dict[str, str]:
    """sha256 of every file at or under ``paths`` (and the set of names, so a new file shows too)."""
    out = {}
    for p in map(Path, paths):
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def rewrite(src, dst, *, meta=None, tensor=None, value=float("nan")):
    """Copy checkpoint ``src`` to ``dst`` with ``meta`` entries replaced and one entry of ``tensor`` set to
    ``value``, bypassing the toolkit's writer (which would refuse such a file)."""
    raw = torch.load(src, weights_only=True)
    raw["meta"].update(meta or {})
    if tensor is not None:
        raw["model"][tensor] = raw["model"][tensor].clone()
        raw["model"][tensor].view(-1)[0] = value
    torch.save(raw, dst)
    return Path(dst)


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny run folder, which the tests try to damage."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, dst, ignore=shutil.ignore_patterns("analysis", ".lock"))
    return dst


def ckpts(tiny_run, run):
    """Cycle 1 and cycle 2 of the private copy."""
    return tuple(run / tiny_run.checkpoint(k).relative_to(tiny_run.run_dir) for k in (1, 2))


# --- 1. An output may never overwrite an input, nor a file in a run folder --------------------------------


def test_an_output_never_overwrites_an_input_or_a_run_folders_files(tiny_run, run, tmp_path, capsys):
    a, b = ckpts(tiny_run, run)
    loose = tmp_path / "loose.nc"  # a checkpoint outside any run folder, under a name an output could have
    shutil.copy(a, loose)
    (tmp_path / "link.nc").symlink_to(loose)
    os.link(loose, tmp_path / "hard.nc")
    prune = ["--method", "magnitude", "--sparsity", "0.9"]
    cases = [
        (["interpolate", a, b, "--out", b], r"--out must end in \.nc"),
        (["signs", a, b, "--out", a], r"--out must end in \.nc"),
        (["prune", a, *prune, "--out", a], "--out .* is one of the inputs"),
        (["prune", a, *prune, "--out", a.parent / "pruned.pt"], "--out .* is inside the run folder"),
        (["interpolate", a, b, "--out", run / "metrics.nc"], "--out .* is inside the run folder"),
        (["interpolate", a, b, "--out", run / "analysis" / "new.nc"], "--out .* is inside the run folder"),
        (["analyze", run, "--out", run / "result.nc"], "--out .* is inside the run folder"),
        (["interpolate", loose, b, "--out", loose], "--out .* is one of the inputs"),
        (["interpolate", loose, b, "--out", tmp_path / "link.nc"], "--out .* is one of the inputs"),
        (["interpolate", b, loose, "--out", tmp_path / "hard.nc"], "--out .* is one of the inputs"),
        (["hessian", loose, "--out", loose], "--out .* is one of the inputs"),
        (["surface", loose, "--out", tmp_path / "link.nc"], "--out .* is one of the inputs"),
        (["train", "--out", run, "--quiet"], "--out .* is inside the run folder"),
        (["demo", "--out", run / "demo", "--quiet"], "--out .* is inside the run folder"),
    ]
    before = checksums(run, tmp_path)
    for args, pattern in cases:
        code, _out, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)
        assert checksums(run, tmp_path) == before, args


def test_output_paths_are_checked_before_any_work(tiny_run, run, tmp_path, capsys):
    a, b = ckpts(tiny_run, run)
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "folder.nc").mkdir()
    missing = tmp_path / "missing.pt"
    cases = [
        # the output is refused before the (missing) inputs are even read
        (["interpolate", missing, missing, "--out", tmp_path / "x.txt"], r"--out must end in \.nc"),
        (["interpolate", a, b, "--out", tmp_path / "notes.txt" / "x.nc"], "notes.txt is a file, not a folder"),
        (["interpolate", a, b, "--out", tmp_path / "folder.nc"], "is a folder; give a file name"),
        (["surface", a, "--figure", tmp_path / "fig.txt"], r"--figure must end in \.png or \.pdf or \.svg"),
        (["surface", a, "--out", tmp_path / "s.nc", "--figure", tmp_path / "s.nc"], "--figure must end in"),
        (["prune", a, "--method", "random", "--sparsity", "0.5", "--out", tmp_path / "p.nc"], r"must end in \.pt"),
        (["analyze", run, "--out", tmp_path / "result.png"], r"--out must end in \.nc"),
        (["hessian", a, "--out", tmp_path / "notes.txt" / "h.nc"], "is a file, not a folder"),
        (["demo", "--out", tmp_path / "notes.txt", "--quiet"], "is a file, not a folder"),
    ]
    before = checksums(run, tmp_path)
    for args, pattern in cases:
        code, _out, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)
        assert checksums(run, tmp_path) == before, args


# --- 2. Non-finite weights ----------------------------------------------------------------------------------


def test_non_finite_weights_are_refused_by_every_command_naming_the_tensor(tiny_run, run, tmp_path, capsys):
    a, b = ckpts(tiny_run, run)
    state = torch.load(b, weights_only=True)["model"]
    weight = next(k for k in state if k.endswith("weight") and state[k].dim() > 1)
    buffer = next(k for k in state if k.endswith("running_var"))
    nan = rewrite(b, tmp_path / "nan.pt", tensor=weight)
    inf = rewrite(b, tmp_path / "inf.pt", tensor=buffer, value=float("inf"))
    out = tmp_path / "out"
    cases = [
        (["interpolate", a, nan, "--points", "2", "--out", out / "i.nc"], weight, "NaN"),
        (["interpolate", inf, a, "--points", "2"], buffer, "infinite"),
        (["signs", a, nan, "--out", out / "s.nc"], weight, "NaN"),
        (["hessian", nan, "--max-iter", "2", "--out", out / "h.nc"], weight, "NaN"),
        (["surface", inf, "--grid", "2", "--out", out / "f.nc"], buffer, "infinite"),
        (["prune", nan, "--method", "magnitude", "--sparsity", "0.5", "--out", out / "p.pt"], weight, "NaN"),
    ]
    before = checksums(run, tmp_path)
    for args, tensor, kind in cases:
        code, _out, err = run_cli(args, capsys)
        assert_one_line_error(code, err, rf"tensor {re.escape(tensor)} has 1 {kind} values?", args)
        assert checksums(run, tmp_path) == before and not out.exists(), args


# --- 3. Degenerate options ----------------------------------------------------------------------------------


def test_degenerate_options_are_refused(tiny_run, run, tmp_path, capsys):
    a, b = ckpts(tiny_run, run)
    fresh = tmp_path / "fresh"
    train = ["train", "--out", fresh, "--quiet", "--device", "cpu"]
    prune_to = ["prune", a, "--sparsity", "0.5", "--out", tmp_path / "p.pt"]
    cases = [
        (["interpolate", a, b, "--bn-batches", "0"], "--bn-batches must be positive, got 0"),
        (["interpolate", a, b, "--points", "1"], "--points must be at least 2"),
        (["interpolate", a, b, "--batch-size", "0"], "--batch-size must be positive"),
        (["interpolate", a, b, "--samples", "0"], "--samples must be positive"),
        (["hessian", a, "--top-k", "0"], "--top-k must be positive"),
        (["hessian", a, "--tol", "nan"], "--tol must be a finite number, got nan"),
        (["hessian", a, "--tol", "-1"], "--tol must be positive"),
        (["hessian", a, "--max-iter", "0"], "--max-iter must be positive"),
        (["surface", a, "--grid", "1"], "--grid must be at least 2"),
        (["surface", a, "--span", "1,1"], "--span must be increasing"),
        (["surface", a, "--span", "nan,1"], "--span must be a finite number"),
        (["surface", a, "--span", "-1"], "--span must be two comma-separated numbers"),
        (["analyze", run, "--points", "1"], "--points must be at least 2"),
        (["analyze", run, "--hessian-k", "-1"], "--hessian-k must be at least 0"),
        ([*prune_to, "--method", "snip", "--samples-per-class", "0"], "--samples-per-class must be positive"),
        (["prune", a, "--method", "magnitude", "--sparsity", "1", "--out", tmp_path / "p.pt"], "sparsity must be in"),
        (["prune", a, "--method", "magnitude", "--sparsity", "nan", "--out", tmp_path / "p.pt"], "finite number"),
        ([*train, "--lr", "nan"], "--lr must be a finite number, got nan"),
        ([*train, "--lr", "inf"], "--lr must be a finite number, got inf"),
        ([*train, "--lr", "0"], "--lr must be positive"),
        ([*train, "--epochs", "0"], "--epochs must be positive"),
        ([*train, "--batch-size", "0"], "--batch-size must be positive"),
        ([*train, "--prune", "snip", "--sparsity", "0.5", "--samples-per-class", "0"], "--samples-per-class must be"),
        ([*train, "--prune", "random", "--sparsity", "nan"], "--sparsity must be a finite number"),
        (["demo", "--out", fresh, "--cycles", "0"], "--cycles must be positive"),
        (["demo", "--out", fresh, "--points", "1"], "--points must be at least 2"),
    ]
    before = checksums(run, tmp_path)
    for args, pattern in cases:
        code, _out, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)
        assert checksums(run, tmp_path) == before and not fresh.exists(), args  # no run folder was created


def test_prune_refuses_bad_options_before_reading_the_checkpoint_or_data(tiny_run, tmp_path, capsys, monkeypatch):
    import training.checkpoint

    def never(*args, **kwargs):
        raise AssertionError("read before the options were checked")

    monkeypatch.setattr(training.checkpoint, "load_checkpoint", never)
    monkeypatch.setattr(training.checkpoint, "checkpoint_bundle", never)
    prune_to = ["prune", tiny_run.checkpoint(1), "--sparsity", "0.5", "--out", tmp_path / "p.pt"]
    for extra, pattern in (
        (["--method", "snip", "--samples-per-class", "0"], "--samples-per-class must be positive"),
        (["--method", "magnitude", "--samples-per-class", "4"], "pruning method magnitude has no option"),
    ):
        code, _out, err = run_cli([*prune_to, *extra], capsys)
        assert_one_line_error(code, err, pattern, extra)
    assert not (tmp_path / "p.pt").exists()


@pytest.mark.parametrize(
    "section, pattern",
    [
        ("analyze: {points: 1}", "analyze.points must be at least 2"),
        ("analyze: {hessian_k: -2}", "analyze.hessian_k must be at least 0"),
        ("analyze: {lmc: sideways}", "analyze.lmc must be one of"),
        ("analyze: {splits: [val]}", "analyze.splits must be a non-empty list"),
        ("analyze: {device: tpu}", "analyze.device must be auto, cpu, cuda or cuda:N"),
        ("executor: {timeout_min: 0}", "executor.timeout_min must be positive"),
        ("executor: {timeout_minutes: 5}", "unknown executor option timeout_minutes"),
        ("executor: {slurm: [gpu]}", "executor.slurm must map Slurm settings"),
    ],
)
def test_a_sweep_dry_run_validates_analyze_and_executor(tmp_path, capsys, section, pattern):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"out: {tmp_path / 'runs'}\nbase:\n  model: {{name: cnn1d, width: 8}}\ngrid:\n  seed: [0, 1]\n{section}\n"
    )
    before = checksums(tmp_path)
    code, _out, err = run_cli(["sweep", sweep, "--dry-run"], capsys)
    assert_one_line_error(code, err, pattern)
    assert checksums(tmp_path) == before and not (tmp_path / "runs").exists()


# --- 4. Exit 2 for every bad input, never "internal error" -------------------------------------------------


@pytest.mark.parametrize(
    "meta, pattern",
    [
        ({"format_version": "1"}, "meta format_version must be a positive integer, got '1'"),
        ({"num_classes": "10"}, "meta num_classes must be a positive integer"),
        ({"num_classes": 0}, "meta num_classes must be a positive integer"),
        ({"model_kwargs": [8]}, "meta model_kwargs must be a mapping"),
        ({"model": ""}, "meta model must be a non-empty string"),
        ({"dataset": 3}, "meta dataset must be a non-empty string"),
        ({"epoch": -1}, "meta epoch must be a non-negative integer"),
        ({"cycle": 1.5}, "meta cycle must be a non-negative integer"),
        ({"data_config": [1]}, "meta data_config must be a mapping"),
        ({"sparsity": 2.0}, r"meta sparsity must be a number in \[0, 1\]"),
        ({"model_kwargs": {"width": "wide"}}, "cannot build model cnn1d from its meta"),
    ],
)
def test_checkpoint_meta_of_wrong_types_exits_2(tiny_run, tmp_path, capsys, meta, pattern):
    bad = rewrite(tiny_run.checkpoint(1), tmp_path / "bad.pt", meta=meta)
    before = checksums(tmp_path)
    other = tiny_run.checkpoint(2)
    for args in (["interpolate", bad, other], ["hessian", bad], ["signs", other, bad]):
        code, _out, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)
    assert checksums(tmp_path) == before


def test_devices_and_data_that_do_not_fit_exit_2(tiny_run, capsys):
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    cases = [
        (["interpolate", a, b, "--device", "tpu"], "device 'tpu'; choose from: auto, cpu, cuda or cuda:N"),
        (["interpolate", a, b, "--device", "cuda:x"], "unknown (--)?device 'cuda:x'"),
        (["hessian", a, "--device", "mps"], "device 'mps'"),
        (
            ["interpolate", a, b, "--points", "2", "--data", "synthetic"],
            r"dataset synthetic has inputs of shape \(3, 32, 32\) but the model of \S+ takes \(1, 40\)",
        ),
        (["interpolate", a, b, "--data", "svhn"], "unknown dataset 'svhn'"),
    ]
    if not torch.cuda.is_available():
        cases.append((["interpolate", a, b, "--device", "cuda"], "no CUDA device is available"))
    for args, pattern in cases:
        code, _out, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)


def test_train_with_missing_data_names_the_package_and_creates_no_run_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["train", "--data", "fashion-mnist", "--data-root", tmp_path / "nope", "--out", out, "--quiet"]
    code, _out, err = run_cli(args, capsys)
    assert_one_line_error(code, err, r"data root .*nope does not exist .*apt-get install dataset-fashion-mnist", args)
    assert not out.exists() or not any(out.iterdir())  # no run folder holding only a lock file


def test_no_arguments_prints_the_help(capsys):
    code, out, err = run_cli([], capsys)
    assert code == 0 and "Usage: landscape" in out and "interpolate" in out
    assert "error" not in err


def test_warnings_do_not_precede_a_one_line_error(tiny_run, monkeypatch, capsys):
    import landscape.cli.analysis_commands as commands

    def warn_then_refuse(*args, **kwargs):
        warnings.warn("TypedStorage is deprecated", UserWarning, stacklevel=2)
        raise UserError("out refused")

    monkeypatch.setattr(commands, "check_output", warn_then_refuse)
    code, _out, err = run_cli(["interpolate", tiny_run.checkpoint(1), tiny_run.checkpoint(2)], capsys)
    assert_one_line_error(code, err, "^error: out refused$")


# --- 5. Batch analysis never passes silently over a gap -----------------------------------------------------


def test_analyze_reports_missing_checkpoints_and_failed_runs_and_goes_on(tiny_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    good, gap, broken = runs / "group" / "good", runs / "gap", runs / "group" / "deeper" / "broken"
    for folder in (good, gap, broken):
        shutil.copytree(tiny_run.run_dir, folder, ignore=shutil.ignore_patterns("analysis", ".lock"))
    rel = [tiny_run.checkpoint(k).relative_to(tiny_run.run_dir) for k in (1, 2)]
    (gap / rel[0]).unlink()
    weight = next(k for k, v in torch.load(tiny_run.checkpoint(2), weights_only=True)["model"].items() if v.dim() > 1)
    rewrite(broken / rel[1], broken / rel[1], tensor=weight)
    out = tmp_path / "analysis.nc"
    code, _out, err = run_cli(["analyze", runs, "--points", "2", "--no-signs", "--out", out, "--quiet"], capsys)
    assert code == 4, err  # written, but a script sees that a run failed
    assert err.strip().splitlines()[-1] == "error: 1 of 3 runs failed (listed above); exit code 4"
    ds = xr.load_dataset(out)
    by_run = {str(r): ds.sel(run=r) for r in ds["run"].values}
    assert set(by_run) == {"good", "gap", "broken"}  # found at any depth below runs/
    assert str(by_run["broken"]["status"].item()) == "failed"
    assert f"tensor {weight} has 1 NaN value" in str(by_run["broken"]["problem"].item())
    assert str(by_run["good"]["status"].item()) == "complete" and not str(by_run["good"]["problem"].item())
    assert f"missing {rel[0].as_posix()}" in str(by_run["gap"]["problem"].item())
    # consecutive LMC: the pieces on either side of the gap are NaN, never one piece bridging it
    gap_barriers = by_run["gap"]["error_barrier"].values.reshape(-1)
    good_barriers = by_run["good"]["error_barrier"].values.reshape(-1)
    assert np.isfinite(good_barriers).sum() == 2 and np.isfinite(gap_barriers).sum() == 0
    assert re.search(rf"^error: run broken: .*tensor {re.escape(weight)}", err, re.MULTILINE)
    assert re.search(rf"^note: run gap: missing {re.escape(rel[0].as_posix())}", err, re.MULTILINE)


def test_analyze_refuses_what_it_cannot_read(tiny_run, run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(run, corrupt)
    (corrupt / "manifest.json").write_text('{"status": "complete", "checkpoints": [')
    escaping = tmp_path / "escaping"
    shutil.copytree(run, escaping)
    (escaping / "manifest.json").write_text('{"checkpoints": [{"path": "../run/x.pt", "level": 0, "cycle": 1}]}')
    cases = [
        (["analyze", tmp_path / "nowhere"], "run folder not found"),
        (["analyze", tmp_path / "empty"], "holds no run folders"),
        (["analyze", corrupt], "manifest.json is not a readable JSON file"),
        (["analyze", escaping], "malformed checkpoint entry|leaves the run folder"),
        (["analyze", corrupt, escaping], "manifest.json is not a readable JSON file"),  # all fail: the first error
    ]
    before = checksums(tmp_path)
    for args, pattern in cases:
        code, _out, err = run_cli([*args, "--quiet"], capsys)
        assert_one_line_error(code, err, pattern, args)
    assert checksums(tmp_path) == before


def test_a_run_folder_given_twice_is_analysed_once(run, tmp_path, capsys):
    (tmp_path / "again").symlink_to(run)
    args = ["analyze", run, tmp_path / "again", "--lmc", "none", "--out", tmp_path / "a.nc", "--quiet"]
    code, _out, err = run_cli(args, capsys)
    assert code == 0, err
    assert xr.load_dataset(tmp_path / "a.nc").sizes["run"] == 1
    assert re.search(r"^note: \S*again was given twice \(as \S*run\), analysed once$", err, re.MULTILINE)


def test_analyze_never_drops_a_manifest_entry_silently(tiny_run, tmp_path):
    """A manifest entry that names no checkpoint of the run (".", "", "config.yaml"), a duplicate entry or
    an unknown status used to be skipped (one point fewer, the previous cycle's error reported as final)."""
    import json

    import landscape

    manifest = json.loads((tiny_run.run_dir / "manifest.json").read_text())
    cycle = next(i for i, e in enumerate(manifest["checkpoints"]) if e["path"].endswith("cycle_2.pt"))
    cases = {
        ".": "manifest entry '.' does not name a checkpoint of this run",
        "": "manifest entry '' does not name a checkpoint of this run",
        "config.yaml": "manifest entry 'config.yaml' does not name a checkpoint of this run",
        "duplicate": "manifest lists .* twice",
        "status": "manifest status 'finished' is not one of running, complete, diverged",
        # round two: a file that is not the entry's checkpoint, no checkpoints, a NUL, a huge cycle
        "copied": r"cycle_2.pt holds level, cycle, epoch \(0, 1, 2\) but the manifest lists it as \(0, 2, 4\)",
        "empty": "the manifest says complete but lists no checkpoints",
        "nul": "malformed checkpoint entry",
        "huge": "malformed checkpoint entry",
    }
    for case, message in cases.items():
        run = tmp_path / f"run-{len(case)}-{case.strip('.') or 'dot'}"
        shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("analysis", ".lock"))
        broken = json.loads(json.dumps(manifest))
        if case == "duplicate":
            broken["checkpoints"].append(dict(broken["checkpoints"][cycle]))
        elif case == "status":
            broken["status"] = "finished"
        elif case == "copied":  # cycle 1's file copied over cycle 2's
            shutil.copyfile(run / "cycle_1.pt", run / "cycle_2.pt")
        elif case == "empty":
            broken["checkpoints"] = []
        elif case == "nul":
            broken["checkpoints"][cycle]["path"] = "cycle_2\x00.pt"
        elif case == "huge":
            broken["checkpoints"][cycle]["cycle"] = 10**30
        else:
            broken["checkpoints"][cycle]["path"] = case
        (run / "manifest.json").write_text(json.dumps(broken))
        with pytest.raises(UserError, match=message):
            landscape.analyze([run], lmc="none", signs=False)


def test_options_that_would_do_nothing_and_unreadable_sweeps_are_refused(tiny_run, tmp_path, capsys):
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    (tmp_path / "sweep.bin").write_bytes(b"\xff\xfe\x00\x81binary")
    cases = [
        (["reproduce", "cyclic", "--jobs", "0"], r"^error: --jobs must be at least 1 .*got 0$"),
        (["reproduce", "cyclic", "--jobs", "-1"], r"^error: --jobs must be at least 1 .*got -1$"),
        (["sweep", tmp_path / "sweep.bin", "--dry-run"], r"sweep\.bin is not a text file \(a sweep is YAML\)$"),
        (["sweep", tmp_path, "--dry-run"], r"is a folder; give the sweep's YAML file$"),
        (["hessian", b, "--trace-method", "hutchpp"], r"^error: --trace-method does nothing without --trace$"),
        (["hessian", b, "--diag-method", "diag++"], r"^error: --diag-method does nothing without --diag$"),
        (["hessian", b, "--mc-samples", "4"], r"^error: --mc-samples is for --operator fisher-mc$"),
        (["interpolate", a, b, "--bn", "none", "--bn-batches", "2"], r"--bn-batches does nothing with --bn none$"),
        (["analyze", tiny_run.run_dir, "--vectors"], r"--vectors, --trace and --diag need --hessian-k$"),
    ]
    for args, pattern in cases:
        code, _, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)


def test_a_pyhessian_table_prints_no_product_count(tiny_run, capsys):
    code, out, err = run_cli(["hessian", tiny_run.checkpoint(), "--method", "pyhessian", "--subspace", "dense"], capsys)
    assert code == 0, err
    assert "-1 products" not in out and "eigenvalues" in out
    import subprocess
    import sys

    args = [sys.executable, "-m", "landscape.cli", "hessian", str(tiny_run.checkpoint()), "--method", "pyhessian"]
    done = subprocess.run([*args, "--subspace", "dense"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "create_graph" not in done.stderr, done.stderr  # torch's warning about
    # PyHessian's own backward call is not the user's business (pytest captures warnings: a real process)


def test_start_vectors_that_cannot_warm_start_are_refused(tiny_run, tmp_path, capsys):
    """NaN, zero, group-less, other-version and other-model vectors were silently replaced by a random
    start while the result said warm_start = 1 (another model's exited 1)."""
    ckpt = tiny_run.checkpoint()
    code, _, err = run_cli(["hessian", ckpt, "--top-k", "2", "--vectors", "--out", tmp_path / "h.nc"], capsys)
    assert code == 0, err
    good = torch.load(tmp_path / "h.vectors.pt", weights_only=True)
    code, _, err = run_cli(["hessian", ckpt, "--top-k", "2", "--start", tmp_path / "h.vectors.pt"], capsys)
    assert code == 0, err

    def variant(name, change):
        payload = torch.load(tmp_path / "h.vectors.pt", weights_only=True)
        change(payload)
        torch.save(payload, tmp_path / f"{name}.vectors.pt")
        return tmp_path / f"{name}.vectors.pt"

    first = next(iter(good["groups"]["all"]["vectors"]))
    cases = {
        "nan": (lambda p: p["groups"]["all"]["vectors"][first].fill_(float("nan")), "start vectors are NaN or zero"),
        "zeros": (lambda p: [t.zero_() for t in p["groups"]["all"]["vectors"].values()], "are NaN or zero"),
        "nogroups": (lambda p: p.update(groups={}), "holds no groups of Ritz vectors"),
        "version": (lambda p: p.update(version=7), "of version 7; this landscape reads 1"),
        "othergroup": (lambda p: p.update(groups={"conv1": p["groups"]["all"]}), "no vectors for group 'all'"),
        "othermodel": (lambda p: p["groups"]["all"].update(vectors={"net.w": torch.zeros(2, 3)}), "another model"),
        "othershape": (lambda p: p["groups"]["all"]["vectors"].update({first: torch.zeros(2, 1, 1)}), "another model"),
    }
    for name, (change, message) in cases.items():
        path = variant(name, change)
        code, _, err = run_cli(["hessian", ckpt, "--top-k", "2", "--start", path], capsys)
        assert_one_line_error(code, err, re.escape(message), name)


def test_sizes_that_would_run_for_ever_are_refused_before_any_work(tiny_run, capsys):
    import landscape

    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    for args, pattern in [
        (["interpolate", a, b, "--points", "2147483648"], r"--points must be at most 100001, got 2147483648$"),
        (["surface", b, "--grid", "100000"], r"--grid must be at most 1001, got 100000$"),
        (["curve", a, b, "--points", "1000000"], r"--points must be at most 100001, got 1000000$"),
        (["analyze", tiny_run.run_dir, "--points", "2147483648"], r"--points must be at most 100001"),
    ]:
        code, _, err = run_cli(args, capsys)
        assert_one_line_error(code, err, pattern, args)
    with pytest.raises(UserError, match=r"grid must be at most 1001, got 2147483648"):
        landscape.surface(b, [], grid=2**31)
    with pytest.raises(UserError, match=r"points must be at most 100001"):
        landscape.analyze([tiny_run.run_dir], points=2**31)


def test_samples_are_recorded_as_used_and_never_fewer_than_the_classes(tiny_run, tmp_path, capsys):
    """The audit: ``curve --samples 100000000`` recorded the number asked for, not the 1000 used, and
    ``--samples`` below the number of classes was called class-balanced."""
    a, b = tiny_run.checkpoint(1), tiny_run.checkpoint(2)
    out = tmp_path / "curve.nc"
    code, _out, err = run_cli(
        ["curve", a, b, "--epochs", "0", "--points", "2", "--samples", "100000000", "--out", out, "--quiet"], capsys
    )
    assert code == 0, err
    ds = xr.load_dataset(out)
    assert ds.attrs["samples"] == -1 and ds.attrs["samples_used"] == "test 1000"  # the whole test split
    code, _out, err = run_cli(
        ["interpolate", a, b, "--points", "2", "--samples", "50", "--split", "both", "--out", out, "--quiet"], capsys
    )
    assert code == 0, err
    ds = xr.load_dataset(out)
    assert ds.attrs["samples"] == 50 and ds.attrs["samples_used"] == "train 50, test 50"
    code, _out, err = run_cli(["interpolate", a, b, "--points", "2", "--samples", "5"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "samples 5 is below the 10 classes of mnist1d: a class-balanced subset needs at least one" in err


def test_a_huge_sweep_grid_says_its_size_first_and_needs_force(tmp_path, capsys):
    """The audit: a 10⁷-point grid with --dry-run printed nothing for minutes. Its size is printed before
    it is expanded, and above 10,000 points it needs --force."""
    from landscape.sweep import load_sweep

    sweep = tmp_path / "huge.yaml"
    values = ", ".join(str(i) for i in range(100))
    sweep.write_text(
        f"out: {tmp_path / 'runs'}\nbase: {{device: cpu}}\n"
        f"grid:\n  seed: [{values}]\n  data_seed: [{values}]\n  optim.lr: [{values}]\n  schedule.epochs: [1, 2]\n"
    )
    code, _out, err = run_cli(["sweep", sweep, "--dry-run"], capsys)  # expanding would take about half an hour
    assert code == 2 and err.splitlines()[0] == "grid: 2,000,000 points; expanding"
    assert "the grid has 2,000,000 points, more than 10,000; pass --force" in err.splitlines()[1]
    sizes = []
    small = tmp_path / "small.yaml"
    small.write_text(f"out: {tmp_path / 'runs'}\nbase: {{device: cpu}}\ngrid:\n  seed: [0, 1, 2]\n")
    assert len(load_sweep(small, announce=sizes.append).configs) == 3 and sizes == [3]
