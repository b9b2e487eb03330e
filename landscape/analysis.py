"""Batch analysis of run folders: LMC, Hessian and sign statistics along each run's checkpoints.

Each run's checkpoints are read from its ``manifest.json`` (or, for an interrupted or diverged run,
its ``stage.json`` files) and ordered into *points*: ``level_0``'s ``init.pt`` (or the run's), then
every ``cycle_<k>.pt`` by (level, cycle) (``checkpoints="cycles"``, the default), or every
``epoch_<n>.pt`` that a run with ``save_every`` wrote, by (level, epoch) (``checkpoints="epochs"``).
For every point p > 0 the analysis computes, against its
reference point (the previous point for ``lmc="consecutive"``, point 0 for ``lmc="init"``):

* LMC: ``loss_barrier``/``error_barrier`` (split) and the curves ``lmc_loss``/``lmc_error`` (split, alpha);
* signs: ``flip_vs_prev``, ``iou_vs_prev``, ``hamming_vs_prev``, ``retention_vs_prev`` and
  ``flip_vs_init``; and at every point its ``density``;
* Hessian (``hessian_k`` > 0): ``eigenvalue(k)`` on a fixed subset of unaugmented training data.

Every piece is cached in ``<run>/analysis/<kind>-<key>.nc`` where the key hashes the checkpoint
files' sha256 and the analysis options, so re-running only computes what is new. Paths in manifests
must stay inside the run folder. The result is one tidy Dataset with dims ``run`` and ``point`` and
coordinates ``level``, ``cycle``, ``epoch``, ``sparsity`` per point and ``recipe``, ``method``,
``target_sparsity``, ``seed``, ``schedule``, ``status`` per run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from landscape.hessian import hessian_eigenvalues
from landscape.interpolate import interpolate
from landscape.overlap import overlap
from landscape.results import load_dataset, save_dataset
from training import __version__
from training.checkpoint import load_checkpoint
from training.config import TrainConfig, load_yaml
from training.data import DataBundle, load_data
from training.errors import UserError
from training.fileio import read_json, sha256_file

LMC_MODES = ("consecutive", "init", "none")
CHECKPOINT_KINDS = ("cycles", "epochs")


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


@dataclass
class Point:
    """One checkpoint of a run, in analysis order."""

    path: Path
    level: int
    cycle: int
    epoch: int
    sparsity: float


def _inside(run_dir: Path, rel: str) -> Path:
    path = (run_dir / rel).resolve()
    if Path(rel).is_absolute() or not path.is_relative_to(run_dir.resolve()):
        raise UserError(f"{run_dir}: manifest path {rel!r} leaves the run folder")
    return path


def run_points(run_dir: Path, checkpoints: str = "cycles") -> tuple[list[Point], str]:
    """The ordered analysis points of a run folder and its status (complete, diverged, running).
    ``checkpoints``: ``"cycles"`` (``cycle_<k>.pt``) or ``"epochs"`` (``epoch_<n>.pt``), after ``init.pt``."""
    if checkpoints not in CHECKPOINT_KINDS:
        raise UserError(
            f"unknown checkpoints {checkpoints!r}; choose from: {', '.join(CHECKPOINT_KINDS)}", param="checkpoints"
        )
    prefix = "cycle_" if checkpoints == "cycles" else "epoch_"
    manifest = read_json(run_dir / "manifest.json")
    if manifest is None:
        raise UserError(f"{run_dir} is not a run folder (no manifest.json)")
    status = manifest.get("status", "unknown")
    entries = manifest.get("checkpoints")
    if entries is None:  # interrupted or diverged: collect what each stage wrote
        entries = []
        for stage in sorted(run_dir.glob("**/stage.json")):
            entries += (read_json(stage) or {}).get("checkpoints", [])
    points = []
    for e in entries:
        path = _inside(run_dir, e["path"])  # every entry is checked, whatever its name
        name = path.name
        if name != "init.pt" and not name.startswith(prefix):
            continue
        if name == "init.pt" and e["level"] != 0:
            continue
        if path.exists():
            points.append(Point(path, int(e["level"]), int(e["cycle"]), int(e["epoch"]), float(e["sparsity"])))
    if checkpoints == "cycles":
        points.sort(key=lambda p: (p.level, p.cycle))
    else:
        points.sort(key=lambda p: (p.level, p.path.name != "init.pt", p.epoch))
    return points, status


def _key(kind: str, files: list[Path], options: dict[str, Any], hashes: dict[Path, str]) -> str:
    payload = json.dumps(
        {"kind": kind, "files": [hashes[f] for f in files], "options": options, "version": __version__}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class _Cache:
    def __init__(self, run_dir: Path, enabled: bool):
        self.dir = run_dir / "analysis"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, key: str, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
        path = self.dir / f"{kind}-{key}.nc"
        if self.enabled and path.exists():
            try:
                ds = load_dataset(path)
                self.hits += 1
                return ds
            except UserError:
                pass  # an unreadable cache entry is recomputed
        ds = compute()
        self.misses += 1
        if self.enabled:
            save_dataset(ds, path)
        return ds


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
) -> xr.Dataset:
    """Analyse run folders; see the module docstring. Returns the merged Dataset."""
    if lmc not in LMC_MODES:
        raise UserError(f"unknown --lmc mode {lmc!r}; choose from: {', '.join(LMC_MODES)}")
    if not run_dirs:
        raise UserError("no run folders given")
    runs = []
    for rd in run_dirs:
        rd = Path(rd)
        if not rd.is_dir():
            raise UserError(f"run folder not found: {rd}")
        pts, status = run_points(rd, checkpoints)
        cfg = load_yaml(rd / "config.yaml")
        runs.append((rd, pts, status, cfg))
    total = sum(max(len(p) - 1, 0) * ((lmc != "none") + signs) + len(p) * (hessian_k > 0) for _, p, _, _ in runs)
    opts = AnalysisOptions(
        lmc,
        hessian_k,
        signs,
        points,
        tuple(splits),
        bn,
        hessian_batches,
        hessian_batch_size,
        data_root,
        device,
        cache,
        checkpoints,
    )
    bar = tqdm(total=total, desc="analyze", unit="item", disable=quiet or None, leave=False)
    bundles: dict[str, DataBundle] = {}
    per_run = []
    stats = {"hits": 0, "misses": 0}
    try:
        for rd, pts, status, cfg in runs:
            ds, c = _analyze_run(rd, pts, status, cfg, opts, bundles, bar)
            stats["hits"] += c.hits
            stats["misses"] += c.misses
            per_run.append(ds)
    finally:
        bar.close()
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
        }
    )
    return merged


def _bundle(cfg: TrainConfig, data_root: str | None, bundles: dict[str, DataBundle]) -> DataBundle:
    import dataclasses

    data_cfg = dataclasses.replace(cfg.data, root=data_root) if data_root else cfg.data
    key = json.dumps(dataclasses.asdict(data_cfg), sort_keys=True, default=str)
    if key not in bundles:
        bundles[key] = load_data(data_cfg)
    return bundles[key]


def _analyze_run(rd, pts, status, cfg, opts: AnalysisOptions, bundles, bar):
    lmc, hessian_k, signs, points, splits, bn = opts.lmc, opts.hessian_k, opts.signs, opts.points, opts.splits, opts.bn
    hessian_batches, hessian_batch_size, data_root = opts.hessian_batches, opts.hessian_batch_size, opts.data_root
    device, cache, checkpoints = opts.device, opts.cache, opts.checkpoints
    c = _Cache(rd, cache)
    hashes = {p.path: sha256_file(p.path) for p in pts}
    options = {
        "lmc": lmc,
        "hessian_k": hessian_k,
        "signs": signs,
        "points": points,
        "splits": list(splits),
        "bn": bn,
        "hessian_batches": hessian_batches,
        "hessian_batch_size": hessian_batch_size,
        "status": status,
        "points_at": [[p.level, p.cycle, p.epoch] for p in pts],
    }
    if checkpoints != "cycles":  # absent for the default, so earlier caches stay valid
        options["checkpoints"] = checkpoints
    summary_key = _key("run", [p.path for p in pts], options, hashes)
    summary = rd / "analysis" / f"run-{summary_key}.nc"
    if cache and summary.exists():  # nothing changed since the last analysis of this run: one read
        try:
            ds = load_dataset(summary)
            c.hits += int(ds.attrs.get("pieces", 0))
            bar.update(int(ds.attrs.get("pieces", 0)))
            return ds, c
        except UserError:
            pass
    n = len(pts)
    out: dict[str, Any] = {}
    needs_data = (lmc != "none" and n > 1) or (hessian_k > 0 and n > 0)
    bundle = _bundle(cfg, data_root, bundles) if needs_data else None
    if lmc != "none" and n > 1:
        data = {s: bundle.eval_loader(s, cfg.data.eval_batch_size) for s in splits}
        bn_data = bundle.eval_loader("train", cfg.data.eval_batch_size)
        opts = {"points": points, "splits": list(splits), "bn": bn}
        curves = []
        for i in range(1, n):
            ref = pts[i - 1] if lmc == "consecutive" else pts[0]
            curves.append(
                c.get(
                    "lmc",
                    _key("lmc", [ref.path, pts[i].path], opts, hashes),
                    lambda ref=ref, i=i: interpolate(
                        ref.path, pts[i].path, data, points=points, bn=bn, bn_data=bn_data, device=device
                    ),
                )
            )
            bar.update(1)
        stacked = xr.concat(
            [cv[["loss", "error", "loss_barrier", "error_barrier"]] for cv in curves],
            dim="point",
            coords="minimal",
            compat="override",
            combine_attrs="drop",
        )
        first = xr.full_like(stacked.isel(point=0), np.nan).expand_dims(point=1)
        stacked = xr.concat([first, stacked], dim="point", coords="minimal", compat="override")
        out.update(
            lmc_loss=stacked["loss"],
            lmc_error=stacked["error"],
            loss_barrier=stacked["loss_barrier"],
            error_barrier=stacked["error_barrier"],
        )
    if signs and n > 1:
        rows = {
            k: np.full(n, np.nan)
            for k in ("flip_vs_prev", "iou_vs_prev", "hamming_vs_prev", "retention_vs_prev", "flip_vs_init")
        }
        for i in range(1, n):
            prev = c.get(
                "signs",
                _key("signs", [pts[i - 1].path, pts[i].path], {}, hashes),
                lambda i=i: overlap(pts[i - 1].path, pts[i].path),
            )
            init = c.get(
                "signs",
                _key("signs", [pts[0].path, pts[i].path], {}, hashes),
                lambda i=i: overlap(pts[0].path, pts[i].path),
            )
            rows["flip_vs_prev"][i] = float(prev["flip_fraction_total"])
            rows["iou_vs_prev"][i] = float(prev["iou_total"])
            rows["hamming_vs_prev"][i] = float(prev["hamming_total"])
            rows["retention_vs_prev"][i] = float(prev["retention_total"])
            rows["flip_vs_init"][i] = float(init["flip_fraction_total"])
            bar.update(1)
        out.update({k: ("point", v) for k, v in rows.items()})
    if hessian_k > 0 and n > 0:
        loader = bundle.eval_loader("train", hessian_batch_size)
        batches = []
        for b in loader:
            batches.append(b)
            if len(batches) >= hessian_batches:
                break
        opts = {"k": hessian_k, "batches": hessian_batches, "batch_size": hessian_batch_size}
        vals = np.full((n, hessian_k), np.nan)
        for i, p in enumerate(pts):
            ds = c.get(
                "hessian",
                _key("hessian", [p.path], opts, hashes),
                lambda p=p: hessian_eigenvalues(load_checkpoint(p.path), batches, k=hessian_k, device=device),
            )
            vals[i] = ds["eigenvalue"].values
            bar.update(1)
        out["eigenvalue"] = (("point", "k"), vals)
    ds = xr.Dataset(out)
    coords = {
        "point": np.arange(n),
        "level": ("point", np.array([p.level for p in pts], dtype=np.int64)),
        "cycle": ("point", np.array([p.cycle for p in pts], dtype=np.int64)),
        "epoch": ("point", np.array([p.epoch for p in pts], dtype=np.int64)),
        "sparsity": ("point", np.array([p.sparsity for p in pts], dtype=float)),
    }
    if "eigenvalue" in ds:
        coords["k"] = np.arange(1, hessian_k + 1)
    ds = ds.assign_coords(coords)
    metrics = _point_metrics(rd, pts, by_epoch=checkpoints == "epochs")
    for name, values in metrics.items():
        ds[name] = ("point", values)
    per_point = ["level", "cycle", "epoch", "sparsity"]
    ds = ds.reset_coords(per_point).expand_dims(run=[rd.name]).set_coords(per_point)  # (run, point) coords
    run_coords = {
        "recipe": cfg.recipe.name,
        "method": cfg.mask.method,
        "target_sparsity": cfg.mask.sparsity,
        "seed": cfg.seed,
        "schedule": cfg.schedule.name,
        "status": status,
    }
    ds = ds.assign_coords({k: ("run", [v]) for k, v in run_coords.items()})
    ds.attrs["pieces"] = c.hits + c.misses
    if cache:
        save_dataset(ds, summary)
    return ds, c


def _point_metrics(rd: Path, pts: list[Point], by_epoch: bool = False) -> dict[str, np.ndarray]:
    """Test/train metrics at each point's last epoch, from the run's metrics (NaN for init). A cycle
    point takes its cycle's last finite epoch; with ``by_epoch`` a point takes the epoch it was saved at."""
    out = {k: np.full(len(pts), np.nan) for k in ("test_error", "test_loss", "train_loss")}
    stage_metrics: dict[Path, xr.Dataset] = {}
    for i, p in enumerate(pts):
        if p.path.name == "init.pt":
            continue
        mpath = p.path.parent / "metrics.nc"
        if mpath not in stage_metrics:
            if not mpath.exists():
                continue
            stage_metrics[mpath] = load_dataset(mpath)
        m = stage_metrics[mpath]
        for k in out:
            vals = m[k].values[m["global_epoch"].values == p.epoch] if by_epoch else m[k].sel(cycle=p.cycle).values
            finite = vals[np.isfinite(vals)]
            out[k][i] = finite[-1] if len(finite) else np.nan
    return out
