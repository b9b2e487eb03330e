"""Connectivity beyond the straight line: the ``curve`` command, and the path tables that
``interpolate`` and ``curve`` print (loss and error along the path, both barrier definitions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import typer
from rich.table import Table

from landscape.cli.app import (
    AlignOpt,
    AllowDataOpt,
    BnBatchSizeOpt,
    DataArgOpt,
    DataOpt,
    DataRootOpt,
    DeviceOpt,
    LossOpt,
    ModelArgOpt,
    ModelSpecOpt,
    PrefixOpt,
    QuietOpt,
    SamplesOpt,
    SamplesSeedOpt,
    app,
    check_options,
    out_console,
)
from training.errors import UserError


def split_names(split: str) -> list[str]:
    """``test``, ``train`` or ``both`` as a list of split names."""
    if split not in ("test", "train", "both"):
        raise UserError(f"unknown split {split!r}; choose from: test, train, both")
    return ["train", "test"] if split == "both" else [split]


def samples_attrs(samples: int | None, seed: int, splits: Mapping[str, Iterable] | None = None) -> dict[str, Any]:
    """Dataset attrs recording the ``--samples`` subset as used: ``samples`` (-1 when every split was used
    whole) and its seed; given the ``splits`` evaluated, also ``samples_used`` (each split's count, as
    ``"test 1000"``): a split smaller than ``--samples`` is used whole, so a request above every
    split's size records -1, never the number asked for."""
    if samples is None:
        return {"samples": -1, "samples_seed": int(seed)}
    if splits is None:
        return {"samples": int(samples), "samples_seed": int(seed)}
    used = {name: sum(len(batch[0] if isinstance(batch, (list, tuple)) else batch) for batch in data)
            for name, data in splits.items()}  # fmt: skip
    cut = any(n == samples for n in used.values())
    return {
        "samples": int(samples) if cut else -1,
        "samples_seed": int(seed),
        "samples_used": ", ".join(f"{name} {n}" for name, n in used.items()),
    }


def print_path(ds: Any, coord: str = "alpha", title: str = "loss and error along θ(α) = (1−α)θ_A + αθ_B") -> None:
    """Print loss and error at every point of the path, then per split the barriers: the chosen
    definition first, then both definitions, and whether the endpoints are connected."""
    metrics = ["loss", "error"] if "error" in ds else ["loss"]
    table = Table(title=title if "error" in ds else title.replace("loss and error", "loss"))
    table.add_column(coord.replace("alpha", "α"), justify="right")
    for split in ds["split"].values:
        for metric in metrics:
            table.add_column(f"{split} {metric}", justify="right")
    for i, x in enumerate(ds[coord].values):
        row = [f"{x:.3f}"]
        for split in ds["split"].values:
            row += [f"{float(ds[metric].sel(split=split)[i]):.4f}" for metric in metrics]
        table.add_row(*row)
    out_console.print(table)
    align = ds.attrs.get("align_method", "none")
    aligned = "" if align == "none" else f", aligned by {align}"
    if ds.attrs.get("bn") == "recalibrate" and ds.attrs.get("bn_samples"):
        size, size_from = ds.attrs.get("bn_batch_size"), ds.attrs.get("bn_batch_size_from")
        where = {"checkpoint": "the training batch size", "given": "--bn-batch-size", "default": "the default"}
        out_console.print(
            f"BatchNorm recalibrated at every point on {ds.attrs['bn_data']} ({ds.attrs['bn_samples']} samples, "
            f"batches of {size}: {where.get(size_from, size_from)})"
        )
    for split in ds["split"].values:
        sel = ds.sel(split=split)
        if "error" not in ds:  # no classification targets: no error, no connectivity criterion
            out_console.print(
                f"{split}: loss barrier {float(sel['loss_barrier']):.4f} ({ds.attrs['barrier_definition']}, "
                f"bn={ds.attrs['bn']}{aligned}; loss {ds.attrs.get('loss', 'cross-entropy')}); endpoint-mean "
                f"{float(sel['loss_barrier_endpoint_mean']):.4f}, chord {float(sel['loss_barrier_chord']):.4f}"
            )
            continue
        out_console.print(
            f"{split}: loss barrier {float(sel['loss_barrier']):.4f}, error barrier {float(sel['error_barrier']):.4f} "
            f"({ds.attrs['barrier_definition']}, bn={ds.attrs['bn']}{aligned}); "
            f"endpoint-mean {float(sel['loss_barrier_endpoint_mean']):.4f} / "
            f"{float(sel['error_barrier_endpoint_mean']):.4f}, "
            f"chord {float(sel['loss_barrier_chord']):.4f} / {float(sel['error_barrier_chord']):.4f} (loss / error); "
            + connected_words(float(sel["error_barrier"]), bool(sel["connected"]), ds.attrs["connected_threshold"])
        )
    if align != "none":
        out_console.print(
            f"alignment: squared distance {ds.attrs['align_cost_before']:.4g} → {ds.attrs['align_cost_after']:.4g}, "
            f"{100 * ds.attrs['align_units_moved']:.1f}% of units moved"
        )
    print_recalibration_note(ds, coord)


