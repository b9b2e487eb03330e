"""Training many configs side by side on the CPU: ``jobs`` worker processes.

The networks of the medium tier are small (a 1-D ResNet-20 on length-40 signals), so one training
process uses two cores poorly: on 2 cores, two single-threaded processes train about 1.8 times as many
epochs per second as one process with two threads. Every run is trained by :func:`training.run.train`
(same run folder, same resume rules) with its config's ``threads`` (default 1), in a worker or in this
process alike, so a run's weights never depend on ``jobs``.

Runs are ordered longest first (by their epochs, over all levels) so the two workers finish together;
``after`` phases (runs that need others' checkpoints, e.g. coupling runs on LRR tickets) are the
caller's: call :func:`train_parallel` once per phase.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from landscape.sweep import run_status
from training.config import TrainConfig
from training.recipes import level_densities


@dataclass(frozen=True)
class Trained:
    """What :func:`train_parallel` did: runs trained here (name → seconds) and runs already complete."""

    trained: dict[str, float]
    complete: list[str]


def planned_epochs(cfg: TrainConfig) -> int:
    """Epochs ``cfg`` trains over all its stages (levels), for ordering runs longest first."""
    r, s = cfg.recipe, cfg.schedule
    per_stage = s.cycles * s.epochs
    if r.name in ("imp", "wr", "lrr"):
        return per_stage * len(level_densities(cfg.mask.sparsity, r.prune_fraction, r.levels, r.one_shot))
    if r.name == "sculpt":
        return ((r.sculpt_cycles or s.cycles) + 1) * s.epochs
    if r.name == "hybrid":
        return 2 * per_stage
    return per_stage


def _init_worker() -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _train_one(cfg: TrainConfig, out: str) -> float:
    from training.run import train

    start = time.perf_counter()
    train(cfg, out, quiet=True)
    return time.perf_counter() - start


def train_parallel(
    labelled: Sequence[tuple[str, TrainConfig]],
    out: str | Path,
    *,
    jobs: int = 2,
    log: Callable[[str], None] | None = None,
) -> Trained:
    """Train every config of ``labelled`` (``(label, config)``; the label names the run in the log) that
    is not complete under ``out``, ``jobs`` at a time (``jobs=1``: one after another in this process).
    ``log`` gets one line per run (trained, with its time, or already complete). A failing run raises
    its error after the runs already started have finished."""
    out = Path(out)
    say = log or (lambda line: None)
    unique = {cfg.run_name: (label, cfg) for label, cfg in labelled}
    complete = [name for name, (_, cfg) in unique.items() if run_status(cfg, out) == "complete"]
    todo = sorted(
        ((label, cfg) for name, (label, cfg) in unique.items() if name not in complete),
        key=lambda item: -planned_epochs(item[1]),
    )
    total = len(todo)
    if complete:
        say(f"{len(complete)} of {len(unique)} runs already complete under {out}")
    trained: dict[str, float] = {}

    def done(label: str, cfg: TrainConfig, seconds: float) -> None:
        trained[cfg.run_name] = seconds
        epochs = planned_epochs(cfg)
        say(f"[{len(trained)}/{total}] {label}: trained in {seconds:.0f} s ({epochs} epochs) {cfg.run_name}")

    if jobs <= 1 or total <= 1:
        for label, cfg in todo:
            done(label, cfg, _train_one(cfg, str(out)))
        return Trained(trained, complete)
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads is unsafe
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        pending: dict[Future, tuple[str, TrainConfig]] = {}
        queue = list(todo)
        error: BaseException | None = None
        try:
            while queue or pending:
                while queue and len(pending) < jobs and error is None:
                    label, cfg = queue.pop(0)
                    pending[pool.submit(_train_one, cfg, str(out))] = (label, cfg)
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    label, cfg = pending.pop(future)
                    try:
                        done(label, cfg, future.result())
                    except Exception as exc:  # re-raised once the started runs have ended
                        say(f"{label}: failed: {type(exc).__name__}: {exc} ({cfg.run_name})")
                        error = error or exc
                        queue.clear()
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if error is not None:
        raise error
    return Trained(trained, complete)
