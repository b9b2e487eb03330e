"""The masked training loop, with checkpoints, metrics, resume and divergence handling.

A run lives in ``<out>/<name>-<hash>/`` and holds:

* ``config.yaml``: the resolved config; ``manifest.json``: status (``running``, ``complete``,
  ``diverged``), progress and file list;
* ``init.pt``: the masked initialisation; ``cycle_<k>.pt``: the state at the end of cycle k
  (k = 1..C); ``epoch_<n>.pt`` every ``save_every`` epochs (n counts all epochs);
* ``metrics.nc``: per-epoch metrics with ``cycle`` and ``epoch`` (within the cycle) coordinates;
* ``resume.pt``: model, optimiser and RNG state after the last completed epoch (deleted when done).

Reproducibility: the initialisation, the mask and each epoch's data order and augmentation are
seeded from ``(seed, stream name)`` only (:func:`training.fileio.derive_seed`), and the resume file
holds the optimiser state, so an interrupted run resumed from ``resume.pt`` ends bitwise-identical to
an uninterrupted one on CPU.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from training import __version__
from training.checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint
from training.config import TrainConfig, config_hash, to_dict, to_yaml, validate
from training.data import DataBundle, load_data
from training.errors import DivergedError
from training.evaluate import evaluate, resolve_device
from training.fileio import atomic_netcdf, atomic_write_json, atomic_write_text, derive_seed, read_json
from training.masks import MaskedParameters, apply_mask, make_mask, weight_density
from training.models import build
from training.schedules import learning_rate

METRIC_NAMES = ("train_loss", "train_error", "test_loss", "test_error", "lr", "density")


@dataclass
class RunResult:
    """What :func:`train` returns: the run folder, whether it was already complete, and its metrics."""

    run_dir: Path
    config: TrainConfig
    metrics: xr.Dataset
    skipped: bool = False

    def checkpoint(self, cycle: int | None = None) -> Path:
        """Path of ``cycle_<k>.pt`` (``init.pt`` for cycle 0; the last cycle by default)."""
        k = self.config.schedule.cycles if cycle is None else cycle
        return self.run_dir / ("init.pt" if k == 0 else f"cycle_{k}.pt")


def progress_disabled(quiet: bool) -> bool | None:
    """tqdm's ``disable``: off under ``quiet`` or in CI, and (``None``) whenever stderr is not a TTY."""
    import os

    return True if (quiet or os.environ.get("CI")) else None


def metrics_dataset(records: list[dict[str, Any]], cfg: TrainConfig, attrs: dict[str, Any]) -> xr.Dataset:
    """Per-epoch records -> Dataset with dims ``(cycle, epoch)``; epochs not yet run are NaN.

    Variables: ``train_loss``/``train_error`` (running means over the epoch's training batches, in
    train mode, with augmentation), ``test_loss``/``test_error`` (eval mode, after the epoch), ``lr``
    (the rate of the epoch's last step), ``density`` (measured fraction of non-zero prunable weights).
    Coordinate ``global_epoch`` counts epochs over all cycles.
    """
    cycles, epochs = cfg.schedule.cycles, cfg.schedule.epochs
    data = {name: np.full((cycles, epochs), np.nan) for name in METRIC_NAMES}
    for r in records:
        for name in METRIC_NAMES:
            data[name][r["cycle"] - 1, r["epoch"] - 1] = r[name]
    cycle_c = np.arange(1, cycles + 1)
    epoch_c = np.arange(1, epochs + 1)
    ds = xr.Dataset(
        {name: (("cycle", "epoch"), values) for name, values in data.items()},
        coords={
            "cycle": cycle_c,
            "epoch": epoch_c,
            "global_epoch": (("cycle", "epoch"), (cycle_c[:, None] - 1) * epochs + epoch_c[None, :]),
        },
        attrs=attrs,
    )
    units = {
        "train_loss": "nats",
        "test_loss": "nats",
        "train_error": "fraction",
        "test_error": "fraction",
        "lr": "learning rate",
        "density": "fraction",
    }
    for name, unit in units.items():
        ds[name].attrs["units"] = unit
    return ds


