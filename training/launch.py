"""Launching a training run under ``torchrun`` (DistributedDataParallel) from a single process.

:func:`launch_ddp` writes the config to a temporary YAML file and runs ``python -m training`` under
``torch.distributed.run --standalone`` with ``nproc`` processes (see :mod:`training.__main__`);
each process gets ``cpu_count / nproc`` OpenMP threads unless ``OMP_NUM_THREADS`` is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from training.config import TrainConfig, to_yaml
from training.errors import UserError
from training.validate import validate


def torchrun_command(config_file: str | os.PathLike, out: str | os.PathLike, nproc: int, quiet: bool) -> list[str]:
    """The ``torchrun`` command line that trains ``config_file`` under ``out`` with ``nproc`` processes."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "training",
        "--config",
        str(config_file),
        "--out",
        str(out),
        *(["--quiet"] if quiet else []),
    ]


def launch_ddp(cfg: TrainConfig, out: str | os.PathLike, nproc: int, *, quiet: bool = False) -> Path:
    """Train ``cfg`` with DistributedDataParallel on ``nproc`` local processes; return the run folder.

    Bad input is refused before any process starts; a failure in the job raises :class:`UserError`
    with the job's own one-line error when it printed one.
    """
    if nproc < 2:
        raise UserError(f"nproc must be at least 2 for DistributedDataParallel, got {nproc}", param="nproc")
    validate(cfg)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(to_yaml(cfg))
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    try:
        proc = subprocess.run(torchrun_command(fh.name, out, nproc, quiet), env=env, capture_output=True, text=True)
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        raise UserError(lines[0][len("error: ") :] if lines else f"torchrun failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])
