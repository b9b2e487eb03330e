"""Connectivity across runs: the straight-line barrier between the final checkpoints of pairs of run
folders (e.g. a cyclic run against the one-cycle run of the same mask and init, or two seeds), without
and with permutation alignment.

For every pair (``pairs="all"``: every two runs, in the order given; ``"consecutive"``: each run with
the next) and every method in ``align`` (``"none"`` first, then e.g. ``"weight-matching"``), B is
aligned to A (:func:`landscape.connectivity.align.align`) and the path between them evaluated
(:func:`landscape.connectivity.interpolate.interpolate`). Each piece is cached in run A's ``analysis/`` folder,
keyed by both files' sha256 and the options, as :func:`landscape.analysis.analyze` does.

The result has dims ``pair``, ``align``, ``split``, ``alpha`` and variables prefixed ``pair_`` so that
it merges with :func:`landscape.analysis.analyze`'s Dataset: ``pair_loss``/``pair_error`` (pair,
align, split, alpha), the barriers under both definitions ``pair_{loss,error}_barrier_{endpoint_mean,chord}``
and the chosen one ``pair_{loss,error}_barrier``, ``pair_connected`` (pair, align, split), and
``pair_align_cost_before``/``pair_align_cost_after``/``pair_align_units_moved`` (pair, align);
coordinates ``run_a``/``run_b`` (pair) name the run folders.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from landscape.analysis import run_points
from landscape.analysis_cache import AnalysisCache as _Cache
from landscape.analysis_cache import cache_key as _key
from landscape.connectivity.align import ALIGN_METHODS
from landscape.connectivity.interpolate import interpolate
from training import __version__
from training.checkpoint import checkpoint_bundle, load_checkpoint
from training.errors import UserError
from training.fileio import sha256_file

PAIR_MODES = ("all", "consecutive")
_PER_CURVE = ("loss", "error")
_PER_SPLIT = (
    "loss_barrier",
    "error_barrier",
    "loss_barrier_endpoint_mean",
    "error_barrier_endpoint_mean",
    "loss_barrier_chord",
    "error_barrier_chord",
    "connected",
)
_ALIGN_STATS = ("align_cost_before", "align_cost_after", "align_units_moved")


def final_checkpoint(run_dir: Path) -> Path:
    """The last checkpoint of a run folder in analysis order (its last cycle)."""
    points, _ = run_points(Path(run_dir))
    if not points:
        raise UserError(f"{run_dir} has no checkpoints to compare")
    if points[-1].missing:  # never compare an earlier checkpoint in its place
        raise UserError(f"{run_dir}: its final checkpoint {points[-1].path.name} is missing")
    return points[-1].path


def compare_runs(
    run_dirs: list[str | Path],
    *,
    align: tuple[str, ...] = ("none", "weight-matching"),
    pairs: str = "all",
    points: int = 11,
    splits: tuple[str, ...] = ("test",),
    bn: str = "recalibrate",
    bn_batch_size: int | None = None,
    barrier_kind: str = "endpoint-mean",
    data_root: str | None = None,
    samples: int | None = None,
    samples_seed: int = 0,
    device: str = "cpu",
    cache: bool = True,
    quiet: bool = True,
) -> xr.Dataset:
    """Barriers between the final checkpoints of pairs of runs, per alignment method; see the module doc.
    ``samples`` evaluates on a class-balanced subset (:func:`training.checkpoint.sample_bundle`);
    ``bn_batch_size`` as in :func:`landscape.connectivity.interpolate.interpolate`."""
    if pairs not in PAIR_MODES:
        raise UserError(f"pairs must be one of {', '.join(PAIR_MODES)}; got {pairs!r}", param="pairs")
    unknown = [m for m in align if m not in ALIGN_METHODS]
    if unknown or not align:
        raise UserError(
            f"align must be one of {', '.join(ALIGN_METHODS)}; got {unknown[0] if unknown else 'nothing'!r}",
            param="align",
        )
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        raise UserError("comparing runs needs at least two run folders")
    chosen = (
        list(itertools.combinations(range(len(dirs)), 2))
        if pairs == "all"
        else [(i, i + 1) for i in range(len(dirs) - 1)]
    )
    finals = [final_checkpoint(d) for d in dirs]
    hashes = {p: sha256_file(p) for p in finals}
    options = {
        "points": points,
        "splits": list(splits),
        "bn": bn,
        "bn_batch_size": bn_batch_size or "trained",
        "barrier": barrier_kind,
        "samples": samples,
        "samples_seed": samples_seed,
    }
    rows = []
    bundles: dict[str, object] = {}
    bar = tqdm(total=len(chosen) * len(align), desc="compare runs", unit="pair", disable=quiet or None, leave=False)
    try:
        for i, j in chosen:
            a, b = load_checkpoint(finals[i]), load_checkpoint(finals[j])
            recorded = json.dumps(a.meta.get("data_config") or a.meta["dataset"], sort_keys=True)
            if recorded not in bundles:
                bundles[recorded] = checkpoint_bundle(a, root=data_root, samples=samples, samples_seed=samples_seed)
            bundle = bundles[recorded]
            size = a.meta.get("data_config", {}).get("eval_batch_size", 1000)
            data = {s: bundle.eval_loader(s, size) for s in splits}
            bn_data = bundle.eval_loader("train", size)
            run = functools.partial(
                interpolate, a, b, data, points=points, bn=bn, bn_data=bn_data, bn_batch_size=bn_batch_size,
                barrier_kind=barrier_kind, device=device,
            )  # fmt: skip
            per_method = []
            for method in align:
                key = _key("pair", [finals[i], finals[j]], {**options, "align": method}, hashes)
                per_method.append(_Cache(dirs[i], cache).get("pair", key, lambda m=method, run=run: run(align=m)))
                bar.update(1)
            rows.append(_stack(per_method, align))
    finally:
        bar.close()
    ds = xr.concat(rows, dim="pair", coords="minimal", compat="override", combine_attrs="drop")
    ds = ds.assign_coords(
        pair=np.arange(len(chosen)),
        run_a=("pair", [dirs[i].name for i, _ in chosen]),
        run_b=("pair", [dirs[j].name for _, j in chosen]),
    )
    ds.attrs.update({"landscape_version": __version__, "pairs": pairs, "bn": bn, "barrier_definition": barrier_kind})
    ds.attrs["bn_batch_size"] = bn_batch_size or "the training batch size of each pair's first checkpoint"
    ds.attrs.update({"samples": -1 if samples is None else samples, "samples_seed": samples_seed})
    return ds


def _stack(curves: list[xr.Dataset], methods: tuple[str, ...]) -> xr.Dataset:
    """One pair's Datasets (one per method) as ``pair_*`` variables with an ``align`` dimension."""
    out = {}
    for name in (*_PER_CURVE, *_PER_SPLIT):
        out[f"pair_{name}"] = xr.concat([c[name] for c in curves], dim="align", coords="minimal", compat="override")
    for name in _ALIGN_STATS:
        out[f"pair_{name}"] = xr.DataArray([float(c.attrs.get(name, np.nan)) for c in curves], dims="align")
    return xr.Dataset(out).assign_coords(align=list(methods))
