"""Commands that analyse checkpoints and run folders: ``interpolate``, ``hessian``, ``signs``,
``surface`` and ``analyze``. Each prints a table and writes an xarray Dataset with ``--out``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from landscape.cli.app import (
    AlignOpt,
    AllowDataOpt,
    BnBatchSizeOpt,
    DataArgOpt,
    DataOpt,
    DeviceOpt,
    LossOpt,
    MaskSourceOpt,
    ModelArgOpt,
    ModelSpecOpt,
    PrefixOpt,
    QuietOpt,
    SamplesOpt,
    SamplesSeedOpt,
    app,
    check_options,
    out_console,
    refuse_idle,
)
from landscape.cli.connectivity_commands import print_path, samples_attrs
from landscape.cli.connectivity_commands import split_names as _splits
from training.checks import AT_LEAST_ONE, AT_LEAST_TWO, MAX_GRID_AXIS, MAX_PATH_POINTS, POSITIVE, Range
from training.errors import UserError
from training.outputs import DATASET_SUFFIXES, FIGURE_SUFFIXES, check_output, check_outputs


@app.command()
def interpolate(
    ckpt_a: Path = typer.Argument(..., help="Checkpoint at α = 0."),
    ckpt_b: Path = typer.Argument(..., help="Checkpoint at α = 1."),
    points: int = typer.Option(31, help="Number of α values in [0, 1], endpoints included (≥ 2)."),
    split: str = typer.Option("test", help="test, train or both."),
    bn: str = typer.Option("recalibrate", help="recalibrate (BN models), none, or repair (models without BN)."),
    bn_batches: int = typer.Option(None, help="Batches for BN recalibration (default: the whole train split)."),
    bn_batch_size: int = BnBatchSizeOpt,
    barrier: str = typer.Option("endpoint-mean", help="endpoint-mean (Frankle et al.) or chord: the one shown first."),
    align: str = AlignOpt,
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data: str = DataOpt,
    data_arg: list[str] = DataArgOpt,
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    allow_different_data: bool = AllowDataOpt,
    model: str = ModelSpecOpt,
    model_arg: list[str] = ModelArgOpt,
    mask: str = MaskSourceOpt,
    prefix: str = PrefixOpt,
    loss: str = LossOpt,
    batch_size: int = typer.Option(1000, help="Evaluation batch size."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    quiet: bool = QuietOpt,
) -> None:
    """Evaluate the linear path between two checkpoints (optionally aligned) and print both barriers.
    Checkpoints from elsewhere (state dicts, Lightning, safetensors, ...) need --model."""
    from landscape.cli.sources import SourceOptions
    from landscape.connectivity.interpolate import interpolate as run_interpolate
    from landscape.results import save_dataset
    from training.checkpoint import check_compatible, check_same_data

    names = _splits(split)
    check_options(
        points=(points, AT_LEAST_TWO), bn_batches=(bn_batches, AT_LEAST_ONE), batch_size=(batch_size, AT_LEAST_ONE),
        samples=(samples, AT_LEAST_ONE), bn_batch_size=(bn_batch_size, AT_LEAST_ONE),
    )  # fmt: skip
    check_options(points=(points, MAX_PATH_POINTS))  # at least 2 above, and a size that ends
    refuse_idle(
        (bn_batches is not None and bn == "none", "--bn-batches does nothing with --bn none"),
        (bn_batch_size is not None and bn != "recalibrate", f"--bn-batch-size does nothing with --bn {bn}"),
    )
    check_output(out, inputs=[ckpt_a, ckpt_b])
    opts = SourceOptions(
        model, tuple(model_arg or ()), mask, prefix, data, tuple(data_arg or ()), data_root, loss, samples,
        samples_seed,
    )  # fmt: skip
    a, b = opts.load(ckpt_a), opts.load(ckpt_b)
    check_compatible(a, b)
    if not allow_different_data:
        check_same_data(a, b)
    splits, train = opts.splits(a, names, batch_size)
    opts.check_bn_data(train, bn, a)
    ds = run_interpolate(
        a,
        b,
        splits,
        points=points,
        bn=bn,
        bn_data=train,
        bn_batches=bn_batches,
        bn_batch_size=bn_batch_size,
        barrier_kind=barrier,
        align=align,
        allow_different_data=allow_different_data,
        loss_fn=opts.loss_fn(),
        device=device,
        quiet=quiet,
    )
    ds.attrs.update(samples_attrs(samples, samples_seed, splits))
    print_path(ds)
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")


@app.command()
def hessian(
    ckpt: Path = typer.Argument(..., help="Checkpoint (its mask defines the sparse subspace)."),
    k: int = typer.Option(1, "--top-k", help="Number of eigenvalues."),
    operator: str = typer.Option("hessian", help="hessian, ggn, fisher (empirical) or fisher-mc (Monte-Carlo)."),
    which: str = typer.Option(None, help="largest (default), smallest (most negative) or magnitude."),
    per_layer: bool = typer.Option(False, "--per-layer", help="One spectrum per layer (module)."),
    params: list[str] = typer.Option(None, "--params", help="A parameter group by name or glob (repeatable)."),
    vectors: bool = typer.Option(False, "--vectors", help="Write the Ritz vectors to <out>.vectors.pt."),
    start: Path = typer.Option(None, help="Warm-start Lanczos from a .vectors.pt file."),
    trace: bool = typer.Option(False, "--trace", help="Also estimate the trace."),
    trace_method: str = typer.Option("hutchinson", help="Trace estimator: hutchinson or hutchpp."),
    diag: bool = typer.Option(False, "--diag", help="Also estimate the diagonal."),
    diag_method: str = typer.Option("hutchinson", help="Diagonal estimator: hutchinson or diag++."),
    density: bool = typer.Option(False, "--density", help="Also estimate the spectral density (SLQ)."),
    batches: int = typer.Option(1, help="Training batches the Hessian is averaged over."),
    batch_size: int = typer.Option(128, help="Samples per batch (unaugmented training data)."),
    subspace: str = typer.Option("mask", help="mask (kept weights and all other parameters) or dense."),
    method: str = typer.Option("lanczos", help="lanczos, block-lanczos, eigsh, power or pyhessian."),
    criterion: str = typer.Option("bound", help="Lanczos stopping rule: bound (eigenvalue error), residual, change."),
    tol: float = typer.Option(1e-3, help="Relative tolerance."),
    max_iter: int = typer.Option(100, help="Iteration cap."),
    mc_samples: int = typer.Option(1, help="Sampled labels per sample (fisher-mc)."),
    seed: int = typer.Option(0, help="Seed of the random start vectors, probes and sampled labels."),
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data: str = DataOpt,
    data_arg: list[str] = DataArgOpt,
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    model: str = ModelSpecOpt,
    model_arg: list[str] = ModelArgOpt,
    mask: str = MaskSourceOpt,
    prefix: str = PrefixOpt,
    loss: str = LossOpt,
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
) -> None:
    """Eigenvalues of the Hessian, GGN or Fisher of the mean training loss (and optionally trace, diagonal
    and density), on the mask subspace, whole or per parameter group."""
    from landscape.cli.curvature import run_hessian, vectors_file
    from landscape.cli.sources import SourceOptions

    check_options(
        k=(k, AT_LEAST_ONE), tol=(tol, POSITIVE), max_iter=(max_iter, AT_LEAST_ONE), batches=(batches, AT_LEAST_ONE),
        batch_size=(batch_size, AT_LEAST_ONE), mc_samples=(mc_samples, AT_LEAST_ONE), samples=(samples, AT_LEAST_ONE),
    )  # fmt: skip
    refuse_idle(
        (trace_method != "hutchinson" and not trace, "--trace-method does nothing without --trace"),
        (diag_method != "hutchinson" and not diag, "--diag-method does nothing without --diag"),
        (mc_samples != 1 and operator != "fisher-mc", "--mc-samples is for --operator fisher-mc"),
    )
    vectors_out = vectors_file(out) if vectors and out is not None else None
    check_outputs([("out", out, DATASET_SUFFIXES), ("vectors", vectors_out, (".pt",))], inputs=[ckpt, start])
    eigen = {
        "k": k, "operator": operator, "which": which, "per_layer": per_layer, "params": params or None,
        "subspace": subspace, "method": method, "criterion": criterion, "tol": tol, "max_iter": max_iter,
        "mc_samples": mc_samples, "seed": seed, "device": device,
    }  # fmt: skip
    run_hessian(
        ckpt, eigen=eigen, batches=batches, batch_size=batch_size, trace=trace, trace_method=trace_method,
        diag=diag, diag_method=diag_method, density=density, vectors=vectors, start=start,
        data=SourceOptions(model, tuple(model_arg or ()), mask, prefix, data, tuple(data_arg or ()), data_root,
                           loss, samples, samples_seed), out=out,
        attrs=samples_attrs(samples, samples_seed),
    )  # fmt: skip


@app.command()
def signs(
    ckpt_a: Path = typer.Argument(..., help="First checkpoint (its mask is A)."),
    ckpt_b: Path = typer.Argument(..., help="Second checkpoint (its mask is B)."),
    model: str = ModelSpecOpt,
    model_arg: list[str] = ModelArgOpt,
    mask: str = MaskSourceOpt,
    prefix: str = PrefixOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
) -> None:
    """Sign flips, mask IoU, Hamming distance, retention and keep ratios per layer and in total."""
    from landscape.cli.sources import SourceOptions
    from landscape.overlap import overlap
    from landscape.results import save_dataset

    check_output(out, inputs=[ckpt_a, ckpt_b])
    opts = SourceOptions(model, tuple(model_arg or ()), mask, prefix)
    ds = overlap(opts.load(ckpt_a), opts.load(ckpt_b))
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
    bn_batch_size: int = BnBatchSizeOpt,
    batch_size: int = typer.Option(1000, help="Evaluation batch size."),
    seed: int = typer.Option(0, help="Seed of the random directions."),
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data: str = DataOpt,
    data_arg: list[str] = DataArgOpt,
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    model: str = ModelSpecOpt,
    model_arg: list[str] = ModelArgOpt,
    mask: str = MaskSourceOpt,
    prefix: str = PrefixOpt,
    loss: str = LossOpt,
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    figure: Path = typer.Option(None, help="Write a contour/heat-map figure (PNG or PDF)."),
    quiet: bool = QuietOpt,
) -> None:
    """Loss and error on a grid: random filter-normalised directions, or the plane through three checkpoints."""
    from landscape.cli.sources import SourceOptions
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
    check_options(
        grid=(grid, AT_LEAST_TWO), batch_size=(batch_size, AT_LEAST_ONE), samples=(samples, AT_LEAST_ONE),
        bn_batch_size=(bn_batch_size, AT_LEAST_ONE),
    )  # fmt: skip
    check_options(grid=(grid, MAX_GRID_AXIS))  # at least 2 above, and a size that ends
    for end in (lo, hi):
        check_options(span=(end, Range()))
    if not hi > lo:
        raise UserError(f"--span must be increasing, got {span!r}")
    check_outputs([("out", out, DATASET_SUFFIXES), ("figure", figure, FIGURE_SUFFIXES)], inputs=ckpts)
    opts = SourceOptions(
        model, tuple(model_arg or ()), mask, prefix, data, tuple(data_arg or ()), data_root, loss, samples,
        samples_seed,
    )  # fmt: skip
    loaded = [opts.load(p) for p in ckpts]
    splits, bn_data = opts.splits(loaded[0], [split], batch_size)
    loader = next(iter(splits.values()))
    fn = opts.loss_fn()
    bn = bn or ("none" if len(loaded) == 1 else "recalibrate")
    refuse_idle((bn_batch_size is not None and bn != "recalibrate", f"--bn-batch-size does nothing with --bn {bn}"))
    opts.check_bn_data(bn_data, bn, loaded[0])
    if len(loaded) == 1:
        ds = run_surface(
            loaded[0], loader, directions, grid, (lo, hi), seed, bn, bn_data, loss_fn=fn, device=device,
            quiet=quiet, bn_batch_size=bn_batch_size,
        )  # fmt: skip
    else:
        ds = plane(
            *loaded, loader, grid=grid, bn=bn, bn_data=bn_data, loss_fn=fn, device=device, quiet=quiet,
            bn_batch_size=bn_batch_size,
        )  # fmt: skip
    ds.attrs.update(samples_attrs(samples, samples_seed, splits))
    error = f", error in [{float(ds['error'].min()):.4f}, {float(ds['error'].max()):.4f}]" if "error" in ds else ""
    out_console.print(
        f"{ds.attrs['kind']}: loss in [{float(ds['loss'].min()):.4f}, {float(ds['loss'].max()):.4f}]{error} on {split}"
    )
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")
    if figure is not None:
        save_figure(plot_surface(ds), figure)
        print(f"wrote {figure}")
