"""Sweeps: expand a grid of configs into runs and submit them through submitit (local or Slurm).

A sweep file is YAML with these keys:

```yaml
out: runs                      # parent folder of the run folders
base:                          # a TrainConfig mapping, as for `landscape train --config`
  model: {name: cnn1d}
  schedule: {name: cyclic, cycles: 4, epochs: 10}
grid:                          # dotted config keys -> lists of values; the runs are their product
  mask.method: [random, snip]
  mask.sparsity: [0.9, 0.95]
  seed: [0, 1, 2]
executor:                      # optional submitit settings
  timeout_min: 240
  slurm: {partition: gpu, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 32}
analyze: {lmc: consecutive, hessian_k: 1, points: 11}   # options for `--analyze`
```

Runs are named by their config hash (``<out>/<name>-<hash>``), so a run already complete is skipped,
an interrupted one resumes from its ``resume.pt``, and resubmitting a sweep runs only what is not
done. Jobs are ``submitit.helpers.Checkpointable``: on Slurm preemption or timeout they are requeued
and resume. The local executor runs ``runs_per_device`` jobs at a time on each GPU (or on the CPU), a
new one as soon as one ends; Slurm gets one array job with ``max_parallel`` tasks at a time, each
training ``runs_per_device`` runs per GPU it is given (:mod:`landscape.packing`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.packing import (
    JobsKilled,
    TrainGroupJob,
    cpu_count,
    device_slots,
    fill_slots,
    gpu_count,
    groups,
    stop_jobs,
)
from training.checks import AT_LEAST_ONE, COUNT, MAX_PATH_POINTS, Range, check_number
from training.config import TrainConfig, from_dict, replace_dotted, to_yaml
from training.errors import ConfigError, UserError
from training.fileio import read_json
from training.run import check_run_folder
from training.validate import validate
from training.yamlio import load_yaml_text

SWEEP_KEYS = ("out", "base", "grid", "executor", "analyze")
ANALYZE_KEYS = ("lmc", "hessian_k", "signs", "points", "splits", "hessian_batch_size", "data_root", "device")


@dataclass
class Sweep:
    """A parsed sweep file: the expanded configs and the options."""

    out: Path
    configs: list[TrainConfig]
    executor: dict[str, Any] = field(default_factory=dict)
    analyze: dict[str, Any] = field(default_factory=dict)


MAX_SWEEP_RUNS = 10_000  # grid points expanded without --force: validating each takes about a millisecond


def load_sweep(
    path: str | Path,
    out: str | Path | None = None,
    *,
    force: bool = False,
    announce: Callable[[int], None] | None = None,
) -> Sweep:
    """Read and expand a sweep file; unknown keys, wrong types and invalid configs are errors.
    ``announce`` gets the grid's number of points before it is expanded; a grid of more than
    :data:`MAX_SWEEP_RUNS` points is refused unless ``force``."""
    path = Path(path)
    try:
        spec = load_yaml_text(path.read_text(encoding="utf-8"), str(path)) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"sweep file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path} is a folder; give the sweep's YAML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a text file (a sweep is YAML)") from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"{path} must hold a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown sweep key {unknown[0]}; valid keys: {', '.join(SWEEP_KEYS)}")
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: grid must map dotted config keys to non-empty lists")
    size = math.prod(len(v) for v in grid.values())
    if announce is not None:
        announce(size)
    if size > MAX_SWEEP_RUNS and not force:
        raise ConfigError(
            f"{path}: the grid has {size:,} points, more than {MAX_SWEEP_RUNS:,}; pass --force (force=True) to "
            "expand it anyway"
        )
    analyze = _section(spec, "analyze", path)
    bad = sorted(set(analyze) - set(ANALYZE_KEYS))
    if bad:
        raise ConfigError(f"{path}: unknown analyze option {bad[0]}; valid: {', '.join(ANALYZE_KEYS)}")
    check_analyze(analyze, str(path))
    executor = _section(spec, "executor", path)
    check_executor(executor, str(path))
    try:
        base = from_dict(TrainConfig, spec.get("base") or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: base: {exc}") from exc
    configs = expand(base, grid, str(path))
    return Sweep(Path(out or spec.get("out") or "runs"), configs, executor, analyze)


def _section(spec: dict, name: str, path: Path) -> dict[str, Any]:
    value = spec.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a mapping, got {value!r}")
    return dict(value)


def check_analyze(options: Mapping[str, Any], where: str = "sweep") -> None:
    """Check a sweep's ``analyze`` options as :func:`landscape.analysis.analyze` would, before anything runs."""
    from landscape.analysis import LMC_MODES

    numbers = [("hessian_k", COUNT), ("points", Range(ge=2, integer=True)), ("points", MAX_PATH_POINTS),
               ("hessian_batch_size", AT_LEAST_ONE)]  # fmt: skip
    for key, valid in numbers:
        try:
            check_number(options.get(key), f"analyze.{key}", valid, error=ConfigError)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    if "lmc" in options and options["lmc"] not in LMC_MODES:
        raise ConfigError(f"{where}: analyze.lmc must be one of {', '.join(LMC_MODES)}, got {options['lmc']!r}")
    if "signs" in options and not isinstance(options["signs"], bool):
        raise ConfigError(f"{where}: analyze.signs must be true or false, got {options['signs']!r}")
    splits = options.get("splits", ["test"])
    if not isinstance(splits, list) or not splits or any(s not in ("train", "test") for s in splits):
        raise ConfigError(f"{where}: analyze.splits must be a non-empty list of train and test, got {splits!r}")
    for key in ("data_root", "device"):
        if options.get(key) is not None and not isinstance(options[key], str):
            raise ConfigError(f"{where}: analyze.{key} must be a string, got {options[key]!r}")
    device = options.get("device", "cpu")
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"{where}: analyze.device must be auto, cpu, cuda or cuda:N, got {device!r}")


