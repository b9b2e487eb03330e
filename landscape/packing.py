"""Several runs per device: how a sweep packs training jobs onto GPUs (or the CPU).

A ResNet-20 on CIFAR does not fill a modern GPU, so a sweep can run ``runs_per_device`` jobs on each
GPU at once (``landscape sweep --runs-per-device N``):

* **Local executor.** The machine's GPUs (or, without one, the CPU) offer N *slots* each; a job starts
  on a free slot as soon as one frees, with ``CUDA_VISIBLE_DEVICES`` set to the slot's GPU and an equal
  share of the CPU cores as torch threads. ``--max-parallel`` overrides the number of slots (spread
  round-robin over the GPUs).
* **Slurm.** Each array task trains N runs per GPU it is given (``slurm: {gpus_per_node: G}``: N·G
  runs) at once, as subprocesses of one :class:`TrainGroupJob`, each pinned to one of the task's GPUs.
  A requeued task restarts its group; complete runs are skipped and interrupted ones resume.

What this buys depends on how much of the GPU one run leaves idle; BENCHMARKS.md has the measured
throughput of 1, 2 and 4 concurrent ResNet-20 runs on one GPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from training.errors import UserError

T = TypeVar("T")
H = TypeVar("H")


@dataclass(frozen=True)
class Slot:
    """A place for one job: a GPU index (``None``: the CPU) and the CPU threads the job may use."""

    gpu: int | None
    threads: int

    def local_parameters(self) -> dict[str, Any]:
        """submitit ``LocalExecutor`` parameters that pin a job to this slot's GPU (or to none)."""
        if self.gpu is None:
            return {"gpus_per_node": 0, "visible_gpus": ()}
        return {"gpus_per_node": 1, "visible_gpus": [self.gpu]}


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask: a Slurm task's allocation, not the node's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def gpu_count() -> int:
    """GPUs visible to this process (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_slots(runs_per_device: int, gpus: int, max_parallel: int | None = None, cpus: int = 1) -> list[Slot]:
    """The slots of ``gpus`` GPUs (``0``: the CPU) with ``runs_per_device`` each, ordered round-robin
    over the devices; ``max_parallel`` (if given) sets their number instead. CPU threads are shared out
    equally (at least one each)."""
    if runs_per_device < 1:
        raise UserError(f"--runs-per-device must be at least 1, got {runs_per_device}", param="runs_per_device")
    if max_parallel is not None and max_parallel < 1:
        raise UserError(f"--max-parallel must be at least 1, got {max_parallel}", param="max_parallel")
    devices: list[int | None] = list(range(gpus)) or [None]
    count = max_parallel if max_parallel is not None else runs_per_device * len(devices)
    threads = max(1, cpus // count)
    return [Slot(devices[i % len(devices)], threads) for i in range(count)]


def fill_slots(
    tasks: Sequence[T],
    slots: Sequence[Slot],
    start: Callable[[T, Slot], H],
    done: Callable[[H], bool],
    poll_s: float = 0.2,
) -> list[H]:
    """Start ``tasks`` in order, each on a free slot (``start(task, slot)`` returns a handle), as soon as
    one is free; wait until ``done(handle)`` for all. Returns the handles in task order."""
    free = list(slots)
    running: list[tuple[H, Slot]] = []
    handles: list[H] = []
    pending = list(tasks)
    while pending or running:
        while free and pending:
            slot = free.pop(0)
            handle = start(pending.pop(0), slot)
            handles.append(handle)
            running.append((handle, slot))
        finished = [(h, s) for h, s in running if done(h)]
        if not finished:
            time.sleep(poll_s)
        for item in finished:
            running.remove(item)
            free.append(item[1])
    return handles


class JobsKilled(KeyboardInterrupt):
    """An interrupted sweep whose local jobs did not end when asked and were killed (``pids``)."""

    def __init__(self, pids: list[int]):
        super().__init__(pids)
        self.pids = pids


def stop_jobs(jobs: list[Any], timeout_s: float = 60.0, kill_after_s: float = 10.0) -> list[int]:
    """Stop the local submitit jobs still running and wait (up to ``timeout_s``) until they have ended.
    submitit's ``cancel`` sends SIGINT to the job's process, which passes it on to the training
    function: :func:`training.run.train` then stops between steps, its run folder keeping every finished
    epoch (a resumable run). A job still running at the deadline gets SIGTERM (submitit forwards it to
    its tasks) and, ``kill_after_s`` later, SIGKILL. Returns the process ids of the jobs that had to be
    killed (empty when every job ended on its own)."""
    running = [job for job in jobs if not job.done()]
    for job in running:
        job.cancel()
    _wait(running, timeout_s)
    stubborn = [job for job in running if not job.done()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for job in stubborn:
            process = getattr(job, "_process", None)  # submitit's LocalJob keeps its Popen here
            if process is not None and process.poll() is None:
                process.send_signal(sig)
        _wait(stubborn, kill_after_s)
    return [int(getattr(getattr(job, "_process", None), "pid", -1)) for job in stubborn]


def _wait(jobs: list[Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(not job.done() for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.1)


def outcome_of_exit(code: int, stderr: str) -> str:
    """A run's outcome from ``python -m training``'s exit code (0 ok, 3 diverged) and its stderr."""
    if code == 0:
        return "complete"
    if code == 3:
        return "diverged"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return f"failed: {lines[-1] if lines else f'exit code {code}'}"


def _interrupt_with_parent() -> None:
    """In a training subprocess before it starts (Linux): SIGINT when the job that started it dies, so a
    stopped or killed job never leaves a run training (prctl's PR_SET_PDEATHSIG; no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG


class TrainGroupJob:
    """A picklable job training several runs at once on the devices it is given, ``runs_per_device`` per
    GPU (or on the CPU), each as a ``python -m training`` subprocess. Returns ``{run name: outcome}``."""

    def __init__(self, configs: list[tuple[str, str]], out: str, runs_per_device: int):
        self.configs = configs  # (run name, config YAML)
        self.out = out
        self.runs_per_device = runs_per_device

    def __call__(self) -> dict[str, str]:
        gpus = gpu_count()
        physical = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        slots = device_slots(self.runs_per_device, gpus, cpus=cpu_count())
        outcomes: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="landscape-group-") as tmp:

            def start(item: tuple[int, tuple[str, str]], slot: Slot) -> tuple[str, subprocess.Popen, Path]:
                i, (name, text) = item
                config, log = Path(tmp) / f"{i}.yaml", Path(tmp) / f"{i}.err"
                config.write_text(text, encoding="utf-8")
                gpu = "" if slot.gpu is None else (physical[slot.gpu] if slot.gpu < len(physical) else str(slot.gpu))
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "OMP_NUM_THREADS": str(slot.threads)}
                cmd = [sys.executable, "-m", "training", "--config", str(config), "--out", self.out, "--quiet"]
                with open(log, "w") as err:
                    proc = subprocess.Popen(
                        cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_interrupt_with_parent
                    )
                return name, proc, log

            handles = fill_slots(list(enumerate(self.configs)), slots, start, lambda h: h[1].poll() is not None)
            for name, proc, log in handles:
                outcomes[name] = outcome_of_exit(proc.returncode, log.read_text(errors="replace"))
        return outcomes

    def checkpoint(self) -> Any:
        """Requeue on preemption or timeout: complete runs are skipped, interrupted ones resume."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def groups(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive groups of ``size`` (the last may be smaller)."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
