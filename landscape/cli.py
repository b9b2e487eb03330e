"""The ``landscape`` command line: a thin layer over the library API.

Errors: bad input prints one line ``error: ...`` to stderr and exits with code 2; a diverged run
exits with code 3; ``--debug`` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from training.errors import LandscapeError, UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Sparse training and loss-landscape analysis. Run `landscape demo` for the main job on MNIST-1D.",
)
out_console = Console(highlight=False)


QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu or cuda.")


def _train_overrides(**flags: Any) -> dict[str, Any]:
    """Map CLI flags (None = not given) to dotted config keys."""
    mapping = {
        "model": "model.name",
        "width": "model.width",
        "data": "data.name",
        "data_root": "data.root",
        "batch_size": "data.batch_size",
        "workers": "data.num_workers",
        "augment": "data.augment",
        "prune": "mask.method",
        "sparsity": "mask.sparsity",
        "prune_shortcuts": "mask.prune_shortcuts",
        "prune_last": "mask.prune_last",
        "schedule": "schedule.name",
        "cycles": "schedule.cycles",
        "epochs": "schedule.epochs",
        "warmup_fraction": "schedule.warmup_fraction",
        "warmup_start": "schedule.warmup_start",
        "decay": "schedule.decay",
        "skip_warmup": "schedule.skip_warmup",
        "milestones": "schedule.milestones",
        "gamma": "schedule.gamma",
        "lr": "optim.lr",
        "momentum": "optim.momentum",
        "nesterov": "optim.nesterov",
        "weight_decay": "optim.weight_decay",
        "seed": "seed",
        "device": "device",
        "name": "name",
        "save_every": "save_every",
    }
    return {mapping[k]: v for k, v in flags.items() if v is not None}


@app.command()
def train(
    model: str = typer.Option(None, help="Model: mlp, cnn1d, resnet20/32/56, resnet18, vgg16/19, resnet50."),
    data: str = typer.Option(None, help="Dataset: mnist1d, cifar10, cifar100, imagenet, synthetic."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files (nothing is downloaded)."),
    prune: str = typer.Option(None, help="Initial mask: none (dense) or random (uniform per layer)."),
    sparsity: float = typer.Option(None, help="Fraction of prunable weights set to zero, in [0, 1)."),
    schedule: str = typer.Option(None, help="one-cycle, cyclic or step."),
    cycles: int = typer.Option(None, help="Number of cycles (cyclic/step)."),
    epochs: int = typer.Option(None, help="Epochs per cycle."),
    lr: float = typer.Option(None, help="Peak learning rate."),
    batch_size: int = typer.Option(None, help="Training batch size."),
    seed: int = typer.Option(None, help="Seed for init, mask, data order and augmentation."),
    device: str = typer.Option(None, help="auto, cpu or cuda."),
    out: Path = typer.Option(Path("runs"), help="Parent folder of run folders."),
    config: Path = typer.Option(None, "--config", help="YAML config; flags override it."),
    width: int = typer.Option(None, help="Model width (model-specific meaning)."),
    momentum: float = typer.Option(None),
    nesterov: bool = typer.Option(None, "--nesterov/--no-nesterov"),
    weight_decay: float = typer.Option(None),
    warmup_fraction: float = typer.Option(None, help="Fraction of each cycle spent warming up."),
    warmup_start: float = typer.Option(None, help="Warmup starts at this fraction of the peak."),
    decay: str = typer.Option(None, help="linear or cosine decay after warmup."),
    skip_warmup: bool = typer.Option(None, "--skip-warmup/--no-skip-warmup", help="No warmup after cycle 1."),
    milestones: str = typer.Option(None, help="step: comma-separated fractions of a cycle, e.g. 0.5,0.75."),
    gamma: float = typer.Option(None, help="step: factor at each milestone."),
    prune_shortcuts: bool = typer.Option(None, "--prune-shortcuts/--keep-shortcuts-dense"),
    prune_last: bool = typer.Option(None, "--prune-last/--keep-last-dense"),
    augment: bool = typer.Option(None, "--augment/--no-augment"),
    workers: int = typer.Option(None, help="DataLoader workers (CIFAR/ImageNet)."),
    save_every: int = typer.Option(None, help="Also checkpoint every N epochs."),
    name: str = typer.Option(None, help="Run folder prefix (default <model>-<dataset>)."),
    quiet: bool = QuietOpt,
) -> None:
    """Train a (sparse) network; prints the run folder. A complete run is not trained again."""
    from training.config import TrainConfig, load_yaml, replace_dotted
    from training.errors import ConfigError
    from training.trainer import train as run_train

    ms = None
    if milestones is not None:
        try:
            ms = [float(m) for m in milestones.split(",") if m.strip()]
        except ValueError as exc:
            raise ConfigError(f"--milestones must be comma-separated numbers, got {milestones!r}") from exc
    base = load_yaml(config) if config else TrainConfig()
    overrides = _train_overrides(
        model=model,
        width=width,
        data=data,
        data_root=data_root,
        batch_size=batch_size,
        workers=workers,
        augment=augment,
        prune=prune,
        sparsity=sparsity,
        prune_shortcuts=prune_shortcuts,
        prune_last=prune_last,
        schedule=schedule,
        cycles=cycles,
        epochs=epochs,
        warmup_fraction=warmup_fraction,
        warmup_start=warmup_start,
        decay=decay,
        skip_warmup=skip_warmup,
        milestones=ms,
        gamma=gamma,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        name=name,
        save_every=save_every,
    )
    cfg = replace_dotted(base, overrides)
    result = run_train(cfg, out, quiet=quiet)
    m = result.metrics
    if not quiet:
        final = (
            f"final: train loss {float(m['train_loss'][-1, -1]):.4f}, test error {float(m['test_error'][-1, -1]):.4f}"
        )
        print(final, file=sys.stderr)
    print(result.run_dir)  # plain print: the one machine-readable line, never wrapped


def _print_interpolation(ds: Any) -> None:
    table = Table(title="loss and error along θ(α) = (1−α)θ_A + αθ_B")
    table.add_column("α", justify="right")
    for split in ds["split"].values:
        table.add_column(f"{split} loss", justify="right")
        table.add_column(f"{split} error", justify="right")
    for i, alpha in enumerate(ds["alpha"].values):
        row = [f"{alpha:.3f}"]
        for split in ds["split"].values:
            row += [
                f"{float(ds['loss'].sel(split=split)[i]):.4f}",
                f"{float(ds['error'].sel(split=split)[i]):.4f}",
            ]
        table.add_row(*row)
    out_console.print(table)
    for split in ds["split"].values:
        out_console.print(
            f"{split}: loss barrier {float(ds['loss_barrier'].sel(split=split)):.4f}, "
            f"error barrier {float(ds['error_barrier'].sel(split=split)):.4f} "
            f"({ds.attrs['barrier_definition']}, bn={ds.attrs['bn']})"
        )


@app.command()
def interpolate(
    ckpt_a: Path = typer.Argument(..., help="Checkpoint at α = 0."),
    ckpt_b: Path = typer.Argument(..., help="Checkpoint at α = 1."),
    points: int = typer.Option(31, help="Number of α values in [0, 1], endpoints included (≥ 2)."),
    split: str = typer.Option("test", help="test, train or both."),
    bn: str = typer.Option("recalibrate", help="recalibrate (BN models) or none."),
    bn_batches: int = typer.Option(None, help="Batches for BN recalibration (default: the whole train split)."),
    barrier: str = typer.Option("endpoint-mean", help="endpoint-mean (Frankle et al.) or linear."),
    data: str = typer.Option(None, help="Dataset (default: the checkpoints' dataset)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    batch_size: int = typer.Option(1000, help="Evaluation batch size."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    quiet: bool = QuietOpt,
) -> None:
    """Evaluate the linear path between two checkpoints and print the barriers."""
    import dataclasses

    from landscape.checkpoint import check_compatible, load_checkpoint
    from landscape.interpolate import interpolate as run_interpolate
    from landscape.results import save_dataset
    from training.config import DataConfig, from_dict
    from training.data import load_data

    if split not in ("test", "train", "both"):
        raise UserError(f"unknown split {split!r}; choose from: test, train, both")
    if points < 2:
        raise UserError(f"--points must be at least 2 (both endpoints), got {points}")
    a, b = load_checkpoint(ckpt_a), load_checkpoint(ckpt_b)
    check_compatible(a, b)
    data_cfg = from_dict(DataConfig, a.meta.get("data_config") or {"name": a.meta["dataset"]})
    changes: dict[str, Any] = {}
    if data is not None:
        changes["name"] = data
    if data_root is not None:
        changes["root"] = data_root
    data_cfg = dataclasses.replace(data_cfg, **changes)
    bundle = load_data(data_cfg)
    names = ["train", "test"] if split == "both" else [split]
    splits = {s: bundle.eval_loader(s, batch_size) for s in names}
    ds = run_interpolate(
        a,
        b,
        splits,
        points=points,
        bn=bn,
        bn_data=bundle.eval_loader("train", batch_size),
        bn_batches=bn_batches,
        barrier_kind=barrier,
        device=device,
        quiet=quiet,
    )
    _print_interpolation(ds)
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("landscape-demo"), help="Output folder."),
    cycles: int = typer.Option(4, help="Cycles of the cyclic run."),
    epochs: int = typer.Option(8, help="Epochs per cycle (one-cycle trains cycles × epochs)."),
    sparsity: float = typer.Option(0.9, help="Sparsity of the random mask."),
    seed: int = typer.Option(0),
    points: int = typer.Option(21, help="α points per interpolation."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Cyclic vs one-cycle sparse training on MNIST-1D, LMC between cycles, and figures."""
    from landscape.demo import run_demo

    start = time.perf_counter()
    result = run_demo(
        out,
        cycles=cycles,
        epochs=epochs,
        sparsity=sparsity,
        seed=seed,
        device=device,
        points=points,
        quiet=quiet,
    )
    table = Table(title=f"cnn1d on MNIST-1D, random mask at {sparsity:.0%} sparsity, {cycles * epochs} epochs")
    for col in ("schedule", "final train loss", "final test error", "best test error"):
        table.add_column(col, justify="right")
    for label, tl, te, best in result.summary_rows():
        table.add_row(label, f"{tl:.4f}", f"{te:.4f}", f"{best:.4f}")
    out_console.print(table)
    lmc = Table(title="linear mode connectivity (BN recalibrated; barrier = max f(α) − ½(f(0)+f(1)))")
    for col in ("pair", "test loss barrier", "test error barrier", "train error barrier"):
        lmc.add_column(col, justify="right")
    for pair in result.lmc["pair"].values:
        sel = result.lmc.sel(pair=pair)
        lmc.add_row(
            str(pair),
            f"{float(sel['loss_barrier'].sel(split='test')):.4f}",
            f"{float(sel['error_barrier'].sel(split='test')):.4f}",
            f"{float(sel['error_barrier'].sel(split='train')):.4f}",
        )
    out_console.print(lmc)
    out_console.print(f"results: {result.out / 'lmc.nc'}, runs under {result.out / 'runs'}")
    for fig in result.figures:
        out_console.print(f"figure: {fig}")
    out_console.print(f"done in {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app and maps errors to exit codes (2 bad input, 3 diverged)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        result = app(args=args, prog_name="landscape", standalone_mode=False)
    except LandscapeError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # click's usage errors (typer vendors click, so match on its interface, not its class)
            print(f"error: {exc.format_message()} (see --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