def connected_words(error_barrier: float, connected: bool, threshold: float) -> str:
    """``connected (error barrier 0.0125 < 0.02)`` or ``not connected (error barrier 0.0300 ≥ 0.02)``."""
    if connected:
        return f"connected (error barrier {error_barrier:.4f} < {threshold})"
    return f"not connected (error barrier {error_barrier:.4f} ≥ {threshold})"


def print_recalibration_note(ds: Any, coord: str = "alpha") -> None:
    """When BatchNorm recalibration changed the endpoints' metrics (``stored_*`` against the path's ends),
    say so: the path's α = 0 and 1 are then not the checkpoints as stored."""
    if "stored_error" not in ds:
        return
    for split in ds["split"].values:
        ends = ds.sel(split=split).isel({coord: [0, -1]})
        stored = ds.sel(split=split)
        changed = []
        for e, label in enumerate(("A", "B")):
            pairs = [(m, float(stored[f"stored_{m}"][e]), float(ends[m][e])) for m in ("error", "loss")]
            if any(f"{before:.4f}" != f"{after:.4f}" for _, before, after in pairs):  # visible at the printed digits
                changed.append(f"{label}: " + ", ".join(f"{m} {b:.4f} → {a:.4f}" for m, b, a in pairs))
        if changed:
            out_console.print(
                f"note: BatchNorm recalibration changed the endpoints on {split} (as stored → recalibrated: "
                f"{'; '.join(changed)}); the table and barriers use the recalibrated values (--bn none: as stored)"
            )


def print_pairs(ds: Any) -> None:
    """One row per (pair, method, split): the error barriers under both definitions and ``connected``."""
    table = Table(title="barriers between the runs' final checkpoints (error; endpoint-mean and chord)")
    for col in ("run A", "run B", "alignment", "split", "error barrier", "chord", "loss barrier", "connected"):
        table.add_column(col, justify="right")
    for p in ds["pair"].values:
        for method in ds["align"].values:
            for split in ds["split"].values:
                sel = ds.sel(pair=p, align=method, split=split)
                table.add_row(
                    str(sel["run_a"].item()), str(sel["run_b"].item()), str(method), str(split),
                    f"{float(sel['pair_error_barrier_endpoint_mean']):.4f}",
                    f"{float(sel['pair_error_barrier_chord']):.4f}",
                    f"{float(sel['pair_loss_barrier_endpoint_mean']):.4f}",
                    "yes" if bool(sel["pair_connected"]) else "no",
                )  # fmt: skip
    out_console.print(table)


