"""Reliability with real processes: SIGKILL and resume, concurrent writers, unwritable folders,
no network, and the bad-input table."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import xarray as xr

from landscape.cli import main
from training.checkpoint import read_checkpoint
from training.config import from_yaml_text

TRAIN = [
    "train",
    "--data",
    "mnist1d",
    "--model",
    "cnn1d",
    "--width",
    "16",
    "--prune",
    "random",
    "--sparsity",
    "0.8",
    "--schedule",
    "cyclic",
    "--cycles",
    "3",
    "--epochs",
    "2",
    "--batch-size",
    "128",
    "--device",
    "cpu",
    "--seed",
    "5",
    "--quiet",
]
CLI = [sys.executable, "-m", "landscape.cli"]


def _env(tmp_path):
    return {**os.environ, "CI": "1", "LANDSCAPE_CACHE": os.environ["LANDSCAPE_CACHE"]}


def _states_equal(a: Path, b: Path) -> bool:
    sa, sb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _run_dir(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir())


@pytest.mark.slow
def test_sigkill_at_random_points_resumes_bitwise(tmp_path):
    ref = subprocess.run(
        [*CLI, *TRAIN, "--out", str(tmp_path / "ref")], env=_env(tmp_path), check=True, capture_output=True, text=True
    )
    ref_dir = Path(ref.stdout.strip().splitlines()[-1])
    rng = random.Random(0)
    out = tmp_path / "killed"
    kills = 0
    for _attempt in range(40):
        proc = subprocess.Popen(
            [*CLI, *TRAIN, "--out", str(out)], env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # wait until training has started (a resume file or a new epoch), then kill at a random moment
        start = time.time()
        while proc.poll() is None and time.time() - start < 60:
            if out.exists() and any(out.glob("*/init.pt")):
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            proc.wait()
        if kills >= 6:
            break
    final = subprocess.run(
        [*CLI, *TRAIN, "--out", str(out)], env=_env(tmp_path), check=True, capture_output=True, text=True
    )
    run_dir = Path(final.stdout.strip().splitlines()[-1])
    assert kills >= 5
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    for name in ("init.pt", "cycle_1.pt", "cycle_2.pt", "cycle_3.pt"):
        assert _states_equal(ref_dir / name, run_dir / name), name
    xr.testing.assert_identical(xr.load_dataset(ref_dir / "metrics.nc"), xr.load_dataset(run_dir / "metrics.nc"))
    assert not list(run_dir.glob(".*.tmp"))  # no partial file left behind as a checkpoint


@pytest.mark.slow
def test_concurrent_writers_of_one_run(tmp_path):
    procs = [
        subprocess.Popen(
            [*CLI, *TRAIN, "--out", str(tmp_path / "shared")],
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    run_dir = _run_dir(tmp_path / "shared")
    ref = subprocess.run(
        [*CLI, *TRAIN, "--out", str(tmp_path / "ref")], env=_env(tmp_path), check=True, capture_output=True, text=True
    )
    ref_dir = Path(ref.stdout.strip().splitlines()[-1])
    assert _states_equal(ref_dir / "cycle_3.pt", run_dir / "cycle_3.pt")
    # both analysing the same run folder at once is safe too (idempotent atomic cache writes)
    procs = [
        subprocess.Popen(
            [*CLI, "analyze", str(run_dir), "--points", "3", "--quiet", "--out", str(tmp_path / f"a{i}.nc")],
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a0, a1 = (xr.load_dataset(tmp_path / f"a{i}.nc") for i in range(2))
    xr.testing.assert_identical(a0.drop_attrs(), a1.drop_attrs())


@pytest.mark.slow
def test_killed_analyze_loses_at_most_the_item_in_progress(tmp_path):
    run = subprocess.run(
        [*CLI, *TRAIN, "--out", str(tmp_path / "runs")], env=_env(tmp_path), check=True, capture_output=True, text=True
    )
    run_dir = Path(run.stdout.strip().splitlines()[-1])
    args = [*CLI, "analyze", str(run_dir), "--points", "5", "--hessian-k", "1", "--quiet"]
    proc = subprocess.Popen([*args, "--out", str(tmp_path / "partial.nc")], env=_env(tmp_path))
    start = time.time()
    while (
        time.time() - start < 120
        and len(list((run_dir / "analysis").glob("*.nc")) if (run_dir / "analysis").exists() else []) < 3
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (run_dir / "analysis").glob("*.nc")}
    assert done_before
    for p in (run_dir / "analysis").glob("*.nc"):  # a kill may leave a .tmp, but every result file is whole
        xr.load_dataset(p)
    subprocess.run([*args, "--out", str(tmp_path / "resumed.nc")], env=_env(tmp_path), check=True)
    resumed = xr.load_dataset(tmp_path / "resumed.nc")
    assert resumed.attrs["cache_hits"] >= len(done_before)  # nothing finished before the kill was redone
    fresh_dir = tmp_path / "copy"
    import shutil

    shutil.copytree(run_dir, fresh_dir, ignore=shutil.ignore_patterns("analysis"))
    subprocess.run(
        [
            *CLI,
            "analyze",
            str(fresh_dir),
            "--points",
            "5",
            "--hessian-k",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "fresh.nc"),
        ],
        env=_env(tmp_path),
        check=True,
    )
    fresh = xr.load_dataset(tmp_path / "fresh.nc")
    for var in ("error_barrier", "flip_vs_prev", "eigenvalue"):
        assert resumed[var].values.tobytes() == fresh[var].values.tobytes(), var


def test_unwritable_output_keeps_existing_files(tmp_path, tiny_run, capsys, monkeypatch):
    target = tmp_path / "lmc.nc"
    target.write_bytes(b"previous results")

    def refuse(src, dst):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "interpolate",
                str(tiny_run.checkpoint(1)),
                str(tiny_run.checkpoint(2)),
                "--points",
                "2",
                "--out",
                str(target),
                "--quiet",
            ]
        )
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.strip() == f"error: cannot write {target}: Read-only file system"
    assert target.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmc.nc"]


def test_unwritable_run_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN, "--out", str(tmp_path / "file")])
    assert exc.value.code == 2 and "cannot write the run folder" in capsys.readouterr().err


def test_run_name_cannot_escape(tmp_path):
    from training.config import TrainConfig
    from training.errors import ConfigError
    from training.validate import validate

    for bad in ("../evil", "a/b", ".."):
        with pytest.raises(ConfigError, match="plain folder name"):
            validate(from_yaml_text(f"name: '{bad}'\n", TrainConfig))


def test_no_network_access(tmp_path, monkeypatch):
    """Training (MNIST-1D generated from scratch), analysis and the demo never open a connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "empty-cache"))  # force offline generation
    from landscape.demo import run_demo

    run_demo(tmp_path / "demo", cycles=2, epochs=1, points=2, device="cpu", quiet=True)
    assert list((tmp_path / "empty-cache").glob("mnist1d-*.npz"))


def test_bad_input_table_masks_of_different_parameters(tmp_path, capsys):
    """Same architecture, masks over different parameter sets (last layer kept dense in one)."""
    outs = []
    for extra in ([], ["--keep-last-dense"]):
        with pytest.raises(SystemExit):
            main([*TRAIN, "--cycles", "1", "--epochs", "1", "--out", str(tmp_path), *extra])
        outs.append(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    for cmd in (["interpolate"], ["signs"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, str(outs[0] / "cycle_1.pt"), str(outs[1] / "cycle_1.pt")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "different mask entries" in err and "Traceback" not in err
