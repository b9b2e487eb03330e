"""Sweeps through submitit's local executor: a real grid, resubmission, a killed job, analysis."""

import dataclasses
import json
import os
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
    with pytest.raises(ConfigError, match=r"grid point mask.sparsity=1.5: mask.sparsity must be in \[0, 1\)"):
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


FAKE_SBATCH = """#!/bin/sh
# Records the script it was given and answers as sbatch does; job ids count up from 4242.
n=$(ls "{record}" | wc -l)
cp "$1" "{record}/$n.sh"
echo "Submitted batch job $((4242 + n))"
"""


def _fake_slurm(tmp_path, monkeypatch):
    """``srun`` and ``sbatch`` stand-ins on PATH: submitit's real Slurm executor writes its sbatch scripts,
    which the fake records instead of queueing."""
    bin_dir, record = tmp_path / "bin", tmp_path / "sbatch-scripts"
    bin_dir.mkdir()
    record.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(record=record))
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return record


def test_slurm_no_wait_analysis_waits_for_the_array_and_covers_every_run(tmp_path, monkeypatch):
    import pickle

    record = _fake_slurm(tmp_path, monkeypatch)
    spec = load_sweep(write(tmp_path))
    report = submit(spec, executor="slurm", max_parallel=3, analyze=True, wait=False)
    scripts = [(record / f"{i}.sh").read_text() for i in range(len(list(record.iterdir())))]
    assert len(scripts) == 2  # the training array, then the analysis
    assert "#SBATCH --array=0-7%3" in scripts[0] and "--dependency" not in scripts[0]
    assert "#SBATCH --dependency=afterany:4242" in scripts[1] and "--array" not in scripts[1]
    assert report.analysis_job == "4243" and report.analysis is None
    # The analysis job is given every run of the sweep, not only those complete at submission (none here).
    with open(spec.out / ".submitit" / "4243_submitted.pkl", "rb") as fh:
        job = pickle.load(fh).function
    assert sorted(job.run_dirs) == sorted(str(spec.out / cfg.run_name) for cfg in spec.configs)


def test_analyze_job_analyses_only_the_runs_complete_when_it_runs(tmp_path, tiny_run):
    from landscape.sweep import AnalyzeJob
    from training.errors import UserError

    missing = tmp_path / "not-started"
    with pytest.raises(UserError, match="no complete run to analyse among the sweep's 1 run folders"):
        AnalyzeJob([str(missing)], {}, str(tmp_path / "a.nc"))()
    options = {"points": 3, "lmc": "init", "cache": False}  # no cache files in the shared run
    out = AnalyzeJob([str(missing), str(tiny_run.run_dir)], options, str(tmp_path / "a.nc"))()
    import xarray as xr

    ds = xr.load_dataset(out)
    assert ds.sizes["run"] == 1 and ds["status"].values.tolist() == ["complete"]


def test_slurm_no_wait_with_nothing_to_train_queues_the_analysis_and_returns(tmp_path, monkeypatch):
    record = _fake_slurm(tmp_path, monkeypatch)
    spec = load_sweep(write(tmp_path))
    for cfg in spec.configs:  # every run already complete
        (spec.out / cfg.run_name).mkdir(parents=True)
        (spec.out / cfg.run_name / "manifest.json").write_text(json.dumps({"status": "complete", "threads": 1}))
    report = submit(spec, executor="slurm", analyze=True, wait=False)
    assert report.submitted == [] and report.analysis_job == "4242" and report.analysis is None
    assert [p.name for p in record.iterdir()] == ["0.sh"]
    script = (record / "0.sh").read_text()
    assert "--dependency" not in script and "--array" not in script


# --------------------------------------------------------------------------- several runs per device


