"""Sweeps through submitit's local executor: a real grid, resubmission, a killed job, analysis."""

import json
import signal
import time

import pytest
import torch

from landscape.cli import main
from landscape.sweep import load_sweep, submit
from training.checkpoint import read_checkpoint
from training.errors import ConfigError

SWEEP = """
out: {out}
base:
  data: {{batch_size: 512}}
  model: {{name: cnn1d, width: 8}}
  schedule: {{name: one-cycle, epochs: {epochs}}}
  device: cpu
grid:
  mask.method: [random, magnitude]
  mask.sparsity: [0.5, 0.9]
  seed: [0, 1]
analyze: {{points: 3, lmc: init}}
"""


def write(tmp_path, epochs=1, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(SWEEP.format(out=tmp_path / "runs", epochs=epochs))
    return path


def test_expansion_and_validation(tmp_path):
    spec = load_sweep(write(tmp_path))
    assert len(spec.configs) == 8 and len({c.run_name for c in spec.configs}) == 8
    assert {(c.mask.method, c.mask.sparsity, c.seed) for c in spec.configs} == {
        (m, s, seed) for m in ("random", "magnitude") for s in (0.5, 0.9) for seed in (0, 1)
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  mask.sparsity: [0.5, 1.5]\nbase:\n  mask: {method: random}\n")
    with pytest.raises(ConfigError, match=r"grid point mask.sparsity=1.5: sparsity must be in \[0, 1\)"):
        load_sweep(bad)
    bad.write_text("grids: {}\n")
    with pytest.raises(ConfigError, match="unknown sweep key grids"):
        load_sweep(bad)


@pytest.mark.slow
def test_local_sweep_then_nothing_new_then_analysis(tmp_path, capsys):
    path = write(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "submitted 8 (dry run" in out and not (tmp_path / "runs").exists()
    report = submit(load_sweep(path), max_parallel=2)
    assert sorted(report.finished.values()) == ["complete"] * 8
    for name in report.finished:
        manifest = json.loads((tmp_path / "runs" / name / "manifest.json").read_text())
        assert manifest["status"] == "complete"
    again = submit(load_sweep(path), max_parallel=2, analyze=True)
    assert again.submitted == [] and set(again.before.values()) == {"complete"}
    import xarray as xr

    ds = xr.load_dataset(again.analysis)
    assert ds.sizes["run"] == 8 and set(ds["method"].values.tolist()) == {"random", "magnitude"}


@pytest.mark.slow
def test_killed_job_is_finished_on_resubmission(tmp_path):
    path = write(tmp_path, epochs=12)
    spec = load_sweep(path)
    spec.configs = spec.configs[:1]
    from landscape.sweep import TrainJob, make_executor
    from training.config import to_yaml

    ex = make_executor("local", spec.out / ".submitit", {}, 1)
    job = ex.submit(TrainJob(to_yaml(spec.configs[0]), str(spec.out)))
    run = spec.out / spec.configs[0].run_name
    start = time.time()
    while not (run / "resume.pt").exists() and time.time() - start < 120:
        time.sleep(0.05)
    job._process.send_signal(signal.SIGKILL)
    job._process.wait()
    assert json.loads((run / "manifest.json").read_text())["status"] == "running"
    report = submit(spec)
    assert report.before == {run.name: "interrupted"} and report.finished == {run.name: "complete"}
    # the resumed run equals an uninterrupted one
    from training.run import train

    ref = train(spec.configs[0], tmp_path / "ref", quiet=True)
    a, b = read_checkpoint(ref.checkpoint())["model"], read_checkpoint(run / "cycle_1.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
