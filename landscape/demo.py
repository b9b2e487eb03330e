"""``landscape demo``: the main job on the embedded default dataset (MNIST-1D), end to end.

1. Train ``cnn1d`` with a uniform random mask at 90% sparsity twice from the same initialisation and
   mask: cyclic (C cycles of E epochs) and one-cycle over the same C·E epochs.
2. Interpolate between consecutive cycle checkpoints of the cyclic run, and between the final
   cyclic and one-cycle solutions, on the train and test splits, with BatchNorm recalibration.
3. Compute the top Hessian eigenvalue (mask subspace, 512 training samples) at init and at the end
   of every cycle, and the sign flips of every cycle's weights against init.
4. Write ``lmc.nc``, ``hessian.nc``, ``signs.nc``, the runs' ``metrics.nc``, and figures (learning
   curves, LMC curves, schedules, eigenvalues, sign-flip heat map) under ``<out>/figures``; return
   and print a summary.

Re-running skips training that is already complete (the runs are named by config hash).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from landscape.connectivity.interpolate import interpolate
from landscape.hessian import hessian_eigenvalues
from landscape.overlap import overlap
from landscape.plot import (
    plot_checkpoint_eigenvalues,
    plot_interpolation,
    plot_learning_curves,
    plot_schedules,
    plot_sign_flip_heatmap,
    save_figure,
)
from landscape.results import save_dataset
from training.config import DataConfig, MaskConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
from training.data import load_data
from training.run import RunResult, train


@dataclass
class DemoResult:
    """Paths and Datasets produced by :func:`run_demo`."""

    out: Path
    cyclic: RunResult
    one_cycle: RunResult
    lmc: xr.Dataset
    hessian: xr.Dataset
    signs: xr.Dataset
    figures: list[Path]

    def summary_rows(self) -> list[tuple[str, float, float, float]]:
        """``(label, final train loss, final test error, best test error)`` per schedule."""
        rows = []
        for label, run in (("cyclic", self.cyclic), ("one-cycle", self.one_cycle)):
            m = run.metrics
            rows.append(
                (
                    label,
                    float(m["train_loss"][-1, -1]),
                    float(m["test_error"][-1, -1]),
                    float(m["test_error"].min()),
                )
            )
        return rows


def demo_configs(
    cycles: int = 4,
    epochs: int = 8,
    sparsity: float = 0.9,
    seed: int = 0,
    device: str = "auto",
    width: int | None = None,
) -> tuple[TrainConfig, TrainConfig]:
    """The demo's cyclic config and the one-cycle config with the same total epochs."""
    cyclic = TrainConfig(
        data=DataConfig(name="mnist1d", batch_size=128),
        model=ModelConfig(name="cnn1d", width=width),
        mask=MaskConfig(method="random", sparsity=sparsity),
        schedule=ScheduleConfig(name="cyclic", cycles=cycles, epochs=epochs),
        optim=OptimConfig(lr=0.1, momentum=0.9, weight_decay=5e-4),
        seed=seed,
        device=device,
        name="demo-cyclic",
    )
    one_cycle = dataclasses.replace(
        cyclic,
        schedule=ScheduleConfig(name="one-cycle", cycles=1, epochs=cycles * epochs),
        name="demo-one-cycle",
    )
    return cyclic, one_cycle


def run_demo(
    out: str | Path = "landscape-demo",
    *,
    cycles: int = 4,
    epochs: int = 8,
    sparsity: float = 0.9,
    seed: int = 0,
    device: str = "auto",
    points: int = 21,
    quiet: bool = False,
) -> DemoResult:
    """Run the demo under ``out``; see the module docstring. Returns a :class:`DemoResult`."""
    out = Path(out)
    cyclic_cfg, one_cycle_cfg = demo_configs(cycles, epochs, sparsity, seed, device)
    data = load_data(cyclic_cfg.data)
    cyclic = train(cyclic_cfg, out / "runs", quiet=quiet, data=data)
    one_cycle = train(one_cycle_cfg, out / "runs", quiet=quiet, data=data)

    splits = {"train": data.eval_loader("train", 1000), "test": data.eval_loader("test", 1000)}
    pairs = [(f"cycle {k}→{k + 1}", cyclic.checkpoint(k), cyclic.checkpoint(k + 1)) for k in range(1, cycles)]
    pairs.append(("cyclic→one-cycle", cyclic.checkpoint(), one_cycle.checkpoint()))
    curves = {}
    for label, a, b in pairs:
        curves[label] = interpolate(a, b, splits, points=points, bn="recalibrate", device=device, quiet=quiet)
    lmc = xr.concat(
        list(curves.values()),
        dim=xr.DataArray(list(curves), dims="pair", name="pair"),
        combine_attrs="drop_conflicts",
    )
    save_dataset(lmc, out / "lmc.nc")

    hessian_batch = [next(iter(data.eval_loader("train", 512)))]
    eig = [hessian_eigenvalues(cyclic.checkpoint(k), hessian_batch, k=1, device=device) for k in range(cycles + 1)]
    eig.append(hessian_eigenvalues(one_cycle.checkpoint(), hessian_batch, k=1, device=device))
    labels = [f"cyclic {k}" if k else "init" for k in range(cycles + 1)] + ["one-cycle"]
    hessian = xr.concat(
        [e[["eigenvalue", "residual"]] for e in eig],
        dim=xr.DataArray(labels, dims="checkpoint"),
        combine_attrs="drop_conflicts",
    )
    save_dataset(hessian, out / "hessian.nc")
    signs = xr.concat(
        [overlap(cyclic.checkpoint(0), cyclic.checkpoint(k)) for k in range(1, cycles + 1)],
        dim=xr.DataArray(list(range(1, cycles + 1)), dims="cycle"),
        combine_attrs="drop_conflicts",
    )
    save_dataset(signs, out / "signs.nc")

    fig_dir = out / "figures"
    figures = [
        save_figure(
            plot_learning_curves({"cyclic": cyclic.metrics, "one-cycle": one_cycle.metrics}),
            fig_dir / "learning_curves.png",
        ),
        save_figure(plot_interpolation(curves, split="test"), fig_dir / "lmc_test.png"),
        save_figure(plot_interpolation(curves, split="train"), fig_dir / "lmc_train.png"),
        save_figure(
            plot_schedules(
                {
                    "cyclic": (cyclic_cfg.schedule, cyclic_cfg.optim.lr),
                    "one-cycle": (one_cycle_cfg.schedule, one_cycle_cfg.optim.lr),
                }
            ),
            fig_dir / "schedules.png",
        ),
        save_figure(plot_checkpoint_eigenvalues(hessian), fig_dir / "hessian.png"),
        save_figure(plot_sign_flip_heatmap(signs), fig_dir / "sign_flips.png"),
    ]
    return DemoResult(out, cyclic, one_cycle, lmc, hessian, signs, figures)