def check_executor(options: Mapping[str, Any], where: str = "sweep") -> None:
    """Check a sweep's ``executor`` section: ``timeout_min`` (minutes, at least 1) and ``slurm`` (a mapping
    of Slurm settings passed to submitit)."""
    unknown = sorted(set(options) - {"timeout_min", "slurm"})
    if unknown:
        raise ConfigError(f"{where}: unknown executor option {unknown[0]}; valid: timeout_min, slurm")
    try:
        check_number(options.get("timeout_min"), "executor.timeout_min", AT_LEAST_ONE, error=ConfigError)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    slurm = options.get("slurm") or {}
    if not isinstance(slurm, dict) or not all(isinstance(k, str) for k in slurm):
        raise ConfigError(f"{where}: executor.slurm must map Slurm settings to values, got {slurm!r}")


def expand(base: TrainConfig, grid: Mapping[str, list], source: str = "sweep") -> list[TrainConfig]:
    """The product of the grid's values over ``base`` (keys in file order), validated and de-duplicated."""
    keys = list(grid)
    configs, seen = [], set()
    for values in itertools.product(*(grid[k] for k in keys)):
        try:
            cfg = validate(replace_dotted(base, dict(zip(keys, values, strict=True))))
        except ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
            raise ConfigError(f"{source}: grid point {where}: {exc}") from exc
        if cfg.run_name not in seen:
            seen.add(cfg.run_name)
            configs.append(cfg)
    return configs


def run_status(cfg: TrainConfig, out: Path) -> str:
    """``complete``, ``diverged``, ``interrupted`` (started, resumable) or ``new``; a folder whose results
    are not ``cfg``'s (:func:`training.run.check_run_folder`) is refused."""
    manifest = read_json(out / cfg.run_name / "manifest.json")
    if manifest is None:
        return "new"
    check_run_folder(out / cfg.run_name, manifest, cfg)  # another experiment's or thread count's: refused
    status = manifest.get("status")
    return status if status in ("complete", "diverged") else "interrupted"