class Trainer:
    """Runs one :class:`TrainConfig` in its run folder; see the module docstring for the layout."""

    def __init__(
        self,
        cfg: TrainConfig,
        out: str | Path,
        *,
        quiet: bool = False,
        log: Callable[[str], None] | None = None,
        data: DataBundle | None = None,
    ):
        self.cfg = validate(cfg)
        self.run_dir = Path(out) / cfg.run_name
        self.hash = config_hash(cfg)
        self.quiet = quiet
        self.log = log or (lambda msg: None if quiet else print(msg, file=sys.stderr))
        self._data = data

    # ---------------------------------------------------------------- helpers
    def _meta(self, cycle: int, epoch: int) -> dict[str, Any]:
        c = self.cfg
        return {
            "model": c.model.name,
            "model_kwargs": self.model_kwargs,
            "dataset": c.data.name,
            "data_config": to_dict(c.data),
            "num_classes": self.data.num_classes,
            "epoch": epoch,
            "cycle": cycle,
            "config_hash": self.hash,
            "run_name": c.run_name,
            "seed": c.seed,
            "sparsity": c.mask.sparsity,
            "prune": c.mask.method,
            "schedule": c.schedule.name,
            "format_version": FORMAT_VERSION,
            "landscape_version": __version__,
            "torch_version": str(torch.__version__),
        }

    def _attrs(self) -> dict[str, Any]:
        return {
            "run_name": self.cfg.run_name,
            "config_hash": self.hash,
            "config_yaml": to_yaml(self.cfg),
            "landscape_version": __version__,
            "torch_version": str(torch.__version__),
        }

    def _manifest(self, status: str, **extra: Any) -> None:
        files = sorted(p.name for p in self.run_dir.glob("*.pt") if p.name != "resume.pt")
        atomic_write_json(
            self.run_dir / "manifest.json",
            {
                "status": status,
                "config_hash": self.hash,
                "run_name": self.cfg.run_name,
                "checkpoints": files,
                "landscape_version": __version__,
                **extra,
            },
        )

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.optim
        return torch.optim.SGD(
            model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
        )

    # ---------------------------------------------------------------- main
    def run(self) -> RunResult:
        """Train (or resume, or skip if complete) and return the run's result."""
        cfg = self.cfg
        manifest = read_json(self.run_dir / "manifest.json")
        if manifest and manifest.get("status") == "complete" and (self.run_dir / "metrics.nc").exists():
            self.log(f"already complete: {self.run_dir}")
            return RunResult(self.run_dir, cfg, xr.load_dataset(self.run_dir / "metrics.nc"), skipped=True)

        device = resolve_device(cfg.device)
        self.data = self._data or load_data(cfg.data)
        atomic_write_text(self.run_dir / "config.yaml", to_yaml(cfg))

        self.model_kwargs = {"input_shape": list(self.data.input_shape)}
        if cfg.model.width is not None:
            self.model_kwargs["width"] = cfg.model.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "init"))
            model = build(cfg.model.name, self.data.num_classes, **self.model_kwargs)
        mask = make_mask(model, cfg.mask, torch.Generator().manual_seed(derive_seed(cfg.seed, "mask")))
        apply_mask(model, mask)
        init_path = self.run_dir / "init.pt"
        if not init_path.exists():
            save_checkpoint(init_path, model.state_dict(), mask, self._meta(0, 0))

        records: list[dict[str, Any]] = []
        start_cycle, start_epoch = 1, 0  # last completed (cycle, epoch within cycle)
        opt_state = None
        resume_path = self.run_dir / "resume.pt"
        if resume_path.exists():
            ckpt = read_checkpoint(resume_path)
            model.load_state_dict(ckpt["model"])
            mask = ckpt["mask"]
            records = list(ckpt["progress"]["records"])
            start_cycle, start_epoch = ckpt["progress"]["cycle"], ckpt["progress"]["epoch"]
            opt_state = ckpt["optimizer"]
            torch.set_rng_state(ckpt["rng"])
            self.log(f"resuming {self.run_dir.name} after cycle {start_cycle} epoch {start_epoch}")
        model.to(device)
        masked = MaskedParameters(model, mask)
        self._manifest("running")

        sched = cfg.schedule
        E, C = sched.epochs, sched.cycles
        pin = device.type == "cuda"
        test_loader = self.data.eval_loader("test", cfg.data.eval_batch_size, pin)
        steps_per_epoch = len(self.data.train_loader(cfg.data.batch_size, 0))
        total_steps = E * steps_per_epoch
        bar = tqdm(
            total=C * E,
            initial=(start_cycle - 1) * E + start_epoch,
            desc=cfg.run_name,
            unit="epoch",
            disable=progress_disabled(self.quiet),
            leave=False,
        )
        try:
            for cycle in range(start_cycle, C + 1):
                first_epoch = start_epoch + 1 if cycle == start_cycle else 1
                if first_epoch > E:
                    continue
                optimizer = self._optimizer(model)
                if opt_state is not None and cycle == start_cycle and first_epoch > 1:
                    optimizer.load_state_dict(opt_state)
                for epoch in range(first_epoch, E + 1):
                    record = self._train_epoch(
                        model, masked, optimizer, cycle, epoch, steps_per_epoch, total_steps, device, pin
                    )
                    record["test_loss"], record["test_error"] = evaluate(model, test_loader, device)
                    record["density"] = weight_density(model, masked.names) if masked.names else 1.0
                    records.append(record)
                    self._end_of_epoch(model, mask, optimizer, records, cycle, epoch)
                    bar.update(1)
                    bar.set_postfix(
                        cycle=cycle,
                        train_loss=f"{record['train_loss']:.3f}",
                        test_err=f"{record['test_error']:.3f}",
                    )
        finally:
            bar.close()

        metrics = metrics_dataset(records, cfg, self._attrs())
        atomic_netcdf(metrics, self.run_dir / "metrics.nc")
        final = records[-1]
        self._manifest("complete", final={k: final[k] for k in METRIC_NAMES})
        resume_path.unlink(missing_ok=True)
        return RunResult(self.run_dir, cfg, metrics)

    def _train_epoch(self, model, masked, optimizer, cycle, epoch, steps_per_epoch, total_steps, device, pin):
        cfg = self.cfg
        # Every random draw of this epoch (order, augmentation, dropout) depends only on (seed, cycle, epoch).
        torch.manual_seed(derive_seed(cfg.seed, "epoch", cycle, epoch))
        loader = self.data.train_loader(cfg.data.batch_size, derive_seed(cfg.seed, "order", cycle, epoch), pin)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        wrong = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        step = (epoch - 1) * steps_per_epoch
        lr = cfg.optim.lr
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            lr = learning_rate(cfg.schedule, cfg.optim.lr, step, total_steps, cycle)
            for group in optimizer.param_groups:
                group["lr"] = lr
            out = model(x)
            loss = F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            masked.mask_grads()
            optimizer.step()
            masked.mask_weights()
            loss_sum += loss.detach().double() * len(y)
            wrong += (out.detach().argmax(dim=1) != y).sum()
            count += len(y)
            step += 1
        train_loss = float(loss_sum) / count
        if not math.isfinite(train_loss):
            self._diverged(cycle, epoch)
        return {
            "cycle": cycle,
            "epoch": epoch,
            "train_loss": train_loss,
            "train_error": int(wrong) / count,
            "lr": lr,
        }

    def _diverged(self, cycle: int, epoch: int) -> None:
        last = "resume.pt" if (self.run_dir / "resume.pt").exists() else "init.pt"
        self._manifest("diverged", diverged={"cycle": cycle, "epoch": epoch, "last_good": last})
        raise DivergedError(
            f"training diverged (non-finite loss) in cycle {cycle}, epoch {epoch}; "
            f"the last good state is {self.run_dir / last}"
        )

    def _end_of_epoch(self, model, mask, optimizer, records, cycle, epoch) -> None:
        cfg = self.cfg
        E = cfg.schedule.epochs
        total_epochs = (cycle - 1) * E + epoch
        state = model.state_dict()
        if epoch == E:
            save_checkpoint(self.run_dir / f"cycle_{cycle}.pt", state, mask, self._meta(cycle, total_epochs))
        if cfg.save_every and total_epochs % cfg.save_every == 0:
            completed = cycle if epoch == E else cycle - 1
            save_checkpoint(self.run_dir / f"epoch_{total_epochs}.pt", state, mask, self._meta(completed, total_epochs))
        atomic_netcdf(metrics_dataset(records, cfg, self._attrs()), self.run_dir / "metrics.nc")
        save_checkpoint(
            self.run_dir / "resume.pt",
            state,
            mask,
            self._meta(cycle if epoch == E else cycle - 1, total_epochs),
            optimizer=optimizer.state_dict(),
            rng=torch.get_rng_state(),
            progress={"cycle": cycle, "epoch": epoch, "records": records},
        )


def train(cfg: TrainConfig, out: str | Path, *, quiet: bool = False, data: DataBundle | None = None) -> RunResult:
    """Train ``cfg`` under ``out``; resumes an interrupted run and skips a complete one.

    Returns a :class:`RunResult`. Raises :class:`training.errors.DivergedError` (exit code 3) on a
    non-finite training loss, after marking the run ``diverged`` in ``manifest.json``.
    """
    return Trainer(cfg, out, quiet=quiet, data=data).run()
