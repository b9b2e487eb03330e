"""Notebook 06: loss surfaces along filter-normalised random directions (respecting the mask) around a
cyclic and a one-cycle solution, and the plane through the last three cycle checkpoints of the cyclic run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from landscape.experiments.settings import Tier
from landscape.experiments.tables import ExperimentResult, results_table, train_all
from landscape.surface import plane, surface
from training.config import MaskConfig, ScheduleConfig, TrainConfig
from training.data import load_data

SPAN = (-1.0, 1.0)  # random-direction surfaces: x, y in filter-normalised units around the solution


def surface_configs(tier: Tier) -> list[TrainConfig]:
    """The cyclic run (``C`` cycles of ``E`` epochs) and the one-cycle run (``C·E`` epochs) of one mask, seed 0
    of the base config."""
    s = tier.surfaces
    mask = MaskConfig(method=s.method, sparsity=s.sparsity)
    return [
        replace(tier.base, mask=mask, schedule=ScheduleConfig(name="cyclic", cycles=s.cycles, epochs=s.epochs)),
        replace(tier.base, mask=mask, schedule=ScheduleConfig(name="one-cycle", epochs=s.cycles * s.epochs)),
    ]


def run_loss_surfaces(tier: Tier, runs_dir: str | Path, *, quiet: bool = False) -> ExperimentResult:
    """Train (or read back) :func:`surface_configs` and evaluate the surfaces on the test split.

    ``data["surfaces"]``: ``{"cyclic", "one-cycle", "plane"}`` → the :func:`landscape.surface` /
    :func:`landscape.plane` Datasets (``loss`` in nats, ``error`` as a fraction, on a ``grid × grid``
    lattice; two random directions with seed 0 over x, y ∈ [−1, 1], BatchNorm statistics of the centre;
    the plane through cycles C−2, C−1, C with BatchNorm recalibrated on the training split).
    ``summary``: per surface ``centre_loss`` (at x = y = 0) and ``max_loss``; for the plane ``min_loss``
    and ``max_loss``.
    """
    s = tier.surfaces
    cyclic, one = train_all(surface_configs(tier), runs_dir, quiet=quiet)
    table = results_table([cyclic, one], ["schedule.name"])
    data = load_data(tier.base.data)
    batch = tier.base.data.eval_batch_size
    test = data.eval_loader("test", batch)
    device = tier.base.device
    surfaces = {
        name: surface(run.checkpoint(), test, directions=2, grid=s.grid, span=SPAN, seed=0, device=device)
        for name, run in (("cyclic", cyclic), ("one-cycle", one))
    }
    surfaces["plane"] = plane(
        cyclic.checkpoint(s.cycles - 2),
        cyclic.checkpoint(s.cycles - 1),
        cyclic.checkpoint(s.cycles),
        test,
        grid=s.grid,
        bn_data=data.eval_loader("train", batch),
        device=device,
    )
    summary = {
        name: {
            "centre_loss": float(ds["loss"].sel(x=0.0, y=0.0, method="nearest")),
            "max_loss": float(ds["loss"].max()),
        }
        for name, ds in surfaces.items()
        if name != "plane"
    }
    summary["plane"] = {
        "min_loss": float(surfaces["plane"]["loss"].min()),
        "max_loss": float(surfaces["plane"]["loss"].max()),
    }
    return ExperimentResult(table=table, summary=summary, data={"surfaces": surfaces})
