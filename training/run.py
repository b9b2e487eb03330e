"""Running a config: :func:`train` resolves the device, takes the run folder's lock, skips a complete
run or resumes an interrupted one, runs the config's recipe and writes the manifest.

The run folder is ``<out>/<name>-<hash>/`` with ``config.yaml``, ``manifest.json`` (status:
running, complete or diverged; every checkpoint with its level, cycle, epoch and sparsity) and the
stages' files (see :mod:`training.trainer`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from filelock import FileLock, Timeout

from training import __version__
from training.config import TrainConfig, to_yaml
from training.data import DataBundle, load_data
from training.distributed import Distributed
from training.environment import environment
from training.errors import DivergedError, UserError
from training.evaluate import resolve_device
from training.fileio import atomic_netcdf, atomic_write_json, atomic_write_text, read_json
from training.outputs import run_folder_of
from training.recipes import RECIPES, semantics_version
from training.trainer import StageResult, Trainer
from training.validate import validate


@dataclass
class RunResult:
    """A finished run: its folder, config, metrics and stages (``[(folder, level, cycles)]``)."""

    run_dir: Path
    config: TrainConfig
    metrics: xr.Dataset
    stages: list[dict[str, Any]] = field(default_factory=list)
    skipped: bool = False

    def checkpoint(self, cycle: int | None = None, level: int | None = None) -> Path:
        """Path of ``cycle_<k>.pt`` of a stage (``init.pt`` for cycle 0). Defaults: the last level and
        its last cycle."""
        stage = self.stages[-1] if level is None else next(s for s in self.stages if s["level"] == level)
        k = stage["cycles"] if cycle is None else cycle
        return self.run_dir / stage["dir"] / ("init.pt" if k == 0 else f"cycle_{k}.pt")


def _stage_list(results: list[StageResult], run_dir: Path) -> list[dict[str, Any]]:
    return [
        {
            "dir": r.stage.directory.relative_to(run_dir).as_posix() or ".",
            "level": r.stage.level,
            "cycles": r.stage.schedule.cycles,
        }
        for r in results
    ]


def _run_metrics(results: list[StageResult], tr: Trainer) -> xr.Dataset:
    if len(results) == 1:
        return results[0].metrics
    per_level = [r.metrics.expand_dims(level=[r.stage.level]) for r in results]
    ds = xr.concat(per_level, dim="level", join="outer", coords="minimal", compat="override", combine_attrs="override")
    ds.attrs.update(tr.attrs())
    return ds


def train(cfg: TrainConfig, out: str | Path, *, quiet: bool = False, data: DataBundle | None = None) -> RunResult:
    """Run ``cfg``'s recipe under ``out``; resumes an interrupted run and skips a complete one.

    Returns a :class:`RunResult`. Raises :class:`training.errors.DivergedError` (exit code 3) on a
    non-finite training loss, after marking the run ``diverged`` in ``manifest.json``.
    """
    validate(cfg)
    inside = run_folder_of(out)
    if inside is not None:  # a run folder's files belong to its run (nor would analyze find a nested run)
        raise UserError(
            f"out {out} is inside the run folder {inside}; give the folder that holds run folders", param="out"
        )
    run_dir = Path(out) / cfg.run_name
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    done = _complete(run_dir, cfg)
    if done is not None:
        log(f"already complete: {run_dir}")
        return done
    with training_threads(cfg.threads):
        return _train(cfg, run_dir, quiet, log, data)


@contextlib.contextmanager
def training_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op CPU threads, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(
    cfg: TrainConfig, run_dir: Path, quiet: bool, log: Callable[[str], None], data: DataBundle | None
) -> RunResult:
    device = resolve_device(cfg.device)
    dist = Distributed.from_env(device)
    device = dist.device(device)
    data = data or load_data(cfg.data)  # before the run folder exists: missing data leaves nothing behind
    if not dist.main:  # the other ranks of a torchrun job follow rank 0, which holds the lock
        quiet, log = True, (lambda msg: None)
        return _train_locked(cfg, run_dir, quiet, log, data, device, dist)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(run_dir / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"another process is training {run_dir}; waiting for it to finish")
            lock.acquire()
    except OSError as exc:
        raise UserError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}") from exc
    try:
        done = _complete(run_dir, cfg)  # the other process may have finished it
        if done is not None:
            log(f"already complete: {run_dir}")
            return done
        return _train_locked(cfg, run_dir, quiet, log, data, device, dist)
    finally:
        lock.release()


def _complete(run_dir: Path, cfg: TrainConfig) -> RunResult | None:
    manifest = read_json(run_dir / "manifest.json")
    if manifest is not None:
        check_run_folder(run_dir, manifest, cfg)
    if manifest and manifest.get("status") == "complete" and (run_dir / "metrics.nc").exists():
        return RunResult(run_dir, cfg, xr.load_dataset(run_dir / "metrics.nc"), manifest["stages"], skipped=True)
    return None


def check_run_folder(run_dir: Path, manifest: dict, cfg: TrainConfig) -> None:
    """Refuse a run folder ``cfg`` would skip or resume but whose results are not ``cfg``'s:
    :func:`check_semantics` and :func:`check_threads`."""
    check_semantics(run_dir, manifest, cfg)
    check_threads(run_dir, manifest, cfg)


def check_semantics(run_dir: Path, manifest: dict, cfg: TrainConfig) -> None:
    """Refuse a run folder whose recipe semantics (:func:`training.recipes.semantics_version`) differ from
    what ``cfg`` now means: its results (complete or partial) are of another experiment."""
    found, wanted = int(manifest.get("semantics", 1)), semantics_version(cfg)
    if found != wanted:
        raise UserError(
            f"{run_dir} holds a run made with recipe semantics version {found}, but this config now runs version "
            f"{wanted} (the recipe was fixed; see training.recipes.semantics_version); move the folder away or "
            "train into another --out"
        )


def check_threads(run_dir: Path, manifest: dict, cfg: TrainConfig) -> None:
    """Refuse a run folder (complete or partial) trained under another torch thread count than ``cfg``'s,
    or before runs recorded it: on the CPU its weights may differ from what this config trains, so
    neither skipping it nor resuming it would give this config's numbers."""
    found = manifest.get("threads")
    if found == cfg.threads:
        return
    made = "before runs recorded their torch thread count" if found is None else f"with {found} torch threads"
    raise UserError(
        f"{run_dir} holds a run made {made}, but this config trains with threads={cfg.threads} (CPU numbers "
        "depend on it); move the folder away to retrain it, or train into another --out"
    )


