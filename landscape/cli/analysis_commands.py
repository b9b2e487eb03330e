"""Commands that analyse checkpoints and run folders: ``interpolate``, ``hessian``, ``signs``,
``surface`` and ``analyze``. Each prints a table and writes an xarray Dataset with ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer
import xarray as xr
from rich.table import Table

from landscape.cli.app import AlignOpt, DeviceOpt, QuietOpt, SamplesOpt, SamplesSeedOpt, app, out_console
from landscape.cli.connectivity_commands import print_pairs, print_path, samples_attrs
from landscape.cli.connectivity_commands import split_names as _splits
from training.errors import UserError


@app.command()
def interpolate(
    ckpt_a: Path = typer.Argument(..., help="Checkpoint at α = 0."),
    ckpt_b: Path = typer.Argument(..., help="Checkpoint at α = 1."),
    points: int = typer.Option(31, help="Number of α values in [0, 1], endpoints included (≥ 2)."),
    split: str = typer.Option("test", help="test, train or both."),
    bn: str = typer.Option("recalibrate", help="recalibrate (BN models), none, or repair (models without BN)."),
    bn_batches: int = typer.Option(None, help="Batches for BN recalibration (default: the whole train split)."),
    barrier: str = typer.Option("endpoint-mean", help="endpoint-mean (Frankle et al.) or chord: the one shown first."),
    align: str = AlignOpt,
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data: str = typer.Option(None, help="Dataset (default: the checkpoints' dataset)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    batch_size: int = typer.Option(1000, help="Evaluation batch size."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    quiet: bool = QuietOpt,
) -> None:
    """Evaluate the linear path between two checkpoints (optionally aligned) and print both barriers."""
    from landscape.interpolate import interpolate as run_interpolate
    from landscape.results import save_dataset
    from training.checkpoint import check_compatible, checkpoint_bundle, load_checkpoint

    names = _splits(split)
    if points < 2:
        raise UserError(f"--points must be at least 2 (both endpoints), got {points}")
    a, b = load_checkpoint(ckpt_a), load_checkpoint(ckpt_b)
    check_compatible(a, b)
    bundle = checkpoint_bundle(a, dataset=data, root=data_root, samples=samples, samples_seed=samples_seed)
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
        align=align,
        device=device,
        quiet=quiet,
    )
    ds.attrs.update(samples_attrs(samples, samples_seed))
    print_path(ds)
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")


@app.command()
def hessian(
    ckpt: Path = typer.Argument(..., help="Checkpoint (its mask defines the sparse subspace)."),
    k: int = typer.Option(1, "--top-k", help="Number of top eigenvalues."),
    trace: bool = typer.Option(False, "--trace", help="Also estimate the trace (Hutchinson)."),
    density: bool = typer.Option(False, "--density", help="Also estimate the spectral density (SLQ)."),
    batches: int = typer.Option(1, help="Training batches the Hessian is averaged over."),
    batch_size: int = typer.Option(128, help="Samples per batch (unaugmented training data)."),
    subspace: str = typer.Option("mask", help="mask (kept weights and all other parameters) or dense."),
    method: str = typer.Option("lanczos", help="lanczos, eigsh, power or pyhessian."),
    tol: float = typer.Option(1e-3, help="Relative tolerance."),
    max_iter: int = typer.Option(100, help="Iteration cap."),
    seed: int = typer.Option(0),
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data: str = typer.Option(None, help="Dataset (default: the checkpoint's)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
) -> None:
    """Top-k Hessian eigenvalues (and optionally trace and density) of the mean training loss."""
    import itertools

    import xarray as xr

    from landscape.hessian import hessian_density, hessian_eigenvalues, hessian_trace
    from landscape.results import save_dataset
    from training.checkpoint import checkpoint_bundle, load_checkpoint

    if batches < 1 or batch_size < 1:
        raise UserError("--batches and --batch-size must be at least 1")
    c = load_checkpoint(ckpt)
    bundle = checkpoint_bundle(c, dataset=data, root=data_root, samples=samples, samples_seed=samples_seed)
    chosen = list(itertools.islice(bundle.eval_loader("train", batch_size), batches))
    parts = [
        hessian_eigenvalues(
            c, chosen, k=k, tol=tol, max_iter=max_iter, method=method, subspace=subspace, seed=seed, device=device
        )
    ]
    table = Table(
        title=f"Hessian of the mean loss over {sum(len(b[1]) for b in chosen)} samples "
        f"({subspace} subspace, dimension {parts[0].attrs['dimension']})"
    )
    for col in ("k", "eigenvalue", "residual"):
        table.add_column(col, justify="right")
    for rank, val, res in zip(
        parts[0]["k"].values, parts[0]["eigenvalue"].values, parts[0]["residual"].values, strict=True
    ):
        table.add_row(str(rank), f"{val:.6g}", f"{res:.2e}")
    out_console.print(table)
    if trace:
        t = hessian_trace(c, chosen, subspace=subspace, seed=seed, device=device)
        out_console.print(f"trace {float(t['trace']):.6g} ± {float(t['trace_stderr']):.2g} ({int(t['probes'])} probes)")
        parts.append(t)
    if density:
        parts.append(hessian_density(c, chosen, subspace=subspace, seed=seed, device=device))
        out_console.print("density: computed (SLQ)")
    if out is not None:
        save_dataset(
            xr.merge(parts, combine_attrs="drop_conflicts").assign_attrs(samples_attrs(samples, samples_seed)), out
        )
        print(f"wrote {out}")


@app.command()
def signs(
    ckpt_a: Path = typer.Argument(...),
    ckpt_b: Path = typer.Argument(...),
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
) -> None:
    """Sign flips, mask IoU, Hamming distance, retention and keep ratios per layer and in total."""
    from landscape.overlap import overlap
    from landscape.results import save_dataset

    ds = overlap(ckpt_a, ckpt_b)
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
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data: str = typer.Option(None, help="Dataset (default: the checkpoint's)."),
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    figure: Path = typer.Option(None, help="Write a contour/heat-map figure (PNG or PDF)."),
    quiet: bool = QuietOpt,
) -> None:
    """Loss and error on a grid: random filter-normalised directions, or the plane through three checkpoints."""
    from landscape.plot import plot_surface, save_figure
    from landscape.results import save_dataset
    from landscape.surface import plane
    from landscape.surface import surface as run_surface
    from training.checkpoint import checkpoint_bundle, load_checkpoint

    if len(ckpts) not in (1, 3):
        raise UserError(f"give one checkpoint or three, got {len(ckpts)}")
    if split not in ("test", "train"):
        raise UserError(f"unknown split {split!r}; choose from: test, train")
    try:
        lo, hi = (float(v) for v in span.split(","))
    except ValueError as exc:
        raise UserError(f"--span must be two comma-separated numbers, got {span!r}") from exc
    loaded = [load_checkpoint(p) for p in ckpts]
    bundle = checkpoint_bundle(loaded[0], dataset=data, root=data_root, samples=samples, samples_seed=samples_seed)
    loader = bundle.eval_loader(split, batch_size)
    bn_data = bundle.eval_loader("train", batch_size)
    if len(loaded) == 1:
        ds = run_surface(
            loaded[0], loader, directions, grid, (lo, hi), seed, bn or "none", bn_data, device=device, quiet=quiet
        )
    else:
        ds = plane(*loaded, loader, grid=grid, bn=bn or "recalibrate", bn_data=bn_data, device=device, quiet=quiet)
    ds.attrs.update(samples_attrs(samples, samples_seed))
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
    align: str = typer.Option(
        None,
        help="Also compare the runs' final checkpoints pairwise, straight and aligned by these methods "
        "(comma-separated: weight-matching, activation-matching).",
    ),
    pairs: str = typer.Option("all", help="Pairs for --align: all (every two runs) or consecutive."),
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the merged Dataset to this netCDF file."),
    quiet: bool = QuietOpt,
) -> None:
    """Analyse run folders: LMC, Hessian and signs along each run's checkpoints, cached by content hash;
    with --align, also the barriers between the runs' final checkpoints, straight and aligned."""
    from landscape.analysis import analyze as run_analyze
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
    if align:
        from landscape.pairs import compare_runs

        methods = ("none", *[m.strip() for m in align.split(",") if m.strip() and m.strip() != "none"])
        pair_ds = compare_runs(
            run_dirs, align=methods, pairs=pairs, points=points, splits=tuple(_splits(split)), data_root=data_root,
            samples=samples, samples_seed=samples_seed, device=device, quiet=quiet,
        )  # fmt: skip
        print_pairs(pair_ds)
        ds = xr.merge([ds, pair_ds], combine_attrs="drop_conflicts")
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")
