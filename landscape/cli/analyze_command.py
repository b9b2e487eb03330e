"""The ``analyze`` command: batch analysis of run folders, or of checkpoints from elsewhere (``--model``),
printed as one table per run and written as one Dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer
import xarray as xr
from rich.table import Table

from landscape.cli.app import (
    BnBatchSizeOpt,
    DataArgOpt,
    DeviceOpt,
    LossOpt,
    MaskSourceOpt,
    ModelArgOpt,
    QuietOpt,
    SamplesOpt,
    SamplesSeedOpt,
    app,
    check_options,
    out_console,
    refuse_idle,
)
from landscape.cli.connectivity_commands import print_pairs
from landscape.cli.connectivity_commands import split_names as _splits
from training.checks import AT_LEAST_ONE, AT_LEAST_TWO, COUNT, MAX_PATH_POINTS
from training.errors import Interrupted, PartialFailure, UserError
from training.outputs import check_output


@app.command()
def analyze(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run folders (with manifest.json), or folders holding run folders at any depth."
    ),
    lmc: str = typer.Option("consecutive", help="consecutive, init or none."),
    hessian_k: int = typer.Option(0, "--hessian-k", help="Top-k Hessian eigenvalues at every checkpoint (0: none)."),
    signs: bool = typer.Option(True, "--signs/--no-signs", help="Sign and mask statistics."),
    points: int = typer.Option(11, help="α points per interpolation."),
    split: str = typer.Option("test", help="test, train or both."),
    hessian_batch_size: int = typer.Option(128, help="Samples in the Hessian batch."),
    bn_batch_size: int = BnBatchSizeOpt,
    operator: str = typer.Option("hessian", help="Curvature for --hessian-k: hessian, ggn, fisher or fisher-mc."),
    which: str = typer.Option("largest", help="largest, smallest (most negative) or magnitude."),
    per_layer: bool = typer.Option(False, "--per-layer", help="One spectrum per layer (module)."),
    params: list[str] = typer.Option(None, "--params", help="A parameter group by name or glob (repeatable)."),
    vectors: bool = typer.Option(False, "--vectors", help="Keep each checkpoint's Ritz vectors (analysis/vectors/)."),
    trace: str = typer.Option(None, help="Also the trace at every checkpoint: hutchinson or hutchpp."),
    diag: bool = typer.Option(False, "--diag", help="Also the diagonal (Hutchinson) at every checkpoint."),
    warm_start: bool = typer.Option(
        True, "--warm-start/--no-warm-start", help="Start each checkpoint's Lanczos from the previous Ritz vectors."
    ),
    align: str = typer.Option(
        None,
        help="Also compare the runs' final checkpoints pairwise, straight and aligned by these methods "
        "(comma-separated: weight-matching, activation-matching).",
    ),
    pairs: str = typer.Option("all", help="Pairs for --align: all (every two runs) or consecutive."),
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    data_root: str = typer.Option(None, help="Folder holding CIFAR/ImageNet files."),
    model: str = typer.Option(
        None,
        "--model",
        help="Analyse checkpoints from elsewhere with this model spec (see interpolate): "
        "open_lth run folders, folders of checkpoint files (sorted by name), files or globs.",
    ),
    model_arg: list[str] = ModelArgOpt,
    mask: str = MaskSourceOpt,
    data: str = typer.Option(None, help="With --model: a registry dataset or package.module:callable."),
    data_arg: list[str] = DataArgOpt,
    loss: str = LossOpt,
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the merged Dataset to this netCDF file."),
    quiet: bool = QuietOpt,
) -> None:
    """Analyse run folders: LMC, Hessian and signs along each run's checkpoints, cached by content hash;
    with --align, also the barriers between the runs' final checkpoints, straight and aligned. Exits 4 when
    some runs failed (the others are analysed and written)."""
    from landscape.analysis import analyze as run_analyze
    from landscape.cli.sources import SourceOptions
    from landscape.hessian.sequence import HessianOptions
    from landscape.results import save_dataset
    from landscape.sources import parse_args

    check_options(
        points=(points, AT_LEAST_TWO), hessian_k=(hessian_k, COUNT), samples=(samples, AT_LEAST_ONE),
        hessian_batch_size=(hessian_batch_size, AT_LEAST_ONE), bn_batch_size=(bn_batch_size, AT_LEAST_ONE),
    )  # fmt: skip
    check_options(points=(points, MAX_PATH_POINTS))  # at least 2 above, and a size that ends
    refuse_idle(
        (hessian_k == 0 and (vectors or trace is not None or diag), "--vectors, --trace and --diag need --hessian-k"),
        (bn_batch_size is not None and lmc == "none", "--bn-batch-size does nothing with --lmc none"),
    )
    check_output(out, inputs=run_dirs)
    curvature = HessianOptions(
        operator=operator, which=which, per_layer=per_layer, params=tuple(params or ()), vectors=vectors,
        trace=trace, diag=diag, warm_start=warm_start,
    )  # fmt: skip
    foreign = {}
    if model is not None:
        if align:
            raise UserError("--align compares run folders; for checkpoints from elsewhere use interpolate --align")
        opts = SourceOptions(model, tuple(model_arg or ()), mask, None, data, tuple(data_arg or ()), data_root, loss)
        foreign = {
            "model": model, "model_args": parse_args(model_arg), "mask": mask, "loss_fn": opts.loss_fn(),
            "data": opts.data_splits(hessian_batch_size), "data_name": f"{data} {sorted(data_arg or [])}",
        }  # fmt: skip
    elif model_arg or data or data_arg or mask != "auto" or loss != "cross-entropy":
        raise UserError("--model-arg, --mask, --data, --data-arg and --loss need --model (checkpoints from elsewhere)")
    try:
        ds = run_analyze(
            run_dirs, lmc=lmc, hessian_k=hessian_k, signs=signs, points=points, splits=tuple(_splits(split)),
            hessian_batch_size=hessian_batch_size, data_root=data_root, device=device, quiet=quiet, hessian=curvature,
            bn_batch_size=bn_batch_size, **foreign,
        )  # fmt: skip
    except KeyboardInterrupt as exc:
        raise Interrupted(
            "every finished piece is cached in its run's analysis/ folder; run the same command again to go on"
        ) from exc
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
    for note in filter(None, ds.attrs.get("notes", "").split("; ")):
        print(f"note: {note}", file=sys.stderr)
    for run, status, problem in zip(ds["run"].values, ds["status"].values, ds["problem"].values, strict=True):
        if problem:
            print(f"{'error' if status == 'failed' else 'note'}: run {run}: {problem}", file=sys.stderr)
    if align:
        from landscape.connectivity.pairs import compare_runs

        methods = ("none", *[m.strip() for m in align.split(",") if m.strip() and m.strip() != "none"])
        analysed = ds["run_dir"].values[ds["status"].values != "failed"].tolist()
        pair_ds = compare_runs(
            analysed, align=methods, pairs=pairs, points=points, splits=tuple(_splits(split)), data_root=data_root,
            samples=samples, samples_seed=samples_seed, device=device, quiet=quiet, bn_batch_size=bn_batch_size,
        )  # fmt: skip
        print_pairs(pair_ds)
        ds = xr.merge([ds, pair_ds], combine_attrs="drop_conflicts")
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")
    failed = int((ds["status"].values == "failed").sum())
    if failed:  # every other run is analysed and written; a script must still see that some were not
        code = PartialFailure.exit_code
        raise PartialFailure(f"{failed} of {ds.sizes['run']} runs failed (listed above); exit code {code}")
