"""The ``landscape`` command line: a thin layer over the library API.

Errors: bad input prints one line ``error: ...`` to stderr and exits with code 2; a diverged run
exits with code 3; ``--debug`` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
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
# Piped output (files, CI logs, tests) gets a fixed 120 columns, so run names and paths are not wrapped.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu or cuda.")


# CLI flag -> dotted config key; a flag left at None does not override the config file.
FLAG_TO_KEY = {
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
    "distribution": "mask.distribution",
    "scope": "mask.scope",
    "samples_per_class": "mask.samples_per_class",
    "synflow_rounds": "mask.synflow_rounds",
    "smart_ratio_variant": "mask.smart_ratio_variant",
    "erk": "mask.erk",
    "mask_op": "mask.mask_op",
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
    "recipe": "recipe.name",
    "prune_fraction": "recipe.prune_fraction",
    "levels": "recipe.levels",
    "rewind_epoch": "recipe.rewind_epoch",
    "wr_schedule": "recipe.wr_schedule",
    "level_scope": "recipe.level_scope",
    "sculpt_sparsity": "recipe.sculpt_sparsity",
    "sculpt_cycles": "recipe.sculpt_cycles",
    "coupling_init": "recipe.coupling_init",
    "mask_from": "recipe.mask_from",
    "warmup_from": "recipe.warmup_from",
    "signs_from": "recipe.signs_from",
    "corrupt": "recipe.corrupt",
    "seed": "seed",
    "device": "device",
    "name": "name",
    "save_every": "save_every",
    "amp": "amp",
    "channels_last": "channels_last",
    "compile_model": "compile",
}


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
    recipe: str = typer.Option(None, help="pai (default), imp, wr, lrr, sculpt, hybrid or coupling."),
    distribution: str = typer.Option(None, help="random: uniform, erk, er-balanced or smart-ratio."),
    scope: str = typer.Option(None, help="Thresholding of scores: global or layerwise."),
    samples_per_class: int = typer.Option(None, help="snip/grasp: labelled samples per class."),
    synflow_rounds: int = typer.Option(None, help="synflow: pruning rounds."),
    smart_ratio_variant: str = typer.Option(None, help="quadratic, linear, cubic, ascend or uniform."),
    erk: str = typer.Option(None, help="erk: rigl (iterative) or clamp (TurboPrune)."),
    mask_op: str = typer.Option(None, help="Sanity check on new masks: rearrange or shuffle-weights."),
    corrupt: str = typer.Option(None, help="Pruning/pretraining data: random-labels, random-pixels, half-data."),
    prune_fraction: float = typer.Option(None, help="imp/wr/lrr: fraction of remaining weights pruned per level."),
    levels: int = typer.Option(None, help="imp/wr/lrr: number of pruning levels (default: until the target)."),
    rewind_epoch: int = typer.Option(None, help="wr: rewind point (dense epochs); the warmup point for others."),
    wr_schedule: str = typer.Option(None, help="wr: full (new schedule) or remaining."),
    level_scope: str = typer.Option(None, help="Magnitude pruning between levels: global or layerwise."),
    sculpt_sparsity: float = typer.Option(None, help="sculpt: s0, the sparsity of the first mask."),
    sculpt_cycles: int = typer.Option(None, help="sculpt: C0, cycles before the magnitude step."),
    coupling_init: str = typer.Option(None, help="coupling: random, warmup, warmup-signs or random-signs."),
    mask_from: str = typer.Option(None, help="coupling: checkpoint whose mask is trained."),
    warmup_from: str = typer.Option(None, help="coupling: checkpoint with the warmup (dense, early) weights."),
    signs_from: str = typer.Option(None, help="coupling: checkpoint whose signs are used (default: --mask-from)."),
    amp: str = typer.Option(None, help="Mixed precision for training: none, bf16 or fp16."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last", help="channels_last layout."),
    compile_model: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the training forward."),
    ddp: int = typer.Option(0, help="Train with DistributedDataParallel on this many processes (torchrun)."),
    quiet: bool = QuietOpt,
) -> None:
    """Train a (sparse) network with a recipe; prints the run folder. A complete run is not trained again."""
    flags = dict(locals())  # the command's arguments, before any other local is defined
    from training.config import TrainConfig, load_yaml, replace_dotted
    from training.errors import ConfigError
    from training.recipes import train as run_train

    ms = None
    if milestones is not None:
        try:
            ms = [float(m) for m in milestones.split(",") if m.strip()]
        except ValueError as exc:
            raise ConfigError(f"--milestones must be comma-separated numbers, got {milestones!r}") from exc
    base = load_yaml(config) if config else TrainConfig()
    flags["milestones"] = ms
    overrides = {key: flags[flag] for flag, key in FLAG_TO_KEY.items() if flags[flag] is not None}
    cfg = replace_dotted(base, overrides)
    if ddp > 1:
        print(_train_ddp(cfg, out, ddp, quiet))
        return
    result = run_train(cfg, out, quiet=quiet)
    m = result.metrics
    if "level" in m.dims:
        m = m.isel(level=-1).dropna("cycle", how="all")
    if not quiet:
        final = (
            f"final: train loss {float(m['train_loss'][-1, -1]):.4f}, test error {float(m['test_error'][-1, -1]):.4f}"
        )
        print(final, file=sys.stderr)
    print(result.run_dir)  # plain print: the one machine-readable line, never wrapped


def _train_ddp(cfg: Any, out: Path, nproc: int, quiet: bool) -> str:
    """Run ``python -m training`` under torchrun with ``nproc`` processes; return the run folder."""
    import os
    import subprocess
    import tempfile

    from training.config import to_yaml, validate

    validate(cfg)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(to_yaml(cfg))
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "training",
        "--config",
        fh.name,
        "--out",
        str(out),
        *(["--quiet"] if quiet else []),
    ]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        raise UserError(lines[0][len("error: ") :] if lines else f"torchrun failed (exit {proc.returncode})")
    return proc.stdout.strip().splitlines()[-1]


def _checkpoint_data(meta: dict[str, Any], data: str | None, data_root: str | None) -> Any:
    """The DataBundle a checkpoint was trained on (its meta's data config), with CLI overrides."""
    import dataclasses

    from training.config import DataConfig, from_dict
    from training.data import load_data

    data_cfg = from_dict(DataConfig, meta.get("data_config") or {"name": meta["dataset"]})
    changes = {k: v for k, v in (("name", data), ("root", data_root)) if v is not None}
    return load_data(dataclasses.replace(data_cfg, **changes))


def _splits(split: str) -> list[str]:
    if split not in ("test", "train", "both"):
        raise UserError(f"unknown split {split!r}; choose from: test, train, both")
    return ["train", "test"] if split == "both" else [split]


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
    from landscape.checkpoint import check_compatible, load_checkpoint
    from landscape.interpolate import interpolate as run_interpolate
    from landscape.results import save_dataset

    names = _splits(split)
    if points < 2:
        raise UserError(f"--points must be at least 2 (both endpoints), got {points}")
    a, b = load_checkpoint(ckpt_a), load_checkpoint(ckpt_b)
    check_compatible(a, b)
    bundle = _checkpoint_data(a.meta, data, data_root)
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
def prune(
    ckpt: Path = typer.Argument(..., help="Checkpoint to prune (its mask is respected)."),
    method: str = typer.Option(..., help="random, magnitude, snip, grasp or synflow."),
    sparsity: float = typer.Option(..., help="Target fraction of prunable weights set to zero, in [0, 1)."),
    out: Path = typer.Option(..., help="Output checkpoint."),
    scope: str = typer.Option("global", help="global or layerwise."),
    distribution: str = typer.Option("uniform", help="random: uniform, erk, er-balanced or smart-ratio."),
    samples_per_class: int = typer.Option(10, help="snip/grasp: labelled samples per class."),
    synflow_rounds: int = typer.Option(100, help="synflow: pruning rounds."),
    data: str = typer.Option(None, help="Dataset for snip/grasp (default: the checkpoint's)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    seed: int = typer.Option(0, help="Seed for random masks and sample selection."),
) -> None:
    """Apply a scorer to a checkpoint's weights and write a new checkpoint with the pruned mask."""
    import torch

    from landscape.checkpoint import load_checkpoint
    from training.checkpoint import save_checkpoint
    from training.masks import apply_mask
    from training.pruning import METHODS, check_sparsity
    from training.pruning import prune as run_prune

    if method not in METHODS:
        raise UserError(f"unknown pruning method {method!r}; choose from: {', '.join(METHODS)}")
    check_sparsity(sparsity)
    source = load_checkpoint(ckpt)
    options: dict[str, Any] = {}
    batch = None
    if method in ("snip", "grasp"):
        bundle = _checkpoint_data(source.meta, data, data_root)
        batch = bundle.labelled_sample(samples_per_class, torch.Generator().manual_seed(seed))
    if method == "random":
        options = {"distribution": distribution, "generator": torch.Generator().manual_seed(seed)}
    if method == "synflow":
        options = {"rounds": synflow_rounds, "input_shape": tuple(source.meta["model_kwargs"]["input_shape"])}
    mask = run_prune(source.model, method, sparsity, data=batch, mask=source.mask, scope=scope, **options)
    apply_mask(source.model, mask)
    meta = dict(source.meta)
    total = sum(m.numel() for m in mask.values())
    meta.update(
        sparsity=1.0 - sum(int(m.sum()) for m in mask.values()) / total,
        pruned_from={"path": str(ckpt), "sha256": source.sha256, "method": method, "scope": scope},
    )
    save_checkpoint(out, source.model.state_dict(), mask, meta)
    print(f"wrote {out} (sparsity {meta['sparsity']:.4f})")


@app.command()
def hessian(
    ckpt: Path = typer.Argument(..., help="Checkpoint (its mask defines the sparse subspace)."),
    top_k: int = typer.Option(1, "--top-k", help="Number of top eigenvalues."),
    trace: bool = typer.Option(False, "--trace", help="Also estimate the trace (Hutchinson)."),
    density: bool = typer.Option(False, "--density", help="Also estimate the spectral density (SLQ)."),
    batches: int = typer.Option(1, help="Training batches the Hessian is averaged over."),
    batch_size: int = typer.Option(128, help="Samples per batch (unaugmented training data)."),
    subspace: str = typer.Option("mask", help="mask (kept weights and all other parameters) or dense."),
    method: str = typer.Option("lanczos", help="lanczos, eigsh, power or pyhessian."),
    tol: float = typer.Option(1e-3, help="Relative tolerance."),
    max_iter: int = typer.Option(100, help="Iteration cap."),
    seed: int = typer.Option(0),
    data: str = typer.Option(None, help="Dataset (default: the checkpoint's)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
) -> None:
    """Top-k Hessian eigenvalues (and optionally trace and density) of the mean training loss."""
    import itertools

    import xarray as xr

    from landscape.checkpoint import load_checkpoint
    from landscape.hessian import hessian_density, hessian_eigenvalues, hessian_trace
    from landscape.results import save_dataset

    if batches < 1 or batch_size < 1:
        raise UserError("--batches and --batch-size must be at least 1")
    c = load_checkpoint(ckpt)
    bundle = _checkpoint_data(c.meta, data, data_root)
    chosen = list(itertools.islice(bundle.eval_loader("train", batch_size), batches))
    parts = [
        hessian_eigenvalues(
            c, chosen, k=top_k, tol=tol, max_iter=max_iter, method=method, subspace=subspace, seed=seed, device=device
        )
    ]
    table = Table(
        title=f"Hessian of the mean loss over {sum(len(b[1]) for b in chosen)} samples "
        f"({subspace} subspace, dimension {parts[0].attrs['dimension']})"
    )
    for col in ("k", "eigenvalue", "residual"):
        table.add_column(col, justify="right")
    for k, val, res in zip(
        parts[0]["k"].values, parts[0]["eigenvalue"].values, parts[0]["residual"].values, strict=True
    ):
        table.add_row(str(k), f"{val:.6g}", f"{res:.2e}")
    out_console.print(table)
    if trace:
        t = hessian_trace(c, chosen, subspace=subspace, seed=seed, device=device)
        out_console.print(f"trace {float(t['trace']):.6g} ± {float(t['trace_stderr']):.2g} ({int(t['probes'])} probes)")
        parts.append(t)
    if density:
        parts.append(hessian_density(c, chosen, subspace=subspace, seed=seed, device=device))
        out_console.print("density: computed (SLQ)")
    if out is not None:
        save_dataset(xr.merge(parts, combine_attrs="drop_conflicts"), out)
        print(f"wrote {out}")


@app.command()
def signs(
    ckpt_a: Path = typer.Argument(...),
    ckpt_b: Path = typer.Argument(...),
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
) -> None:
    """Sign flips, mask IoU, Hamming distance, retention and keep ratios per layer and in total."""
    from landscape.results import save_dataset
    from landscape.signs import sign_flips

    ds = sign_flips(ckpt_a, ckpt_b)
    table = Table(title="sign flips (on weights kept in both) and mask overlap")
    cols = ("flip_fraction", "iou", "hamming", "retention", "keep_ratio_a", "keep_ratio_b")
    table.add_column("layer")
    for col in cols:
        table.add_column(col.replace("_", " "), justify="right")
    for i, layer in enumerate(ds["layer"].values):
        table.add_row(str(layer), *[f"{float(ds[c].values[i]):.4f}" for c in cols])
    table.add_row("total", *[f"{float(ds[c + '_total']):.4f}" for c in cols])
    out_console.print(table)
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")


@app.command()
def surface(
    ckpts: list[Path] = typer.Argument(..., help="One checkpoint (random directions) or three (their plane)."),
    grid: int = typer.Option(21, help="Points per axis."),
    span: str = typer.Option("-1,1", help="Range of each random-direction axis, e.g. -1,1."),
    directions: int = typer.Option(2, help="1 or 2 random directions."),
    split: str = typer.Option("test", help="test or train."),
    bn: str = typer.Option(None, help="none or recalibrate (default: none for directions, recalibrate for planes)."),
    batch_size: int = typer.Option(1000, help="Evaluation batch size."),
    seed: int = typer.Option(0, help="Seed of the random directions."),
    data: str = typer.Option(None, help="Dataset (default: the checkpoint's)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    figure: Path = typer.Option(None, help="Write a contour/heat-map figure (PNG or PDF)."),
    quiet: bool = QuietOpt,
) -> None:
    """Loss and error on a grid: random filter-normalised directions, or the plane through three checkpoints."""
    from landscape.checkpoint import load_checkpoint
    from landscape.plot import plot_surface, save_figure
    from landscape.results import save_dataset
    from landscape.surface import plane
    from landscape.surface import surface as run_surface

    if len(ckpts) not in (1, 3):
        raise UserError(f"give one checkpoint or three, got {len(ckpts)}")
    if split not in ("test", "train"):
        raise UserError(f"unknown split {split!r}; choose from: test, train")
    try:
        lo, hi = (float(v) for v in span.split(","))
    except ValueError as exc:
        raise UserError(f"--span must be two comma-separated numbers, got {span!r}") from exc
    loaded = [load_checkpoint(p) for p in ckpts]
    bundle = _checkpoint_data(loaded[0].meta, data, data_root)
    loader = bundle.eval_loader(split, batch_size)
    bn_data = bundle.eval_loader("train", batch_size)
    if len(loaded) == 1:
        ds = run_surface(
            loaded[0], loader, directions, grid, (lo, hi), seed, bn or "none", bn_data, device=device, quiet=quiet
        )
    else:
        ds = plane(*loaded, loader, grid=grid, bn=bn or "recalibrate", bn_data=bn_data, device=device, quiet=quiet)
    out_console.print(
        f"{ds.attrs['kind']}: loss in [{float(ds['loss'].min()):.4f}, {float(ds['loss'].max()):.4f}], "
        f"error in [{float(ds['error'].min()):.4f}, {float(ds['error'].max()):.4f}] on {split}"
    )
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")
    if figure is not None:
        save_figure(plot_surface(ds), figure)
        print(f"wrote {figure}")


@app.command()
def analyze(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders (with manifest.json)."),
    lmc: str = typer.Option("consecutive", help="consecutive, init or none."),
    hessian_k: int = typer.Option(0, "--hessian-k", help="Top-k Hessian eigenvalues at every checkpoint (0: none)."),
    signs: bool = typer.Option(True, "--signs/--no-signs", help="Sign and mask statistics."),
    points: int = typer.Option(11, help="α points per interpolation."),
    split: str = typer.Option("test", help="test, train or both."),
    hessian_batch_size: int = typer.Option(128, help="Samples in the Hessian batch."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the merged Dataset to this netCDF file."),
    quiet: bool = QuietOpt,
) -> None:
    """Analyse run folders: LMC, Hessian and signs along each run's checkpoints, cached by content hash."""
    from landscape.batch import analyze as run_analyze
    from landscape.results import save_dataset

    ds = run_analyze(
        run_dirs,
        lmc=lmc,
        hessian_k=hessian_k,
        signs=signs,
        points=points,
        splits=tuple(_splits(split)),
        hessian_batch_size=hessian_batch_size,
        data_root=data_root,
        device=device,
        quiet=quiet,
    )
    table = Table(
        title=f"{ds.sizes['run']} runs ({ds.attrs['cache_hits']} cached pieces, {ds.attrs['cache_misses']} computed)"
    )
    for col in ("run", "status", "points", "final test error", "max error barrier", "final λ1"):
        table.add_column(col, justify="right")
    for run in ds["run"].values:
        sel = ds.sel(run=run)
        n = int((sel["level"] >= 0).sum())

        def last(var: str, sel: Any = sel) -> str:
            if var not in sel:
                return "-"
            vals = sel[var].values.reshape(sel.sizes["point"], -1)[:, 0]
            vals = vals[np.isfinite(vals)]
            return f"{vals[-1]:.4f}" if len(vals) else "-"

        barrier = "-"
        if "error_barrier" in sel and np.isfinite(sel["error_barrier"].values).any():
            barrier = f"{np.nanmax(sel['error_barrier'].values):.4f}"
        table.add_row(str(run), str(sel["status"].item()), str(n), last("test_error"), barrier, last("eigenvalue"))
    out_console.print(table)
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")


@app.command()
def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep YAML: out, base, grid, executor, analyze."),
    executor: str = typer.Option("local", help="local (this machine) or slurm."),
    max_parallel: int = typer.Option(1, help="Jobs running at once."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run and what is done; submit nothing."),
    analyze: bool = typer.Option(False, "--analyze", help="Afterwards, analyse every complete run in one job."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Slurm: wait for the jobs and report them."),
    out: Path = typer.Option(None, help="Parent folder of the runs (overrides the file's out)."),
) -> None:
    """Expand a grid into runs named by config hash and submit the unfinished ones through submitit."""
    from landscape.sweep import load_sweep, submit

    spec = load_sweep(sweep_file, out)
    report = submit(spec, executor=executor, max_parallel=max_parallel, dry_run=dry_run, analyze=analyze, wait=wait)
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
    failed = [n for n, o in report.finished.items() if o.startswith("failed")]
    if failed:
        raise UserError(f"{len(failed)} run(s) failed, e.g. {failed[0]}: {report.finished[failed[0]]}")


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
