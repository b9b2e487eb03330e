"""Commands that produce runs and checkpoints: ``train``, ``prune``, ``sweep`` and ``demo``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from landscape.cli.app import (
    DataOpt,
    DataRootOpt,
    DeviceOpt,
    QuietOpt,
    app,
    check_options,
    out_console,
    sigterm_as_interrupt,
)
from landscape.cli.config_flags import config_overrides, config_parameters, with_parameters
from training.checks import AT_LEAST_ONE, FRACTION, Range
from training.errors import Interrupted, UserError
from training.outputs import CHECKPOINT_SUFFIXES, check_output, check_output_folder
from training.validate import CHOICES

PRUNE_METHODS = [m for m in CHOICES["mask.method"][1] if m != "none"]

# The mask options a pruning method can declare (see training.pruning.METHODS), as `landscape prune` flags.
PRUNE_OPTION_KEYS = (
    "mask.scope",
    "mask.distribution",
    "mask.smart_ratio_variant",
    "mask.smart_ratio_scaling",
    "mask.erk",
    "mask.samples_per_class",
    "mask.synflow_rounds",
    "mask.synflow_float64",
    "mask.grasp_temperature",
)


def train(
    out: Path = typer.Option(Path("runs"), help="Parent folder of run folders."),
    config: Path = typer.Option(None, "--config", help="YAML config; flags and --set override it."),
    set_: list[str] = typer.Option(
        None,
        "--set",
        metavar="KEY=VALUE",
        help="Set any config field by its dotted key (repeatable), e.g. schedule.cycles=4.",
    ),
    ddp: int = typer.Option(0, help="Train with DistributedDataParallel on this many local processes (torchrun)."),
    quiet: bool = QuietOpt,
    **fields: Any,
) -> None:
    """Train a (sparse) network with a recipe; prints the run folder. A complete run is not trained again.

    Every config field has a flag below; a flag left out keeps the config file's value (or the default).
    """
    from training.config import TrainConfig, load_yaml, parse_overrides, replace_dotted
    from training.launch import launch_ddp
    from training.run import train as run_train

    base = load_yaml(config) if config else TrainConfig()
    cfg = replace_dotted(base, {**config_overrides(fields), **parse_overrides(set_ or [])})
    if ddp > 1:
        print(launch_ddp(cfg, out, ddp, quiet=quiet))
        return
    try:
        result = run_train(cfg, out, quiet=quiet)
    except KeyboardInterrupt as exc:
        raise Interrupted(
            f"the run folder {Path(out) / cfg.run_name} keeps every finished epoch; run the same command again "
            "to resume from the last one"
        ) from exc
    m = result.metrics
    if "level" in m.dims:
        m = m.isel(level=-1).dropna("cycle", how="all")
    if not quiet:
        final = (
            f"final: train loss {float(m['train_loss'][-1, -1]):.4f}, test error {float(m['test_error'][-1, -1]):.4f}"
        )
        print(final, file=sys.stderr)
    print(result.run_dir)  # plain print: the one machine-readable line, never wrapped


app.command()(with_parameters(train, config_parameters()))


def prune(
    ckpt: Path = typer.Argument(..., help="Checkpoint to prune (its mask is respected)."),
    method: str = typer.Option(..., help=f"Pruning method: {', '.join(PRUNE_METHODS)}."),
    sparsity: float = typer.Option(..., help="Target fraction of prunable weights set to zero, in [0, 1)."),
    out: Path = typer.Option(..., help="Output checkpoint."),
    data: str = DataOpt,
    data_root: str = DataRootOpt,
    seed: int = typer.Option(0, help="Seed for random masks, the labelled sample and GraSP's re-initialisation."),
    **options: Any,
) -> None:
    """Prune a checkpoint's weights with a method and write a new checkpoint with the pruned mask.

    Method options left out take their defaults; an option the method does not take is an error.
    """
    from training.checkpoint import checkpoint_bundle, load_checkpoint
    from training.pruning import METHODS, prune_checkpoint, prune_options

    if method not in METHODS:
        raise UserError(f"unknown pruning method {method!r}; choose from: {', '.join(METHODS)}")
    given = {k.split(".", 1)[1]: v for k, v in config_overrides(options).items()}
    prune_options(method, sparsity, **given)  # bad options fail before the checkpoint or any data is read
    check_output(out, inputs=[ckpt], suffixes=CHECKPOINT_SUFFIXES)
    source = load_checkpoint(ckpt)
    bundle = checkpoint_bundle(source, dataset=data, root=data_root) if METHODS[method].needs_data else None
    pruned = prune_checkpoint(source, method, sparsity, seed=seed, data=bundle, **given)
    pruned.save(out)
    print(f"wrote {out} (sparsity {pruned.meta['sparsity']:.4f})")


app.command()(with_parameters(prune, config_parameters(PRUNE_OPTION_KEYS)))


@app.command()
def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep YAML: out, base, grid, executor, analyze."),
    executor: str = typer.Option("local", help="local (this machine) or slurm."),
    max_parallel: int = typer.Option(
        None,
        help="Local: jobs at once, spread over the GPUs (default: --runs-per-device per GPU, or on the CPU). "
        "Slurm: array tasks at once (default 1).",
    ),
    runs_per_device: int = typer.Option(
        1,
        help="Jobs sharing one GPU at once (models too small to fill it); on Slurm, runs per GPU of each task.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run and what is done; submit nothing."),
    force: bool = typer.Option(False, "--force", help="Expand a grid of more than 10,000 points (refused otherwise)."),
    analyze: bool = typer.Option(
        False,
        "--analyze",
        help="Afterwards, analyse every complete run in one job (Slurm with --no-wait: a job queued to start "
        "when the training jobs have ended).",
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Slurm: wait for the jobs and report them."),
    out: Path = typer.Option(None, help="Parent folder of the runs (overrides the file's out)."),
) -> None:
    """Expand a grid into runs named by config hash and submit the unfinished ones through submitit."""
    from landscape.sweep import load_sweep, submit

    def announce(points: int) -> None:  # a large grid says its size before the work of expanding it
        if points > 1000:
            print(f"grid: {points:,} points; expanding", file=sys.stderr)

    spec = load_sweep(sweep_file, out, force=force, announce=announce)
    check_output_folder(spec.out, inputs=[sweep_file])
    try:
        with sigterm_as_interrupt():  # a SIGTERM stops the local jobs too, as Ctrl-C does
            report = submit(
                spec,
                executor=executor,
                max_parallel=max_parallel,
                dry_run=dry_run,
                analyze=analyze,
                wait=wait,
                runs_per_device=runs_per_device,
            )
    except KeyboardInterrupt as exc:
        from landscape.packing import JobsKilled

        ended = (
            f"were stopped; {len(exc.pids)} did not end when asked and were killed (pids "
            f"{', '.join(map(str, exc.pids))}), so their last epoch may be lost"
            if isinstance(exc, JobsKilled)
            else "were stopped and have ended"
        )
        raise Interrupted(
            f"the sweep's local training jobs {ended}; every run folder keeps its finished "
            "epochs: run the same command again to resume them"
        ) from exc
    table = Table(title=f"sweep: {len(report.before)} runs under {report.out}")
    for col in ("run", "before", "after"):
        table.add_column(col)
    for name, status in report.before.items():
        after = report.finished.get(name, "(dry run)" if dry_run and name in report.submitted else status)
        table.add_row(name, status, after)
    out_console.print(table)
    counts = {s: list(report.before.values()).count(s) for s in ("complete", "interrupted", "new", "diverged")}
    out_console.print(
        f"before: {counts}; submitted {len(report.submitted)}" + (" (dry run: nothing submitted)" if dry_run else "")
    )
    if report.analysis is not None:
        print(f"wrote {report.analysis}")
    if report.analysis_job is not None:
        target = report.out / "sweep-analysis.nc"
        print(f"analysis job {report.analysis_job} queued to run after the training jobs; it writes {target}")
    failed = [n for n, o in report.finished.items() if o.startswith("failed")]
    if failed:
        raise UserError(f"{len(failed)} run(s) failed, e.g. {failed[0]}: {report.finished[failed[0]]}")


@app.command()
def demo(
    out: Path = typer.Option(Path("landscape-demo"), help="Output folder."),
    cycles: int = typer.Option(4, help="Cycles of the cyclic run."),
    epochs: int = typer.Option(8, help="Epochs per cycle (one-cycle trains cycles × epochs)."),
    sparsity: float = typer.Option(0.9, help="Sparsity of the random mask, in [0, 1)."),
    seed: int = typer.Option(0, help="Seed of both runs (initialisation, mask and data order)."),
    points: int = typer.Option(21, help="α points per interpolation."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Cyclic vs one-cycle sparse training on MNIST-1D, LMC between cycles, and figures."""
    from landscape.demo import run_demo

    check_options(
        cycles=(cycles, AT_LEAST_ONE), epochs=(epochs, AT_LEAST_ONE), sparsity=(sparsity, FRACTION),
        points=(points, Range(ge=2, integer=True)),
    )  # fmt: skip
    check_output_folder(out)

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
    eig = Table(title="top Hessian eigenvalue (mask subspace, 512 training samples)")
    eig.add_column("checkpoint")
    eig.add_column("λ1", justify="right")
    for label, value in zip(
        result.hessian["checkpoint"].values, result.hessian["eigenvalue"].sel(k=1).values, strict=True
    ):
        eig.add_row(str(label), f"{value:.4g}")
    out_console.print(eig)
    flips = result.signs["flip_fraction_total"].values
    out_console.print("sign flips against init, by cycle: " + ", ".join(f"{f:.3f}" for f in flips))
    out_console.print(f"results: {result.out / 'lmc.nc'}, hessian.nc, signs.nc; runs under {result.out / 'runs'}")
    for fig in result.figures:
        out_console.print(f"figure: {fig}")
    out_console.print(f"done in {time.perf_counter() - start:.1f} s")