@app.command()
def curve(
    ckpt_a: Path = typer.Argument(..., help="Checkpoint at t = 0."),
    ckpt_b: Path = typer.Argument(..., help="Checkpoint at t = 1."),
    kind: str = typer.Option("bezier", help="bezier (quadratic Bezier) or polychain (one bend)."),
    epochs: int = typer.Option(10, help="Epochs of training the bend (0: the bend stays at the midpoint)."),
    points: int = typer.Option(31, help="Number of t values in [0, 1], endpoints included (≥ 2)."),
    lr: float = typer.Option(0.05, help="SGD learning rate of the bend (Garipov et al.'s schedule)."),
    momentum: float = typer.Option(0.9, help="SGD momentum."),
    weight_decay: float = typer.Option(0.0, help="SGD weight decay on the bend."),
    batch_size: int = typer.Option(128, help="Training batch size."),
    mask: str = typer.Option("union", help="Where the bend may be non-zero: union or intersection of the masks."),
    align: str = AlignOpt,
    split: str = typer.Option("test", help="test, train or both."),
    bn_batches: int = typer.Option(None, help="Batches for BN recalibration at each t (default: all)."),
    bn_batch_size: int = BnBatchSizeOpt,
    barrier: str = typer.Option("endpoint-mean", help="endpoint-mean (Frankle et al.) or chord: the one shown first."),
    samples: int = SamplesOpt,
    samples_seed: int = SamplesSeedOpt,
    seed: int = typer.Option(0, help="Seed of the data order and of the sampled t."),
    data: str = DataOpt,
    data_arg: list[str] = DataArgOpt,
    data_root: str = DataRootOpt,
    allow_different_data: bool = AllowDataOpt,
    model: str = ModelSpecOpt,
    model_arg: list[str] = ModelArgOpt,
    checkpoint_mask: str = typer.Option(
        "auto", "--checkpoint-mask", help="The checkpoints' masks: auto, none, zeros or a mask file (--mask elsewhere)."
    ),
    prefix: str = PrefixOpt,
    loss: str = LossOpt,
    eval_batch_size: int = typer.Option(1000, help="Evaluation batch size."),
    device: str = DeviceOpt,
    out: Path = typer.Option(None, help="Write the Dataset to this netCDF file."),
    bend: Path = typer.Option(None, help="Write the bend checkpoint here (default: OUT with suffix .bend.pt)."),
    quiet: bool = QuietOpt,
) -> None:
    """Train a mode-connecting curve between two checkpoints (Garipov et al. 2018) and print its barriers."""
    from landscape.cli.sources import SourceOptions
    from landscape.connectivity.curves import curve as run_curve
    from landscape.results import save_dataset
    from training.checkpoint import check_compatible, check_same_data, checkpoint_bundle
    from training.checks import AT_LEAST_ONE, AT_LEAST_TWO, COUNT, FRACTION, MAX_PATH_POINTS, NON_NEGATIVE, POSITIVE
    from training.fileio import derive_seed
    from training.outputs import check_outputs

    names = split_names(split)
    check_options(
        epochs=(epochs, COUNT), points=(points, AT_LEAST_TWO), lr=(lr, POSITIVE),
        momentum=(momentum, FRACTION), weight_decay=(weight_decay, NON_NEGATIVE), batch_size=(batch_size, AT_LEAST_ONE),
        bn_batches=(bn_batches, AT_LEAST_ONE), eval_batch_size=(eval_batch_size, AT_LEAST_ONE),
        samples=(samples, AT_LEAST_ONE), bn_batch_size=(bn_batch_size, AT_LEAST_ONE),
    )  # fmt: skip
    check_options(points=(points, MAX_PATH_POINTS))  # at least 2 above, and a size that ends
    bend = bend if bend is not None else (out.with_suffix(".bend.pt") if out is not None else None)
    check_outputs([("out", out, (".nc",)), ("bend", bend, (".pt",))], inputs=[ckpt_a, ckpt_b])
    opts = SourceOptions(
        model, tuple(model_arg or ()), checkpoint_mask, prefix, data, tuple(data_arg or ()), data_root, loss, samples,
        samples_seed,
    )  # fmt: skip
    a, b = opts.load(ckpt_a), opts.load(ckpt_b)
    check_compatible(a, b)
    if not allow_different_data:
        check_same_data(a, b)
    splits, bn_data = opts.splits(a, names, eval_batch_size)
    if data is not None and ":" in data:  # the user's data: the bend trains on its train split as given
        if bn_data is None:
            raise UserError(f"data {data!r} has no train split to train the bend on; return {{'train': ...}} too")
        train_data = bn_data
    else:
        bundle = checkpoint_bundle(a, dataset=data, root=data_root, samples=samples, samples_seed=samples_seed)
        train_data = lambda epoch: bundle.train_loader(batch_size, seed=derive_seed(seed, "curve-data", epoch))  # noqa: E731
    ds, bend_ckpt = run_curve(
        a,
        b,
        splits,
        train_data,
        kind=kind,
        epochs=epochs,
        points=points,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        mask=mask,
        align=align,
        bn_data=bn_data,
        bn_batches=bn_batches,
        bn_batch_size=bn_batch_size,
        barrier_kind=barrier,
        seed=seed,
        allow_different_data=allow_different_data,
        loss_fn=opts.loss_fn(),
        device=device,
        quiet=quiet,
    )
    ds.attrs.update(samples_attrs(samples, samples_seed, splits))
    print_path(ds, "t", f"loss and error along the {kind} curve φ(t) from A to B")
    out_console.print(
        f"path length {float(ds['path_length']):.4g} (straight line {float(ds['linear_path_length']):.4g})"
    )
    if bend is not None:
        if "source" in a.meta:  # a model from elsewhere: its state dict, which loads with the same --model
            from training.fileio import atomic_path

            with atomic_path(bend) as tmp:
                torch.save(bend_ckpt.state, tmp)
        else:
            bend_ckpt.save(bend)
        ds.attrs["bend_path"] = str(bend)
        print(f"wrote {bend}")
    if out is not None:
        save_dataset(ds, out)
        print(f"wrote {out}")