def test_device_slots_share_gpus_round_robin_and_cores_equally():
    from landscape.packing import Slot, device_slots
    from training.errors import UserError

    assert device_slots(2, 0, cpus=2) == [Slot(None, 1), Slot(None, 1)]  # no GPU: two jobs on the CPU
    slots = device_slots(2, 3, cpus=12)
    assert [s.gpu for s in slots] == [0, 1, 2, 0, 1, 2] and {s.threads for s in slots} == {2}
    assert [s.gpu for s in device_slots(2, 3, max_parallel=4, cpus=12)] == [0, 1, 2, 0]
    assert slots[0].local_parameters() == {"gpus_per_node": 1, "visible_gpus": [0]}
    assert Slot(None, 1).local_parameters() == {"gpus_per_node": 0, "visible_gpus": ()}
    with pytest.raises(UserError, match="--runs-per-device must be at least 1"):
        device_slots(0, 1)
    with pytest.raises(UserError, match="--max-parallel must be at least 1"):
        device_slots(1, 1, max_parallel=0)


def test_fill_slots_starts_a_task_as_soon_as_a_slot_frees():
    from landscape.packing import device_slots, fill_slots

    clock = {"t": 0}
    running: list[dict] = []
    log = []

    def start(task, slot):
        handle = {"task": task, "slot": slot, "ends": clock["t"] + task}
        running.append(handle)
        log.append((clock["t"], task, len(running)))
        return handle

    def done(handle):
        clock["t"] += 1  # every poll advances a fake clock
        finished = handle["ends"] <= clock["t"]
        if finished and handle in running:
            running.remove(handle)
        return finished

    handles = fill_slots([5, 1, 1, 1, 3], device_slots(2, 0), start, done, poll_s=0)
    assert [h["task"] for h in handles] == [5, 1, 1, 1, 3]
    assert max(n for _, _, n in log) == 2  # never more than two at once
    assert [task for _, task, _ in log] == [5, 1, 1, 1, 3]  # started in order, the short ones beside the long one
    assert log[1][0] == 0 and log[2][0] > 0


@pytest.mark.slow
def test_local_sweep_runs_two_jobs_per_device_at_once(tmp_path):
    import pickle

    spec = load_sweep(write(tmp_path, epochs=4))
    spec.configs = spec.configs[:4]
    report = submit(spec, runs_per_device=2)
    assert sorted(report.finished.values()) == ["complete"] * 4
    # that two run at once is fill_slots' behaviour (tested above without timing); here, every job trained
    # with the config's thread count, not its slot's share of the cores, and the manifest records it
    jobs = [pickle.loads(p.read_bytes()).function for p in (spec.out / ".submitit").glob("*_submitted.pkl")]
    assert len(jobs) == 4 and not any(hasattr(job, "threads") for job in jobs)
    manifests = [json.loads((spec.out / cfg.run_name / "manifest.json").read_text()) for cfg in spec.configs]
    assert [m["threads"] for m in manifests] == [1] * 4


def test_slurm_packs_runs_per_gpu_into_each_array_task(tmp_path, monkeypatch):
    import pickle

    from landscape.packing import TrainGroupJob

    record = _fake_slurm(tmp_path, monkeypatch)
    spec = load_sweep(write(tmp_path))
    report = submit(spec, executor="slurm", max_parallel=2, wait=False, runs_per_device=2)
    assert len(report.submitted) == 8
    script = (record / "0.sh").read_text()
    assert "#SBATCH --array=0-3%2" in script  # 8 runs, 2 per task (one GPU per task by default)
    tasks = [pickle.loads(p.read_bytes()).function for p in (spec.out / ".submitit").glob("*_submitted.pkl")]
    assert all(isinstance(t, TrainGroupJob) and t.runs_per_device == 2 for t in tasks)
    assert sorted(n for t in tasks for n, _ in t.configs) == sorted(cfg.run_name for cfg in spec.configs)
    spec.executor = {"slurm": {"gpus_per_node": 2}}  # two GPUs per task: four runs each
    spec.out = tmp_path / "runs2"
    submit(spec, executor="slurm", max_parallel=2, wait=False, runs_per_device=2)
    assert "#SBATCH --array=0-1%2" in (record / "1.sh").read_text()


