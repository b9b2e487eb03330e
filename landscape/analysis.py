"""Batch analysis of run folders: LMC, Hessian and sign statistics along each run's checkpoints.

Run folders, and folders holding run folders at any depth, are found and each run's checkpoints
ordered into *points* by :mod:`landscape.run_folders`: ``level_0``'s ``init.pt``, then every
``cycle_<k>.pt`` by (level, cycle) (``checkpoints="cycles"``, the default), or every ``epoch_<n>.pt``
that a run with ``save_every`` wrote, by (level, epoch) (``checkpoints="epochs"``).
For every point p > 0 the analysis computes, against its
reference point (the previous point for ``lmc="consecutive"``, point 0 for ``lmc="init"``):

* LMC: ``loss_barrier``/``error_barrier`` (split) and the curves ``lmc_loss``/``lmc_error`` (split, alpha);
* signs: ``flip_vs_prev``, ``iou_vs_prev``, ``hamming_vs_prev``, ``retention_vs_prev`` and
  ``flip_vs_init``; and at every point its ``density``;
* curvature (``hessian_k`` > 0): ``eigenvalue(k)`` on a fixed subset of unaugmented training data, each
  checkpoint's Lanczos warm-started from the previous one's Ritz vectors, and the options of
  :class:`~landscape.hessian.sequence.HessianOptions` (operator, which, groups, trace, diagonal).

Every piece is cached in ``<run>/analysis/<kind>-<key>.nc`` where the key hashes the checkpoint
files' sha256 and the analysis options, so re-running only computes what is new. Paths in manifests
must stay inside the run folder. The result is one tidy Dataset with dims ``run`` and ``point`` and
coordinates ``level``, ``cycle``, ``epoch``, ``sparsity`` per point and ``recipe``, ``method``,
``target_sparsity``, ``seed``, ``schedule``, ``status``, ``problem`` and ``run_dir`` per run.

Gaps and failures are reported, never passed over. A checkpoint the manifest lists whose file is
gone stays a point whose values are NaN: no piece spans it (``lmc="consecutive"`` never compares
the checkpoints on either side of it), and ``problem`` names it. A run that cannot be analysed (an
unreadable manifest or config, a corrupt checkpoint, non-finite weights) gets ``status="failed"``
and its message in ``problem``, and the others are analysed; when every run fails, the first error
is raised. Notes (a folder given twice) are in the ``notes`` attribute.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from landscape.analysis_cache import AnalysisCache as _Cache
from landscape.analysis_cache import cache_key as _key
from landscape.analysis_sources import RunSource, foreign_source, native_source
from landscape.connectivity.interpolate import AT_LEAST_TWO, has_batchnorm, interpolate
from landscape.hessian.sequence import HessianOptions, hessian_along
from landscape.overlap import overlap
from landscape.run_folders import (
    CHECKPOINT_KINDS,
    Point,
    check_point_metas,
    find_run_folders,
    foreign_runs,
    point_metrics,
    run_labels,
    run_points,
)
from training import __version__
from training.checks import AT_LEAST_ONE, COUNT, MAX_PATH_POINTS, check_number
from training.config import TrainConfig, load_yaml
from training.data import DataBundle
from training.errors import DataError, UserError
from training.fileio import sha256_file
from training.masks import density
from training.progress import Progress

LMC_MODES = ("consecutive", "init", "none")
LMC_VARS = ["loss", "error", "loss_barrier", "error_barrier"]
__all__ = ["CHECKPOINT_KINDS", "LMC_MODES", "AnalysisOptions", "Point", "analyze", "run_points"]


@dataclass(frozen=True)
class AnalysisOptions:
    """The options of one :func:`analyze` call (see its parameters)."""

    lmc: str
    hessian_k: int
    signs: bool
    points: int
    splits: tuple[str, ...]
    bn: str
    hessian_batches: int
    hessian_batch_size: int
    data_root: str | None
    device: str
    cache: bool
    checkpoints: str = "cycles"
    hessian: HessianOptions = dataclasses.field(default_factory=HessianOptions)
    bn_batch_size: int | None = None


def analyze(
    run_dirs: list[str | Path],
    lmc: str = "consecutive",
    hessian_k: int = 0,
    signs: bool = True,
    points: int = 11,
    splits: tuple[str, ...] = ("test",),
    bn: str = "recalibrate",
    hessian_batches: int = 1,
    hessian_batch_size: int = 128,
    data_root: str | None = None,
    device: str = "cpu",
    cache: bool = True,
    quiet: bool = True,
    checkpoints: str = "cycles",
    hessian: HessianOptions | None = None,
    *,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    mask: str = "auto",
    data: dict[str, Any] | None = None,
    loss_fn: Any = None,
    data_name: str = "",
    bn_batch_size: int | None = None,
) -> xr.Dataset:
    """Analyse run folders; see the module docstring. Returns the merged Dataset.

    With ``model`` (a spec, :func:`landscape.sources.build_model`), ``run_dirs`` are checkpoints from
    elsewhere instead (:func:`landscape.run_folders.foreign_runs`: open_lth run folders, folders of
    files sorted by name, files and globs), loaded with ``model_args`` and ``mask``, analysed on
    ``data`` (``{split: batches}``, ``train`` for BatchNorm recalibration and curvature, whose
    batches are taken as given) with ``loss_fn``; ``data_name`` names the data in the cache keys.
    BatchNorm recalibrates in batches of ``bn_batch_size`` (default: each checkpoint's training
    batch size, :mod:`landscape.connectivity.recalibration`)."""
    if lmc not in LMC_MODES:
        raise UserError(f"unknown --lmc mode {lmc!r}; choose from: {', '.join(LMC_MODES)}", param="lmc")
    sizes = [("points", points, AT_LEAST_TWO), ("points", points, MAX_PATH_POINTS), ("hessian_k", hessian_k, COUNT)]
    for name, value, valid in sizes:
        check_number(value, name, valid)
    for name, value in (("hessian_batches", hessian_batches), ("hessian_batch_size", hessian_batch_size)):
        check_number(value, name, AT_LEAST_ONE)
    check_number(bn_batch_size, "bn_batch_size", AT_LEAST_ONE)
    if isinstance(run_dirs, str | os.PathLike):  # one folder, not its characters
        run_dirs = [run_dirs]
    if not run_dirs:
        raise UserError("no run folders given")
    runs: list = []  # (folder, label, points, status, config) or (folder, label, error)
    notes: list[str] = []
    if model is not None:
        found = foreign_runs(run_dirs)
        source = foreign_source(model, model_args, mask, data, loss_fn, data_name)
        labels = run_labels([rd for rd, _ in found])
        runs = [(rd, label, pts, "complete", None) for (rd, pts), label in zip(found, labels, strict=True)]
    else:
        folders, notes = find_run_folders(run_dirs)
        for rd, label in zip(folders, run_labels(folders), strict=True):
            try:
                runs.append((rd, label, *run_points(rd, checkpoints), load_yaml(rd / "config.yaml")))
            except UserError as exc:  # the run is reported failed; the others go on
                runs.append((rd, label, exc))
    planned = [r[2] for r in runs if len(r) == 5]
    if hessian_k and (hessian or HessianOptions()).diag:
        _check_one_architecture([(r[1], r[4]) for r in runs if len(r) == 5 and r[4] is not None])
    total = sum(_planned_pieces(len(p), lmc, signs, hessian_k) for p in planned)
    opts = AnalysisOptions(
        lmc, hessian_k, signs, points, tuple(splits), bn, hessian_batches, hessian_batch_size, data_root, device,
        cache, checkpoints, hessian or HessianOptions(), bn_batch_size,
    )  # fmt: skip
    bar = Progress(total, "analyze", "pieces", quiet=quiet)  # a line per piece in a log
    bundles: dict[str, DataBundle] = {}
    per_run, errors = [], []
    stats = {"hits": 0, "misses": 0}
    try:
        for rd, label, *plan in runs:
            try:
                if len(plan) == 1:
                    raise plan[0]
                run_source = source if model is not None else native_source(plan[2], data_root, bundles)
                ds, c = _analyze_run(rd, label, *plan, opts, run_source, bar)
            except UserError as exc:
                errors.append(exc)
                ds, c = _failed_run(rd, label, exc, plan[2] if len(plan) == 3 else None), _Cache(rd, False)
            stats["hits"] += c.hits
            stats["misses"] += c.misses
            per_run.append(ds)
    finally:
        bar.close()
    if len(errors) == len(per_run):  # nothing could be analysed: the error itself is the answer
        raise errors[0]
    merged = xr.concat(
        per_run,
        dim="run",
        join="outer",
        coords="different",
        compat="equals",
        combine_attrs="drop_conflicts",
        fill_value={"level": -1, "cycle": -1, "epoch": -1},
    )
    merged.attrs.update(
        {
            "landscape_version": __version__,
            "torch_version": str(torch.__version__),
            "lmc": lmc,
            "hessian_k": hessian_k,
            "cache_hits": stats["hits"],
            "cache_misses": stats["misses"],
            "notes": "; ".join(notes),
        }
    )
    if model is not None:  # what loaded and evaluated the checkpoints from elsewhere
        merged.attrs.update(
            {f"source_{k}": v if isinstance(v, str) else json.dumps(v, default=str) for k, v in source.key.items()}
        )
    return merged


def _failed_run(rd: Path, label: str, exc: Exception, cfg: TrainConfig | None) -> xr.Dataset:
    """The entry of a run that could not be analysed: no points, ``status`` failed, the reason in ``problem``."""
    ds = xr.Dataset(coords={"point": np.arange(0)}).expand_dims(run=[label])
    per_point = {"level": np.int64, "cycle": np.int64, "epoch": np.int64, "sparsity": float}
    ds = ds.assign_coords({k: (("run", "point"), np.zeros((1, 0), dtype=t)) for k, t in per_point.items()})
    return ds.assign_coords({k: ("run", [v]) for k, v in _run_coords(cfg, "failed", str(exc), rd).items()})


def _run_coords(cfg: TrainConfig | None, status: str, problem: str, rd: Path) -> dict[str, Any]:
    """The per-run coordinates (``-`` and NaN where the config could not be read)."""
    return {
        "recipe": cfg.recipe.name if cfg else "-",
        "method": cfg.mask.method if cfg else "-",
        "target_sparsity": cfg.mask.sparsity if cfg else np.nan,
        "seed": cfg.seed if cfg else -1,
        "schedule": cfg.schedule.name if cfg else "-",
        "status": status,
        "problem": problem,
        "run_dir": str(rd),
    }


def _check_one_architecture(runs: list[tuple[str, TrainConfig]]) -> None:
    """Refuse, before any work, a diagonal across runs of different architectures: its coordinates
    (every trainable parameter entry) are the model's, so the runs' diagonals cannot be merged."""
    seen: dict[str, str] = {}
    for label, cfg in runs:
        arch = f"{cfg.model.name} (width {cfg.model.width}) on {cfg.data.name}"
        seen.setdefault(arch, label)
    if len(seen) > 1:
        (a, run_a), (b, run_b) = list(seen.items())[:2]
        raise UserError(
            f"--diag needs one architecture: run {run_a} is {a} but run {run_b} is {b}; analyse them separately"
        )


def _planned_pieces(points: int, lmc: str, signs: bool, hessian_k: int) -> int:
    """The progress bar's pieces for a run of ``points`` points: a pair per LMC and sign comparison, a
    point per spectrum (its trace and diagonal ride along)."""
    return max(points - 1, 0) * ((lmc != "none") + signs) + points * (hessian_k > 0)


def _analyze_run(rd, label, pts, status, cfg, opts: AnalysisOptions, source: RunSource, bar):
    lmc, hessian_k, signs, points, splits, bn = opts.lmc, opts.hessian_k, opts.signs, opts.points, opts.splits, opts.bn
    hessian_batches, hessian_batch_size = opts.hessian_batches, opts.hessian_batch_size
    device, cache, checkpoints, curvature = opts.device, opts.cache, opts.checkpoints, opts.hessian
    c = _Cache(rd, cache)
    hashes = {p.path: sha256_file(p.path) for p in pts if not p.missing}
    missing = [p.path.relative_to(rd.resolve()).as_posix() for p in pts if p.missing]
    problem = f"missing {', '.join(missing)} (no piece spans a gap)" if missing else ""
    options = {
        "lmc": lmc,
        "hessian_k": hessian_k,
        "signs": signs,
        "points": points,
        "splits": list(splits),
        "bn": bn,
        "bn_batch_size": opts.bn_batch_size or "trained",
        "hessian_batches": hessian_batches,
        "hessian_batch_size": hessian_batch_size,
        "status": status,
        "points_at": [[p.level, p.cycle, p.epoch] for p in pts],
    }
    if checkpoints != "cycles":  # absent for the default, so earlier caches stay valid
        options["checkpoints"] = checkpoints
    if hessian_k > 0:
        options["hessian"] = dataclasses.asdict(curvature)
    if missing:
        options["missing"] = missing
    if source.key:  # checkpoints from elsewhere: what loads and evaluates them (absent for run folders)
        options["source"] = source.key
    summary_key = _key("run", list(hashes), options, hashes)
    ds = c.read("run", summary_key)
    if ds is not None:  # nothing changed since the last analysis of this run: one read
        c.hits += int(ds.attrs.get("pieces", 0))
        bar.update(_planned_pieces(len(pts), lmc, signs, hessian_k))  # the bar's unit, not the cache's count
        where = {"problem": ("run", [problem]), "run_dir": ("run", [str(rd)])}
        ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("analysis_piece", "analysis_key")}
        return ds.assign_coords(run=[label], **where), c
    if cfg is not None:  # a run folder of this toolkit: its files must be the points its manifest names
        check_point_metas(rd, pts)
    n = len(pts)
    out: dict[str, Any] = {}
    if lmc != "none" and n > 1:
        data = source.splits(tuple(splits))
        bn_data = source.bn_data()
        if bn_data is None and bn == "recalibrate" and has_batchnorm(source.load(pts[0].path).model):
            raise DataError("recalibrating BatchNorm needs a train split in data (or bn='none')", param="data")
        keyed = {"points": points, "splits": list(splits), "bn": bn, "bn_batch_size": options["bn_batch_size"]}
        keyed.update({"source": source.key} if source.key else {})
        curves: list[xr.Dataset | None] = []
        for i in range(1, n):
            ref = pts[i - 1] if lmc == "consecutive" else pts[0]
            if ref.missing or pts[i].missing:  # a gap: NaN, never the barrier across it
                curves.append(None)
            else:
                pair = (ref.path, pts[i].path)
                kwargs = {"points": points, "bn": bn, "bn_data": bn_data, "loss_fn": source.loss_fn, "device": device,
                          "bn_batch_size": opts.bn_batch_size}  # fmt: skip
                compute = lambda pair=pair, kw=kwargs: interpolate(*map(source.load, pair), data, **kw)  # noqa: E731
                cv = c.get("lmc", _key("lmc", list(pair), keyed, hashes), compute)
                curves.append(cv[[v for v in LMC_VARS if v in cv]])
            bar.update(1)
        template = next((cv for cv in curves if cv is not None), None)
        if template is not None:
            blank = xr.full_like(template, np.nan)
            stacked = xr.concat(
                [blank, *(blank if cv is None else cv for cv in curves)],
                dim="point",
                coords="minimal",
                compat="override",
                combine_attrs="drop",
            )
            names = {"loss": "lmc_loss", "error": "lmc_error", "loss_barrier": "loss_barrier",
                     "error_barrier": "error_barrier"}  # fmt: skip
            out.update({new: stacked[old] for old, new in names.items() if old in stacked})
    if signs and n > 1:
        rows = {
            k: np.full(n, np.nan)
            for k in ("flip_vs_prev", "iou_vs_prev", "hamming_vs_prev", "retention_vs_prev", "flip_vs_init")
        }
        for i in range(1, n):
            if pts[i].missing or pts[i - 1].missing or pts[0].missing:
                bar.update(1)
                continue
            prev = c.get(
                "signs",
                _key("signs", [pts[i - 1].path, pts[i].path], {}, hashes),
                lambda i=i: overlap(source.load(pts[i - 1].path), source.load(pts[i].path)),
            )
            init = c.get(
                "signs",
                _key("signs", [pts[0].path, pts[i].path], {}, hashes),
                lambda i=i: overlap(source.load(pts[0].path), source.load(pts[i].path)),
            )
            rows["flip_vs_prev"][i] = float(prev["flip_fraction_total"])
            rows["iou_vs_prev"][i] = float(prev["iou_total"])
            rows["hamming_vs_prev"][i] = float(prev["hamming_total"])
            rows["retention_vs_prev"][i] = float(prev["retention_total"])
            rows["flip_vs_init"][i] = float(init["flip_fraction_total"])
            bar.update(1)
        out.update({k: ("point", v) for k, v in rows.items()})
    if hessian_k > 0 and n > 0:
        loader = source.train(hessian_batch_size)
        batches = []
        for b in loader:
            batches.append(b)
            if len(batches) >= hessian_batches:
                break
        base = {"k": hessian_k, "batches": hessian_batches, "batch_size": hessian_batch_size}
        present = [i for i, p in enumerate(pts) if not p.missing]
        curvature_vars = hessian_along(
            [pts[i].path for i in present], batches, hessian_k, curvature, base=base, get=c.get,
            key=lambda kind, files, o: _key(kind, files, o, hashes), cache_dir=c.dir if cache else None,
            run_dir=rd, device=device, progress=lambda: bar.update(1), load=source.load, loss_fn=source.loss_fn,
        ) if present else {}  # fmt: skip
        for name, var in curvature_vars.items():  # NaN at the missing points
            out[name] = var.assign_coords(point=present).reindex(point=np.arange(n)).drop_vars("point")
        bar.update(n - len(present))
    ds = xr.Dataset(out)
    coords = {
        "point": np.arange(n),
        "level": ("point", np.array([p.level for p in pts], dtype=np.int64)),
        "cycle": ("point", np.array([p.cycle for p in pts], dtype=np.int64)),
        "epoch": ("point", np.array([p.epoch for p in pts], dtype=np.int64)),
        "sparsity": ("point", np.array([_sparsity(p, source) for p in pts], dtype=float)),
    }
    if "eigenvalue" in ds:
        coords["k"] = np.arange(1, hessian_k + 1)
    ds = ds.assign_coords(coords)
    metrics = point_metrics(rd, pts, by_epoch=checkpoints == "epochs") if cfg is not None else {}
    for name, values in metrics.items():
        ds[name] = ("point", values)
    per_point = ["level", "cycle", "epoch", "sparsity"]
    ds = ds.reset_coords(per_point).expand_dims(run=[label]).set_coords(per_point)  # (run, point) coords
    ds = ds.assign_coords({k: ("run", [v]) for k, v in _run_coords(cfg, status, problem, rd).items()})
    ds.attrs["pieces"] = c.hits + c.misses
    c.write("run", summary_key, ds)
    return ds, c


def _sparsity(p: Point, source: RunSource) -> float:
    """The sparsity a run folder's manifest records, or (checkpoints from elsewhere) that of the mask loaded."""
    if not np.isnan(p.sparsity) or p.missing:
        return p.sparsity
    return 1.0 - density(source.load(p.path).mask)
