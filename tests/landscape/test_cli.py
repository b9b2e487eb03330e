"""The CLI: exit codes, one-line errors without tracebacks, and the train/interpolate round trip."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr

from landscape.cli import main

TINY = [
    "--data",
    "mnist1d",
    "--model",
    "cnn1d",
    "--width",
    "8",
    "--prune",
    "random",
    "--sparsity",
    "0.8",
    "--schedule",
    "cyclic",
    "--cycles",
    "2",
    "--epochs",
    "1",
    "--batch-size",
    "512",
    "--device",
    "cpu",
    "--quiet",
]


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_train_then_interpolate(tmp_path, capsys):
    code, out, err = run_cli(["train", *TINY, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    assert run.startswith(str(tmp_path)) and "cnn1d-mnist1d-" in run
    nc = tmp_path / "lmc.nc"
    code, out, err = run_cli(
        [
            "interpolate",
            f"{run}/cycle_1.pt",
            f"{run}/cycle_2.pt",
            "--points",
            "3",
            "--split",
            "both",
            "--out",
            str(nc),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert "loss barrier" in out and "error barrier" in out and "bn=recalibrate" in out
    ds = xr.load_dataset(nc)
    assert ds["split"].values.tolist() == ["train", "test"] and ds.sizes["alpha"] == 3
    # re-running the same training command does nothing and prints where the results are
    code, out, err = run_cli(["train", *TINY, "--out", str(tmp_path)], capsys)
    assert code == 0 and out.strip() == run


def test_config_file_and_flag_override(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  name: mlp\n  width: 8\nschedule:\n  epochs: 1\nseed: 4\n")
    code, out, err = run_cli(
        ["train", "--config", str(cfg), "--seed", "5", "--device", "cpu", "--quiet", "--out", str(tmp_path)], capsys
    )
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    text = (tmp_path / run.rsplit("/", 1)[-1] / "config.yaml").read_text()
    assert "seed: 5" in text and "name: mlp" in text


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from tests.helpers import tiny_config
    from training.run import train

    out = tmp_path_factory.mktemp("cli_runs")
    import dataclasses

    one = dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1)
    a = train(tiny_config(schedule=one), out, quiet=True)
    b = train(tiny_config(schedule=one, model=dataclasses.replace(tiny_config().model, width=4)), out, quiet=True)
    return a.checkpoint(), b.checkpoint()


def _bad_inputs(tmp_path, two_runs):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(two_runs[0].read_bytes()[:500])
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("optim:\n  lr: fast\n")
    unknown_yaml = tmp_path / "unknown.yaml"
    unknown_yaml.write_text("epochz: 3\n")
    a, b = two_runs
    return [
        (["interpolate", str(tmp_path / "nope.pt"), str(a)], "no such checkpoint"),
        (["interpolate", str(text), str(a)], "not a torch checkpoint"),
        (["interpolate", str(trunc), str(a)], "truncated, corrupted"),
        (["interpolate", str(a), str(b)], "different architectures"),
        (["interpolate", str(a), str(a), "--points", "1"], "--points must be at least 2"),
        (["interpolate", str(a), str(a), "--split", "val"], "unknown split"),
        (["train", "--prune", "random", "--sparsity", "1.0"], r"sparsity must be in \[0, 1\)"),
        (["train", "--prune", "random", "--sparsity", "-0.5"], r"sparsity must be in \[0, 1\)"),
        (["train", "--model", "lenet5"], "unknown model 'lenet5'; choose from: cnn1d"),
        (["train", "--data", "svhn"], "unknown dataset 'svhn'; choose from"),
        (["train", "--prune", "snap", "--sparsity", "0.5"], "unknown pruning method 'snap'; choose from"),
        (["train", "--schedule", "warm"], "unknown schedule 'warm'; choose from"),
        (["train", "--config", str(bad_yaml)], "optim.lr: expected a number"),
        (["train", "--config", str(unknown_yaml)], "unknown config key epochz"),
        (["train", "--config", str(tmp_path / "missing.yaml")], "config file not found"),
        (
            ["train", "--data", "cifar10", "--model", "resnet20", "--data-root", str(tmp_path / "nodata")],
            "data root .* does not exist",
        ),
        (
            ["train", "--data", "cifar10", "--model", "resnet20", "--data-root", str(tmp_path)],
            "cifar10 not found: expected",
        ),
        (
            ["train", "--data", "synthetic", "--model", "mlp", "--config", str(tmp_path / "empty.yaml")],
            "--synthetic-train must be positive, got 0",
        ),
        (["train", "--epochs", "two"], "Invalid value for '--epochs'"),
    ]


def test_bad_input_table(tmp_path, two_runs, capsys):
    (tmp_path / "empty.yaml").write_text("data:\n  synthetic_train: 0\n")
    for args, message in _bad_inputs(tmp_path, two_runs):
        code, _out, err = run_cli([*args, "--quiet"] if args[0] == "train" else args, capsys)
        assert code == 2, (args, err)
        lines = [ln for ln in err.strip().splitlines() if ln]
        assert len(lines) == 1, (args, err)
        assert lines[0].startswith("error: "), err
        assert re.search(message, lines[0]), (message, lines[0])
        assert "Traceback" not in err


def test_real_process_exit_codes_and_debug(tmp_path):
    exe = [sys.executable, "-m", "landscape.cli"]
    proc = subprocess.run(
        [*exe, "interpolate", str(tmp_path / "a.pt"), str(tmp_path / "b.pt")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: no such checkpoint: {tmp_path / 'a.pt'}"
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [*exe, "interpolate", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--debug"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "CheckpointError" in proc.stderr


def test_divergence_exits_3(tmp_path, capsys):
    code, _out, err = run_cli(["train", *TINY, "--lr", "1e8", "--out", str(tmp_path)], capsys)
    assert code == 3
    assert err.strip().startswith("error: training diverged") and "Traceback" not in err


def test_help_lists_commands(capsys):
    code, out, _err = run_cli(["--help"], capsys)
    assert code == 0 and "train" in out and "interpolate" in out and "demo" in out


def test_recipe_from_the_cli(tmp_path, capsys):
    args = [a for a in TINY]
    args[args.index("--prune") + 1] = "none"
    args[args.index("--schedule") + 1] = "one-cycle"
    args[args.index("--cycles") + 1] = "1"
    code, out, err = run_cli(
        [
            "train",
            *args,
            "--recipe",
            "lrr",
            "--sparsity",
            "0.5",
            "--prune-fraction",
            "0.5",
            "--rewind-epoch",
            "1",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    import json
    from pathlib import Path

    manifest = json.loads((Path(run) / "manifest.json").read_text())
    assert manifest["recipe"] == "lrr" and {c["path"] for c in manifest["checkpoints"]} >= {
        "level_0/init.pt",
        "level_0/cycle_1.pt",
        "level_0/rewind.pt",
        "level_1/init.pt",
        "level_1/cycle_1.pt",
    }


@pytest.mark.parametrize("method", ["magnitude", "snip", "synflow", "random"])
def test_prune_command(tmp_path, two_runs, capsys, method):
    from training.checkpoint import read_checkpoint

    src = two_runs[0]
    out = tmp_path / "pruned.pt"
    extra = ["--synflow-rounds", "5"] if method == "synflow" else []
    code, stdout, err = run_cli(
        ["prune", str(src), "--method", method, "--sparsity", "0.95", "--out", str(out), *extra], capsys
    )
    assert code == 0, err
    a, b = read_checkpoint(src), read_checkpoint(out)
    kept = sum(int(m.sum()) for m in b["mask"].values())
    total = sum(m.numel() for m in b["mask"].values())
    assert b["meta"]["sparsity"] == pytest.approx(1 - kept / total)
    if method != "random":
        assert total - kept == round(0.95 * total)
    assert all(not torch.any(b["mask"][n] & ~a["mask"][n]) for n in a["mask"])  # the old mask is respected
    assert all(torch.all(b["model"][n][~m] == 0) for n, m in b["mask"].items())
    assert b["meta"]["pruned_from"]["method"] == method and "sparsity 0.95" in stdout


def test_prune_command_errors(tmp_path, two_runs, capsys):
    for args, message in [
        (
            ["prune", str(two_runs[0]), "--method", "magnitude", "--sparsity", "1.0", "--out", str(tmp_path / "x.pt")],
            r"sparsity must be in \[0, 1\)",
        ),
        (
            ["prune", str(two_runs[0]), "--method", "lamp", "--sparsity", "0.5", "--out", str(tmp_path / "x.pt")],
            "unknown pruning method 'lamp'",
        ),
        (["train", "--recipe", "lottery", "--quiet"], "unknown recipe 'lottery'"),
    ]:
        code, _out, err = run_cli(args, capsys)
        assert code == 2 and re.search(message, err) and "Traceback" not in err


def test_analysis_commands(tmp_path, tiny_run, capsys):
    import xarray as xr

    run = tiny_run.run_dir
    code, out, err = run_cli(
        [
            "hessian",
            str(run / "cycle_2.pt"),
            "--top-k",
            "2",
            "--trace",
            "--batch-size",
            "64",
            "--out",
            str(tmp_path / "h.nc"),
        ],
        capsys,
    )
    assert code == 0, err
    h = xr.load_dataset(tmp_path / "h.nc")
    assert h.sizes["k"] == 2 and "trace" in h and "mask subspace" in out
    code, out, err = run_cli(
        ["signs", str(run / "init.pt"), str(run / "cycle_2.pt"), "--out", str(tmp_path / "s.nc")], capsys
    )
    assert code == 0, err
    assert "total" in out and xr.load_dataset(tmp_path / "s.nc").sizes["layer"] == 5
    code, out, err = run_cli(
        [
            "surface",
            str(run / "cycle_2.pt"),
            "--grid",
            "3",
            "--directions",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "surf.nc"),
            "--figure",
            str(tmp_path / "surf.png"),
        ],
        capsys,
    )
    assert code == 0, err
    assert xr.load_dataset(tmp_path / "surf.nc")["loss"].dims == ("x",) and (tmp_path / "surf.png").exists()
    code, out, err = run_cli(
        [
            "surface",
            str(run / "init.pt"),
            str(run / "cycle_1.pt"),
            str(run / "cycle_2.pt"),
            "--grid",
            "3",
            "--quiet",
            "--figure",
            str(tmp_path / "plane.png"),
        ],
        capsys,
    )
    assert code == 0, err
    code, out, err = run_cli(
        ["analyze", str(run), "--points", "3", "--hessian-k", "1", "--quiet", "--out", str(tmp_path / "a.nc")], capsys
    )
    assert code == 0, err
    assert xr.load_dataset(tmp_path / "a.nc").sizes["point"] == 3 and run.name in out


def test_analysis_command_errors(tmp_path, tiny_run, capsys):
    run = tiny_run.run_dir
    for args, message in [
        (["hessian", str(run / "cycle_2.pt"), "--top-k", "100000"], "--top-k = 100000 is larger than the subspace"),
        (["hessian", str(run / "cycle_2.pt"), "--subspace", "sparse"], "unknown --subspace 'sparse'"),
        (["hessian", str(run / "cycle_2.pt"), "--top-k", "3", "--max-iter", "2"], "--max-iter = 2 is smaller than"),
        (["hessian", str(run / "cycle_2.pt"), "--method", "newton"], "unknown --method 'newton'"),
        (["surface", str(run / "cycle_2.pt"), str(run / "cycle_1.pt")], "one checkpoint or three"),
        (["surface", str(run / "cycle_2.pt"), "--span", "wide"], "--span must be two"),
        (["analyze", str(tmp_path)], "not a run folder"),
        (["analyze", str(run), "--lmc", "all"], "unknown --lmc mode"),
        (["signs", str(run / "cycle_2.pt"), str(tmp_path / "missing.pt")], "no such checkpoint"),
    ]:
        code, _out, err = run_cli(args, capsys)
        assert code == 2, (args, err)
        assert re.search(re.escape(message), err) and "Traceback" not in err, (args, err)


def test_hessian_says_which_eigenvalues_did_not_converge(tiny_run, capsys):
    """--max-iter 3 --top-k 3 used to print a wrong λ3 with a small "error bound" and no word."""
    ckpt = str(tiny_run.checkpoint())
    code, out, err = run_cli(["hessian", ckpt, "--top-k", "3", "--max-iter", "3", "--tol", "1e-6"], capsys)
    assert code == 0, err
    rows = [line for line in out.splitlines() if re.match(r"^\S*\s*│\s+\d\s+│", line)]
    assert len(rows) == 3 and all("not converged" in r for r in rows[1:]), out
    assert re.search(r"^not converged: [23] eigenvalue\(s\) after \d+ products \(--max-iter 3\)", out, re.MULTILINE)
    code, out, err = run_cli(["hessian", ckpt, "--top-k", "1", "--max-iter", "100"], capsys)
    assert code == 0 and "not converged" not in out and re.search(r"│\s+yes │", out), out


def test_interpolate_barrier_does_not_depend_on_batch_size(tmp_path, tiny_run, capsys):
    """The audit: ``--batch-size 7`` turned a connected pair into an unconnected one, because BatchNorm
    was recalibrated in evaluation-sized batches. Now the recalibration batches are the training batch
    size whatever --batch-size is, and the line printed says so."""
    run = tiny_run.run_dir
    curves = []
    for size in ("7", "1000"):
        nc = tmp_path / f"lmc-{size}.nc"
        args = ["interpolate", str(run / "cycle_1.pt"), str(run / "cycle_2.pt"), "--points", "3", "--quiet"]
        code, out, err = run_cli([*args, "--batch-size", size, "--out", str(nc)], capsys)
        assert code == 0, err
        assert "batches of 256: the training batch size" in out
        curves.append(xr.load_dataset(nc))
    assert curves[0].attrs["bn_batch_size"] == curves[1].attrs["bn_batch_size"] == 256
    assert float(curves[0]["error_barrier"][0]) == float(curves[1]["error_barrier"][0])
    assert abs(float(curves[0]["loss_barrier"][0]) - float(curves[1]["loss_barrier"][0])) < 1e-5
    code, out, err = run_cli([*args, "--bn-batch-size", "64"], capsys)
    assert code == 0 and "batches of 64: --bn-batch-size" in out, err
    code, out, err = run_cli([*args, "--bn", "none", "--bn-batch-size", "64"], capsys)
    assert code == 2 and "--bn-batch-size does nothing with --bn none" in err


def test_dynamic_recipes_from_the_cli_yaml_and_sweeps(tmp_path, capsys):
    """``landscape train --recipe rigl|set|gmp|acdc`` with flags, the same from a YAML file, and a sweep over
    the recipes (each run writes its mask history)."""
    import json

    base = ["--data", "mnist1d", "--model", "cnn1d", "--width", "8", "--epochs", "2", "--batch-size", "512",
            "--device", "cpu", "--quiet"]  # fmt: skip
    code, out, err = run_cli(
        ["train", *base, "--recipe", "rigl", "--prune", "random", "--distribution", "erk", "--sparsity", "0.8",
         "--dst-interval", "2", "--out", str(tmp_path)], capsys,
    )  # fmt: skip
    assert code == 0, err
    run = Path(out.strip().splitlines()[-1])
    assert json.loads((run / "mask_history.json").read_text())["updates"]
    cfg = tmp_path / "gmp.yaml"
    cfg.write_text("recipe: {name: gmp, gmp_interval: 2}\nmask: {sparsity: 0.9}\nmodel: {name: mlp, width: 8}\n"
                   "schedule: {epochs: 2}\ndata: {batch_size: 512}\ndevice: cpu\n")  # fmt: skip
    code, out, err = run_cli(["train", "--config", str(cfg), "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "name: gmp" in (Path(out.strip().splitlines()[-1]) / "config.yaml").read_text()
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"out: {tmp_path / 'sweep'}\nbase:\n  mask: {{sparsity: 0.9}}\n  model: {{name: mlp, width: 8}}\n"
        "  schedule: {epochs: 10}\n  data: {batch_size: 512}\n  device: cpu\n  recipe: {acdc_warmup: 0.1}\n"
        "grid:\n  recipe.name: [acdc]\n  seed: [0, 1]\n"
    )
    code, out, err = run_cli(["sweep", str(sweep)], capsys)
    assert code == 0, err
    runs = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 2 and all((p / "mask_history.json").exists() for p in runs)