@pytest.mark.slow
def test_group_job_trains_its_runs_side_by_side_and_reports_each(tmp_path):
    from landscape.packing import TrainGroupJob
    from training.config import to_yaml

    spec = load_sweep(write(tmp_path))
    good = spec.configs[:2]
    bad = dataclasses.replace(good[0], data=dataclasses.replace(good[0].data, name="cifar10"))
    configs = [(cfg.run_name, to_yaml(cfg)) for cfg in [*good, bad]]
    outcomes = TrainGroupJob(configs, str(spec.out), runs_per_device=2)()
    assert [outcomes[cfg.run_name] for cfg in good] == ["complete", "complete"]
    assert outcomes[bad.run_name] == "failed: error: dataset cifar10 needs --data-root DIR (nothing is downloaded)"
    for cfg in good:
        assert json.loads((spec.out / cfg.run_name / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_sigterm_to_a_local_sweep_stops_its_workers_and_waits(tmp_path):
    """The audit: SIGTERM to ``landscape sweep --executor local`` left its submitit worker training, with
    parent 1. Now the sweep stops its jobs, waits for them, and exits 130 saying so: once it has exited,
    nothing holds a run folder's lock (training holds it while it trains)."""
    import subprocess
    import sys

    from filelock import FileLock

    path = write(tmp_path, epochs=2000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "landscape.cli", "sweep", str(path), "--max-parallel", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/init.pt")) and time.monotonic() < deadline:  # a worker is training
        time.sleep(0.2)
    assert list(runs.glob("*/init.pt")), proc.stderr.read() if proc.poll() is not None else "no worker started"
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # failed: do not leave it running
            proc.kill()
    assert proc.returncode == 130, err
    # they end when asked ("have ended") or, if not within 60 s (seen under the full suite's load), are
    # terminated and named ("were killed (pids ...)"); either way nothing may hold a run's lock afterwards
    assert "interrupted: the sweep's local training jobs were stopped" in err
    for folder in (p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        lock = FileLock(folder / ".lock")
        lock.acquire(timeout=0)  # raises Timeout if a worker were still training this run
        lock.release()
        assert json.loads((folder / "manifest.json").read_text())["status"] == "running"  # resumable


def test_jobs_that_do_not_end_when_asked_are_terminated_then_killed():
    """``stop_jobs``: SIGINT through submitit's ``cancel``; a job still running at the deadline gets SIGTERM,
    then SIGKILL, and its process id is returned (the sweep then says so instead of "have ended")."""
    import signal as signals

    from landscape.packing import stop_jobs

    class Process:
        def __init__(self, pid, dies_on):
            self.pid, self.dies_on, self.signals, self.alive = pid, dies_on, [], True

        def poll(self):
            return None if self.alive else 0

        def send_signal(self, sig):
            self.signals.append(sig)
            self.alive = self.alive and sig not in self.dies_on

    class Job:
        def __init__(self, pid, dies_on):
            self._process = Process(pid, dies_on)

        def done(self):
            return not self._process.alive

        def cancel(self):
            self._process.send_signal(signals.SIGINT)

    polite, stubborn, deaf = Job(11, {signals.SIGINT}), Job(12, {signals.SIGTERM}), Job(13, {signals.SIGKILL})
    killed = stop_jobs([polite, stubborn, deaf], timeout_s=0.2, kill_after_s=0.2)
    assert killed == [12, 13]
    assert polite._process.signals == [signals.SIGINT]
    assert stubborn._process.signals == [signals.SIGINT, signals.SIGTERM]
    assert deaf._process.signals == [signals.SIGINT, signals.SIGTERM, signals.SIGKILL]
    assert stop_jobs([Job(14, {signals.SIGINT})], timeout_s=0.2) == []
