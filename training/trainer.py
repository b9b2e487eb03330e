"""The masked training loop, run as resumable *stages*, with checkpoints, metrics and divergence handling.

A stage trains one (model, mask) start for the cycles of a schedule, in its own folder:

* ``init.pt``: the stage's starting point; ``cycle_<k>.pt``: the state at the end of cycle k;
  ``epoch_<n>.pt`` every ``save_every`` epochs and named extra saves (e.g. ``rewind.pt``);
* ``metrics.nc``: per-epoch metrics with ``cycle`` and ``epoch`` (within the cycle) coordinates;
* ``stage.json``: status and the list of checkpoints it wrote (level, cycle, epoch, sparsity);
* ``resume.pt``: model, optimiser and RNG state after the last completed epoch (deleted when done).

A complete stage is skipped; an interrupted one resumes from ``resume.pt``. Recipes
(:mod:`training.recipes`) chain stages; the plain pruning-at-initialisation run is one stage in the
run folder itself.

Reproducibility: the initialisation, the mask and every epoch's data order and augmentation are
seeded from ``(seed, stream name, global epoch index)`` only (:func:`training.fileio.derive_seed`),
and the resume file holds the optimiser state, so an interrupted run resumed from ``resume.pt``
ends bitwise-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F

from training import __version__
from training.checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint
from training.config import TrainConfig, config_hash, to_dict, to_yaml
from training.data import DataBundle, epoch_samples
from training.distributed import Distributed, autocast, prepare_for_speed
from training.dynamic import Context, load_history
from training.errors import DivergedError
from training.evaluate import evaluate
from training.fileio import atomic_netcdf, atomic_write_json, derive_seed, read_json
from training.flops import FlopLedger, flop_model
from training.masks import Mask, MaskedParameters, apply_mask, density, weight_density
from training.metrics import METRIC_NAMES, metrics_dataset
from training.models import build
from training.progress import Progress
from training.schedules import learning_rate
from training.stages import Stage, StageResult, StageStart


class Trainer:
    """Trains the stages of one run. ``data`` is the run's (true) data; ``device`` a torch device."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        data: DataBundle,
        device: torch.device,
        *,
        quiet: bool = False,
        log: Callable[[str], None] | None = None,
        meta_extra: Mapping[str, Any] | None = None,
        dist: Distributed | None = None,
    ):
        self.cfg = cfg
        self.dist = dist or Distributed()
        self.run_dir = Path(run_dir)
        self.data = data
        self.device = device
        self.quiet = quiet
        self.log = log or (lambda msg: None if quiet else print(msg, file=sys.stderr))
        self.hash = config_hash(cfg)
        self.model_kwargs: dict[str, Any] = {"input_shape": list(data.input_shape)}
        options = {f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(cfg.model) if f.name != "name"}
        self.model_kwargs.update({k: v for k, v in options.items() if v is not None})  # unset: the builder's default
        self.meta_extra = dict(meta_extra or {})
        self._device_data: DataBundle | None = None
        self._flops: FlopLedger | None = None

    @property
    def flops(self) -> FlopLedger:
        """The run's training-FLOPs ledger (:mod:`training.flops`); layer costs measured once, on the CPU."""
        if self._flops is None:
            self._flops = FlopLedger(flop_model(self.fresh_model(), self.data.input_shape))
        return self._flops

    # ---------------------------------------------------------------- helpers
    def device_data(self) -> DataBundle:
        """The run's data where training reads it: with the ``device`` loader, moved to the training
        device once (training, evaluation and the test split all read these tensors)."""
        if self._device_data is None:
            self._device_data = self.data.to(self.device)
        return self._device_data

    def fresh_model(self, stream: str = "init") -> nn.Module:
        """The architecture, initialised from ``(seed, stream)`` without touching the global RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.cfg.seed, stream))
            return build(self.cfg.model.name, self.data.num_classes, **self.model_kwargs)

    def meta(self, stage: Stage, cycle: int, epoch: int, mask: Mask) -> dict[str, Any]:
        """Checkpoint meta (see :mod:`training.checkpoint`); ``epoch`` counts the stage's epochs."""
        c = self.cfg
        return {
            "model": c.model.name,
            "model_kwargs": self.model_kwargs,
            "dataset": c.data.name,
            "data_config": to_dict(c.data),
            "num_classes": self.data.num_classes,
            "epoch": epoch,
            "cycle": cycle,
            "level": stage.level,
            "sparsity": 1.0 - density(mask) if mask else 0.0,
            "config_hash": self.hash,
            "run_name": c.run_name,
            "seed": c.seed,
            "prune": c.mask.method,
            "schedule": stage.schedule.name,
            "format_version": FORMAT_VERSION,
            "landscape_version": __version__,
            "torch_version": str(torch.__version__),
            **self.meta_extra,
        }

    def attrs(self) -> dict[str, Any]:
        """Attributes of metrics Datasets."""
        return {
            "run_name": self.cfg.run_name,
            "config_hash": self.hash,
            "config_yaml": to_yaml(self.cfg),
            "landscape_version": __version__,
            "torch_version": str(torch.__version__),
            "dense_forward_flops": self.flops.model.dense_forward,  # f_D, FLOPs per sample (training.flops)
            "train_samples_per_epoch": epoch_samples(self.data.train, self.cfg.data.batch_size),
        }

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """A fresh SGD optimiser (momentum buffers empty)."""
        o = self.cfg.optim
        return torch.optim.SGD(
            model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
        )

    # ---------------------------------------------------------------- stages
    def run_stage(self, stage: Stage, start: Callable[[], StageStart]) -> StageResult:
        """Train ``stage`` from ``start()`` (called only if the stage has not started yet)."""
        sdir = stage.directory
        sched = stage.schedule
        status = read_json(sdir / "stage.json")
        if status and status.get("status") == "complete" and (sdir / "metrics.nc").exists():
            done = xr.load_dataset(sdir / "metrics.nc")
            self.flops.resume(float(done["train_flops"].max()) if "train_flops" in done else float("nan"))
            return StageResult(stage, done, status["checkpoints"], skipped=True)

        model = self.fresh_model()
        init_path, resume_path = sdir / "init.pt", sdir / "resume.pt"
        checkpoints: list[dict[str, Any]] = list((status or {}).get("checkpoints", []))
        records: list[dict[str, Any]] = []
        opt_state = None
        if resume_path.exists():
            ckpt = read_checkpoint(resume_path)
            model.load_state_dict(ckpt["model"])
            mask = ckpt["mask"]
            records = list(ckpt["progress"]["records"])
            self.flops.resume(records[-1].get("train_flops", float("nan")) if records else float("nan"))
            position = (ckpt["progress"]["cycle"], ckpt["progress"]["epoch"])
            opt_state = ckpt["optimizer"]
            torch.set_rng_state(ckpt["rng"])
            self.log(f"resuming {sdir} after cycle {position[0]} epoch {position[1]}")
        else:
            begin = start()
            mask = {n: m.cpu().bool() for n, m in begin.mask.items()}
            if begin.state is not None:
                model.load_state_dict(begin.state)
            apply_mask(model, mask)
            opt_state, position = begin.optimizer_state, begin.position
            if self.dist.main and not init_path.exists():
                save_checkpoint(init_path, model.state_dict(), mask, self.meta(stage, 0, 0, mask))
            checkpoints = [self._entry(stage, "init.pt", 0, 0, mask)]
            self._status(stage, "running", checkpoints)

        model.to(self.device)
        mask_checksum = self.dist.sync_mask(mask, self.device)
        if self.dist.enabled:
            apply_mask(model, mask)
        masked = MaskedParameters(model, mask)
        runner = self.dist.wrap(prepare_for_speed(model, self.cfg.channels_last, self.cfg.compile), self.device)
        own = stage.data is None or stage.data is self.data
        data = self.device_data() if own else stage.data.to(self.device)
        pin = self.device.type == "cuda"
        batch_size = self.cfg.data.batch_size
        test_loader = self.device_data().eval_loader("test", self.cfg.data.eval_batch_size, pin)
        steps_per_epoch = len(data.train_loader(batch_size, 0))
        total_steps = sched.epochs * steps_per_epoch
        E, C = sched.epochs, sched.cycles
        start_cycle, start_epoch = position
        dyn = self._dynamic(
            stage, model, mask, masked, C * total_steps, steps_per_epoch, (start_cycle - 1) * E + start_epoch
        )
        bar = Progress(  # a bar on a terminal, a line per epoch in a log (Slurm)
            C * E,
            f"{self.cfg.run_name}/{sdir.name}" if sdir != self.run_dir else self.cfg.run_name,
            "epochs",
            quiet=self.quiet,
            initial=(start_cycle - 1) * E + start_epoch,
        )
        try:
            for cycle in range(start_cycle, C + 1):
                first_epoch = start_epoch + 1 if cycle == start_cycle else 1
                if first_epoch > E:
                    continue
                optimizer = self.optimizer(model)
                if opt_state is not None and cycle == start_cycle:
                    optimizer.load_state_dict(opt_state)
                for epoch in range(first_epoch, E + 1):
                    global_epoch = stage.epoch_offset + (cycle - 1) * E + epoch
                    if dyn is not None:
                        dyn.epoch_start((cycle - 1) * E + epoch - 1, optimizer)
                    record = self._train_epoch(
                        stage,
                        runner,
                        masked,
                        optimizer,
                        data,
                        cycle,
                        epoch,
                        global_epoch,
                        steps_per_epoch,
                        total_steps,
                        pin,
                        dyn,
                    )
                    samples = record.pop("samples")  # a changing mask books its own steps
                    cost = dyn.take_flops() if dyn is not None else self.flops.model.training(mask, samples)
                    record["train_flops"] = self.flops.add(cost)
                    record["test_loss"], record["test_error"] = math.nan, math.nan
                    if epoch == E or epoch % self.cfg.data.test_every == 0:
                        record["test_loss"], record["test_error"] = evaluate(model, test_loader, self.device)
                    if epoch == E:  # the training loss that claims about the final training loss use
                        train_split = data.eval_loader("train", self.cfg.data.eval_batch_size, pin)
                        record["train_set_loss"], record["train_set_error"] = evaluate(model, train_split, self.device)
                    record["density"] = weight_density(model, masked.names) if masked.names else 1.0
                    records.append(record)
                    if dyn is not None and self.dist.main:
                        dyn.save()  # before the resume file: a resumed stage drops what it will redo
                    checkpoints = self._end_of_epoch(stage, model, mask, optimizer, records, checkpoints, cycle, epoch)
                    bar.update(1, f"cycle {cycle} epoch {epoch}: train loss {record['train_loss']:.4f}, "
                               f"test error {record['test_error']:.4f}")  # fmt: skip
        finally:
            bar.close()

        if dyn is not None:  # every rank updated its own copy of the mask: they must agree
            mask_checksum = self.dist.check_same_mask(mask, self.device, "at the end of a stage whose mask changes")
        metrics = metrics_dataset(records, C, E, self.attrs())
        if self.dist.main:
            atomic_netcdf(metrics, sdir / "metrics.nc")
            self._status(
                stage,
                "complete",
                checkpoints,
                final={k: records[-1].get(k, float("nan")) for k in METRIC_NAMES},
                mask_checksum=mask_checksum,
                world_size=self.dist.world,
            )
            resume_path.unlink(missing_ok=True)
        self.dist.barrier()
        return StageResult(stage, metrics, checkpoints)

    def _entry(self, stage: Stage, name: str, cycle: int, epoch: int, mask: Mask) -> dict[str, Any]:
        rel = (stage.directory / name).relative_to(self.run_dir).as_posix()
        return {
            "path": rel,
            "level": stage.level,
            "cycle": cycle,
            "epoch": epoch,
            "sparsity": 1.0 - density(mask) if mask else 0.0,
            "inference_flops": self.flops.model.forward(mask),  # f(M), FLOPs per sample
        }

    def _status(self, stage: Stage, status: str, checkpoints: list[dict[str, Any]], **extra: Any) -> None:
        if not self.dist.main:
            return
        atomic_write_json(
            stage.directory / "stage.json",
            {"status": status, "level": stage.level, "checkpoints": checkpoints, **extra},
        )

    def _dynamic(self, stage, model, mask, masked, total, per_epoch, done_epochs):
        """The stage's mask updater (:mod:`training.dynamic`) with its history so far, or None."""
        if stage.dynamic is None:
            return None
        history = load_history(stage.directory, done_epochs * per_epoch)
        ctx = Context(model, mask, masked, self.flops.model, total, per_epoch, self.cfg.seed, stage.level,
                      stage.directory, history)  # fmt: skip
        return stage.dynamic(ctx)

    def _train_epoch(
        self, stage, model, masked, optimizer, data, cycle, epoch, global_epoch, steps_per_epoch, total_steps, pin, dyn
    ):
        cfg = self.cfg
        # Every random draw of this epoch (order, augmentation, dropout) depends only on (data seed, global epoch).
        data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
        torch.manual_seed(derive_seed(data_seed, "epoch", global_epoch))
        loader = data.train_loader(cfg.data.batch_size, derive_seed(data_seed, "order", global_epoch), pin)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        wrong = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        step = (epoch - 1) * steps_per_epoch
        lr = cfg.optim.lr
        for x_all, y_all in loader:
            x, y = self.dist.shard(x_all, y_all)  # this rank's share of the global batch
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            lr = learning_rate(stage.schedule, cfg.optim.lr, step, total_steps, cycle)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(self.device, cfg.amp):
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t = (cycle - 1) * total_steps + step  # the stage's step
            skip = dyn is not None and dyn.before_step(t, len(y_all), optimizer)  # reads the dense gradient
            masked.mask_grads()
            if not skip:  # RigL updates the mask instead of stepping
                optimizer.step()
            masked.mask_weights()
            if dyn is not None:
                dyn.after_step(t, optimizer)
            loss_sum += loss.detach().double() * len(y)
            wrong += (out.detach().argmax(dim=1) != y).sum()
            count += len(y)
            step += 1
        counted = torch.tensor(count, dtype=torch.int64, device=self.device)
        self.dist.all_reduce(loss_sum, wrong, counted)
        count = int(counted)
        train_loss = float(loss_sum) / count
        if not np.isfinite(train_loss):
            self._diverged(stage, cycle, epoch)
        return {"cycle": cycle, "epoch": epoch, "train_loss": train_loss, "train_error": int(wrong) / count, "lr": lr,
                "samples": count}  # fmt: skip

    def _diverged(self, stage: Stage, cycle: int, epoch: int) -> None:
        sdir = stage.directory
        last = sdir / ("resume.pt" if (sdir / "resume.pt").exists() else "init.pt")
        info = {"level": stage.level, "cycle": cycle, "epoch": epoch, "last_good": str(last.relative_to(self.run_dir))}
        status = read_json(sdir / "stage.json") or {}
        self._status(stage, "diverged", status.get("checkpoints", []), diverged=info)
        raise DivergedError(
            f"training diverged (non-finite loss) in cycle {cycle}, epoch {epoch}; the last good state is {last}"
        )

    def _end_of_epoch(self, stage, model, mask, optimizer, records, checkpoints, cycle, epoch):
        E = stage.schedule.epochs
        done = (cycle - 1) * E + epoch
        state = model.state_dict()
        completed = cycle if epoch == E else cycle - 1
        entries = list(checkpoints)

        def save(name: str, **extra: Any) -> None:
            if self.dist.main:  # only rank 0 writes
                save_checkpoint(stage.directory / name, state, mask, self.meta(stage, completed, done, mask), **extra)
            entry = self._entry(stage, name, completed, done, mask)
            entries[:] = [e for e in entries if e["path"] != entry["path"]]
            entries.append(entry)

        if epoch == E:
            save(f"cycle_{cycle}.pt")
        if self.cfg.save_every and done % self.cfg.save_every == 0:
            save(f"epoch_{done}.pt")
        if done in stage.extra_saves:
            save(stage.extra_saves[done], optimizer=optimizer.state_dict())
        if self.dist.main:
            metrics = metrics_dataset(records, stage.schedule.cycles, E, self.attrs())
            atomic_netcdf(metrics, stage.directory / "metrics.nc")
            self._status(stage, "running", entries)
            save_checkpoint(
                stage.directory / "resume.pt",
                state,
                mask,
                self.meta(stage, completed, done, mask),
                optimizer=optimizer.state_dict(),
                rng=torch.get_rng_state(),
                progress={"cycle": cycle, "epoch": epoch, "records": records},
            )
        self.dist.barrier()  # every rank sees the epoch's files before going on
        return entries