class TrainJob:
    """A picklable training job for submitit; requeued jobs resume from the run's ``resume.pt``."""

    def __init__(self, config_yaml: str, out: str):
        self.config_yaml = config_yaml
        self.out = out  # the torch thread count is the config's (``threads``), never the slot's

    def __call__(self) -> str:
        from training.config import from_yaml_text
        from training.run import train

        return str(train(from_yaml_text(self.config_yaml), self.out, quiet=True).run_dir)

    def checkpoint(self) -> Any:
        """submitit calls this on preemption or timeout: requeue the same job (training resumes)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


class AnalyzeJob:
    """A picklable ``landscape analyze`` job writing the merged Dataset to ``out_file``.

    ``run_dirs`` are all the sweep's run folders; the job analyses those complete *when it runs*, so
    a job queued behind the training jobs (a Slurm dependency) covers the runs they finish.
    """

    def __init__(self, run_dirs: list[str], options: dict[str, Any], out_file: str):
        self.run_dirs, self.options, self.out_file = run_dirs, options, out_file

    def __call__(self) -> str:
        from landscape.analysis import analyze
        from landscape.results import save_dataset

        done = [d for d in self.run_dirs if (read_json(Path(d) / "manifest.json") or {}).get("status") == "complete"]
        if not done:
            raise UserError(f"no complete run to analyse among the sweep's {len(self.run_dirs)} run folders")
        opts = dict(self.options)
        if "splits" in opts:
            opts["splits"] = tuple(opts["splits"])
        save_dataset(analyze(done, **opts), self.out_file)
        return self.out_file

    def checkpoint(self) -> Any:
        """Requeue on preemption; finished pieces are cached, so the job resumes."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def make_executor(kind: str, folder: Path, options: Mapping[str, Any], max_parallel: int | None = 1) -> Any:
    """A submitit executor: ``local`` or ``slurm`` (``timeout_min`` and ``slurm: {...}`` options).
    Slurm runs at most ``max_parallel`` array tasks at once (default 1)."""
    import submitit

    if kind not in ("local", "slurm"):
        raise UserError(f"unknown executor {kind!r}; choose from: local, slurm")
    params: dict[str, Any] = {"timeout_min": int(options.get("timeout_min", 240))}
    if kind == "local":  # submitit's own class: its per-job visible_gpus pins each job to a slot's GPU
        local = submitit.LocalExecutor(folder=str(folder))
        local.update_parameters(**params)
        return local
    executor = submitit.AutoExecutor(folder=str(folder), cluster=kind)
    if kind == "slurm":
        slurm = dict(options.get("slurm") or {})
        params.update(
            {
                (
                    "slurm_" + k
                    if not k.startswith("slurm_")
                    and k not in ("gpus_per_node", "cpus_per_task", "mem_gb", "nodes", "tasks_per_node")
                    else k
                ): v
                for k, v in slurm.items()
            }
        )
        params["slurm_array_parallelism"] = 1 if max_parallel is None else max_parallel
    executor.update_parameters(**params)
    return executor


@dataclass
class SweepReport:
    """What a submission did: run names by status before submitting, and the outcome of each job."""

    out: Path
    before: dict[str, str]
    submitted: list[str]
    finished: dict[str, str] = field(default_factory=dict)
    analysis: Path | None = None  # the analysis file written (when the analysis ran to completion here)
    analysis_job: str | None = None  # the queued Slurm analysis job, with ``--no-wait``


