"""Where a result was made: the facts that decide whether two runs of one config are bitwise equal.

On one machine and library build a seed fixes every bit of a CPU run; across CPUs or builds of torch the
kernels differ (vector width, blocking, reduction order), so the same config gives slightly different
numbers. :func:`environment` records what differs between such places: the package version and its
git commit (with ``dirty`` when the checkout has uncommitted changes), the versions of Python, torch and
numpy, the CPU model, torch's CPU capability (the vector instruction set its kernels use, e.g. ``AVX2``
or ``AVX512``), the torch thread count, the CUDA device when one is used, and the platform.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import __version__


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`), or ``""``."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def git_commit(folder: str | Path | None = None) -> tuple[str, bool]:
    """``(commit, dirty)`` of the git checkout holding ``folder`` (default: this package's source), or
    ``("", False)`` when it is not in one (an installed wheel) or git is missing."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "", False
    return commit, bool(status.strip())


def environment(device: str | torch.device | None = None) -> dict[str, Any]:
    """The environment of this process as plain values (see the module docstring); ``device``: the torch
    device the result was computed on (its CUDA name is added for a GPU)."""
    commit, dirty = git_commit()
    env: dict[str, Any] = {
        "landscape_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python_version": platform.python_version(),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "cpu_model": cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch_threads": int(torch.get_num_threads()),
        "platform": platform.platform(),
    }
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
        env["cuda_version"] = str(torch.version.cuda)
    return env


def describe(env: dict[str, Any]) -> str:
    """One line: ``torch 2.5.1 (AVX2, 1 thread) on <CPU>, commit abc1234``."""
    threads = env.get("torch_threads")
    commit = (env.get("git_commit") or "")[:7] + (" (dirty)" if env.get("git_dirty") else "")
    text = f"torch {env.get('torch_version', '?')} ({env.get('cpu_capability', '?')}, {threads} threads)"
    text += f" on {env.get('cpu_model') or 'an unknown CPU'}"
    return text + (f", commit {commit}" if commit else "")