def _train_locked(
    cfg: TrainConfig,
    run_dir: Path,
    quiet: bool,
    log: Callable[[str], None],
    data: DataBundle,
    device: torch.device,
    dist: Distributed,
) -> RunResult:
    write = dist.main
    if write:
        # We hold the run lock: leftovers of killed writes (never read: they have other names) can go.
        for sub in [run_dir, *sorted(run_dir.glob("level_*"))]:
            for tmp in sub.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    tr = Trainer(cfg, run_dir, data, device, quiet=quiet, log=log, meta_extra={"recipe": cfg.recipe.name}, dist=dist)
    base = {
        "config_hash": tr.hash,
        "run_name": cfg.run_name,
        "recipe": cfg.recipe.name,
        "landscape_version": __version__,
        "semantics": semantics_version(cfg),
        "threads": torch.get_num_threads(),  # cfg.threads, as set by train
        "environment": environment(device),  # where it was made (the last process that wrote it)
    }
    if write:
        atomic_write_json(run_dir / "manifest.json", {"status": "running", **base})
    try:
        results = RECIPES[cfg.recipe.name](tr, cfg)
    except DivergedError as exc:
        if write:
            atomic_write_json(run_dir / "manifest.json", {"status": "diverged", "error": str(exc), **base})
        raise
    metrics = _run_metrics(results, tr)
    checkpoints = [c for r in results for c in r.checkpoints]
    stages = _stage_list(results, run_dir)
    if write:
        if len(results) > 1:
            atomic_netcdf(metrics, run_dir / "metrics.nc")
        atomic_write_json(
            run_dir / "manifest.json", {"status": "complete", "stages": stages, "checkpoints": checkpoints, **base}
        )
    dist.barrier()
    return RunResult(run_dir, cfg, metrics, stages)