def submit(
    sweep: Sweep,
    executor: str = "local",
    max_parallel: int | None = None,
    dry_run: bool = False,
    analyze: bool = False,
    wait: bool = True,
    runs_per_device: int = 1,
) -> SweepReport:
    """Submit the runs that are not complete (diverged runs are not retried); optionally analyse all
    complete runs afterwards. With ``wait`` (always for the local executor) the jobs' outcomes are
    collected; a failed job is reported, not raised. On Slurm without ``wait``, the analysis job is
    queued with a dependency on the training jobs (it starts once they have all ended) and analyses
    the runs complete by then; :attr:`SweepReport.analysis_job` is its job id.

    ``runs_per_device`` jobs share each GPU (see :mod:`landscape.packing`). ``max_parallel``: local, the
    number of jobs at once, spread over the GPUs (default: ``runs_per_device`` per GPU, or on the CPU);
    Slurm, the array tasks at once (default 1)."""
    if executor not in ("local", "slurm"):
        raise UserError(f"unknown executor {executor!r}; choose from: local, slurm", param="executor")
    check_executor(sweep.executor)
    check_analyze(sweep.analyze)
    slots = device_slots(runs_per_device, gpu_count(), max_parallel, cpu_count())  # checks both numbers
    out = sweep.out
    before = {cfg.run_name: run_status(cfg, out) for cfg in sweep.configs}
    todo = [cfg for cfg in sweep.configs if before[cfg.run_name] in ("new", "interrupted")]
    report = SweepReport(out, before, [cfg.run_name for cfg in todo])
    if dry_run:
        return report
    folder = out / ".submitit"
    ex = make_executor(executor, folder, sweep.executor, max_parallel)
    jobs = [TrainJob(to_yaml(cfg), str(out)) for cfg in todo]
    names = [cfg.run_name for cfg in todo]
    submitted: list[Any] = []
    if executor == "slurm":
        batches = [[name] for name in names]
        if runs_per_device > 1:  # each array task trains runs_per_device runs per GPU it is given
            per_task = runs_per_device * max(1, int((sweep.executor.get("slurm") or {}).get("gpus_per_node") or 1))
            batches = groups(names, per_task)
            yamls = dict(zip(names, (job.config_yaml for job in jobs), strict=True))
            jobs = [TrainGroupJob([(n, yamls[n]) for n in batch], str(out), runs_per_device) for batch in batches]
        if jobs:
            with ex.batch():  # one Slurm array; each element keeps its requeue (checkpoint) hook
                submitted = [ex.submit(job) for job in jobs]
        if wait:
            for batch, job in zip(batches, submitted, strict=True):
                report.finished.update(
                    _group_outcomes(job, batch) if runs_per_device > 1 else {batch[0]: _outcome(job)}
                )
    else:  # local: one job per free slot (runs_per_device per GPU, or on the CPU), refilled as jobs end
        started: list[Any] = []

        def start(job: TrainJob, slot: Any) -> Any:
            ex.update_parameters(**slot.local_parameters())
            started.append(ex.submit(job))
            return started[-1]

        try:
            for name, job in zip(names, fill_slots(jobs, slots, start, lambda j: j.done()), strict=True):
                report.finished[name] = _outcome(job)
        # Ctrl-C, or SIGTERM (the CLI turns it into KeyboardInterrupt): no worker outlives us
        except BaseException as exc:
            killed = stop_jobs(started)
            if killed and isinstance(exc, KeyboardInterrupt):
                raise JobsKilled(killed) from exc
            raise
        ex.update_parameters(gpus_per_node=gpu_count(), visible_gpus=())  # the analysis job sees every GPU
    if analyze:
        run_dirs = [str(out / cfg.run_name) for cfg in sweep.configs]
        pending = executor == "slurm" and not wait and bool(submitted)
        if pending or any(run_status(cfg, out) == "complete" for cfg in sweep.configs):
            target = out / "sweep-analysis.nc"
            if pending:
                # Not waiting: the analysis job must wait for the training array. ``afterany`` rather than
                # ``afterok``: a diverged run fails its job, and the analysis still covers the others.
                ex.update_parameters(slurm_dependency=slurm_dependency(submitted))
            job = ex.submit(AnalyzeJob(run_dirs, sweep.analyze, str(target)))
            if executor == "slurm" and not wait:
                report.analysis_job = str(job.job_id)
            else:
                outcome = _outcome(job)
                if outcome != "complete":
                    raise UserError(f"analysis job failed: {outcome}")
                report.analysis = target
    return report


def slurm_dependency(jobs: list[Any]) -> str:
    """``afterany:<id>[:<id>...]``: start after every job of ``jobs`` has ended (array ids ``A_i`` -> ``A``)."""
    ids = dict.fromkeys(str(job.job_id).split("_")[0] for job in jobs)
    return "afterany:" + ":".join(ids)


def _group_outcomes(job: Any, names: list[str]) -> dict[str, str]:
    """Outcomes of the runs ``names`` of one :class:`TrainGroupJob` (all failed if the task itself failed)."""
    try:
        return dict(job.result())
    except Exception:
        return dict.fromkeys(names, _outcome(job))


def _outcome(job: Any) -> str:
    try:
        job.result()
        return "complete"
    except Exception as exc:  # submitit re-raises the job's exception with its traceback as text
        text = str(exc)
        return (
            "diverged" if "DivergedError" in text or "diverged" in text else f"failed: {text.strip().splitlines()[-1]}"
        )
