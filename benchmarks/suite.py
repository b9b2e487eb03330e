"""The benchmark suite's parts every row module shares: the row and suite types, interleaved timing, the
machine line and the Markdown report (``benchmarks/run.py`` drives them)."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the results table."""

    what: str
    against: str
    goal: str
    ours: str
    reference: str
    ratio: float | None
    met: bool | None
    note: str = ""


@dataclass
class Suite:
    device: torch.device
    quick: bool
    rows: list[Row] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        return 3 if self.quick else 5


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, run round-robin ``repeats`` times after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = resource.getrlimit(resource.RLIMIT_AS)[0]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"Python {platform.python_version()}; GPU: {gpu}; memory limit {mem if mem > 0 else 'none'}"
    )


def render(s: Suite) -> str:
    lines = ["| what | against | goal | ours | reference | ratio | goal met |", "|---|---|---|---|---|---|---|"]
    for r in s.rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(f"| {r.what} | {r.against} | {r.goal} | {r.ours} | {r.reference} | {ratio} | {met} |")
    notes = [f"- *{r.what}*: {r.note}" for r in s.rows if r.note]
    return "\n".join(lines) + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")


def write_report(suite: Suite, out: Path) -> None:
    """Write the Markdown report for the rows measured so far."""
    from training.fileio import atomic_write_text

    header = (
        f"# Benchmarks\n\nProduced by `python benchmarks/run.py --out {out.name}` on "
        f"{time.strftime('%Y-%m-%d')}.\n\nMachine: {machine()}; device {suite.device.type}.\n\n"
        "Medians over interleaved repeats; ratios are ours / reference unless a note says otherwise.\n\n"
    )
    atomic_write_text(out, header + render(suite) + "\n")


def bare_lmc_passes(model: torch.nn.Module, train: list, test: list, points: int, device: torch.device) -> None:
    """The forward passes an LMC with BatchNorm recalibration needs, and nothing else: at each of
    ``points`` α, train-mode passes over ``train`` and eval-mode losses over ``test`` (the reference of
    the LMC rows)."""
    for _ in range(points):
        model.train()
        with torch.no_grad():
            for x, _ in train:
                model(x.to(device))
            model.eval()
            for x, y in test:
                torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device), reduction="sum")
    sync(device)
