"""Run folders as batch analysis sees them: finding them, and the ordered checkpoints (*points*) of each.

Finding (:func:`find_run_folders`). A run folder is a folder with ``manifest.json``. A folder given
that is not one is searched below, at any depth (not inside the run folders found), so
``landscape analyze runs/`` analyses every run under ``runs/``. The same folder given twice (or
reached twice, through a link) counts once, with a note.

Points (:func:`run_points`). Each run's checkpoints are read from its ``manifest.json`` (or, for an
interrupted or diverged run, its ``stage.json`` files) and ordered: ``level_0``'s ``init.pt``, then
every ``cycle_<k>.pt`` by (level, cycle) (``checkpoints="cycles"``), or every ``epoch_<n>.pt`` by
(level, epoch) (``"epochs"``). A checkpoint the manifest lists but whose file is gone stays a point
with ``missing=True``, so an analysis can report the gap and leave its values NaN instead of quietly
comparing the neighbours on either side of it. Paths in manifests must stay inside the run folder.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from landscape.results import load_dataset
from landscape.sources.loading import OPEN_LTH_MODEL
from training.checkpoint import read_checkpoint
from training.errors import UserError
from training.fileio import read_json

CHECKPOINT_KINDS = ("cycles", "epochs")
CHECKPOINT_NAME = re.compile(r"^(init|rewind|cycle_\d+|epoch_\d+)\.pt$")  # what the trainer writes
STATUSES = ("running", "complete", "diverged")
MANIFEST = "manifest.json"


@dataclass
class Point:
    """One checkpoint of a run, in analysis order; ``missing``: listed, but the file is gone."""

    path: Path
    level: int
    cycle: int
    epoch: int
    sparsity: float
    missing: bool = False


def find_run_folders(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The run folders among ``paths`` and below those that are not run folders, each once, in the
    order given (those found below a folder sorted by path), and notes on what was merged."""
    found: list[Path] = []
    seen: dict[Path, Path] = {}
    notes: list[str] = []
    for given in paths:
        given = Path(given)
        if not given.is_dir():
            raise UserError(f"run folder not found: {given}")
        if (given / MANIFEST).is_file():
            candidates = [given]
        else:
            candidates = _below(given)
            if not candidates:
                raise UserError(f"{given} is not a run folder (no manifest.json) and holds no run folders")
        for folder in candidates:
            key = folder.resolve()
            if key in seen:
                notes.append(f"{folder} was given twice (as {seen[key]}), analysed once")
                continue
            seen[key] = folder
            found.append(folder)
    return found, notes


def _below(root: Path) -> list[Path]:
    """Run folders under ``root``, not descending into a run folder (its ``level_*`` stages are its own)."""
    out = []
    for folder, subdirs, files in os.walk(root, followlinks=False):
        if MANIFEST in files and Path(folder) != root:
            out.append(Path(folder))
            subdirs.clear()
        else:
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return sorted(out)


def run_labels(folders: list[Path]) -> list[str]:
    """A unique label per run folder: its name, or, where two share a name, its path relative to the
    folders' common parent."""
    names = [f.name for f in folders]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([str(f.resolve()) for f in folders]))
    return [f.name if names.count(f.name) == 1 else f.resolve().relative_to(common).as_posix() for f in folders]


def _inside(run_dir: Path, rel: str) -> Path:
    path = (run_dir / rel).resolve()
    if Path(rel).is_absolute() or not path.is_relative_to(run_dir.resolve()):
        raise UserError(f"{run_dir}: manifest path {rel!r} leaves the run folder")
    return path


MAX_POSITION = 2**31 - 1  # a level, cycle or epoch beyond this is no run's


def check_point_metas(run_dir: Path, points: Iterable[Point]) -> None:
    """Refuse a run whose checkpoint files are not what its manifest says: each present file's
    ``meta`` must record the entry's level, cycle and epoch (a file copied or renamed over another
    would otherwise be analysed as that point)."""
    for p in points:
        if p.missing:
            continue
        meta = read_checkpoint(p.path)["meta"]
        found = tuple(meta.get(k) for k in ("level", "cycle", "epoch"))
        wanted = (p.level, p.cycle, p.epoch)
        if found[0] is None:  # written before checkpoints recorded their level
            found, wanted = found[1:], wanted[1:]
        if found != wanted:
            rel = p.path.relative_to(run_dir.resolve()).as_posix()
            raise UserError(f"{run_dir}: {rel} holds level, cycle, epoch {found} but the manifest lists it as {wanted}")


def _entry(run_dir: Path, e: object) -> tuple[Path, int, int, int, float]:
    """A manifest entry's path (checked to stay inside the run), level, cycle, epoch and sparsity."""

    def whole(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    ok = (
        isinstance(e, dict)
        and isinstance(e.get("path"), str)
        and "\x00" not in e["path"]
        and all(whole(e.get(k)) and 0 <= e[k] <= MAX_POSITION for k in ("level", "cycle", "epoch"))
        and (whole(e.get("sparsity")) or isinstance(e.get("sparsity"), float))
        and 0.0 <= float(e["sparsity"]) <= 1.0
    )
    if not ok:
        shown = repr(e)
        raise UserError(
            f"{run_dir}: malformed checkpoint entry in its manifest: {shown[:200]}{'...' if len(shown) > 200 else ''}"
        )
    return _inside(run_dir, e["path"]), e["level"], e["cycle"], e["epoch"], float(e["sparsity"])


def run_points(run_dir: Path, checkpoints: str = "cycles") -> tuple[list[Point], str]:
    """The ordered analysis points of a run folder (missing files flagged, see the module docstring)
    and its status (complete, diverged, running). ``checkpoints``: ``"cycles"`` or ``"epochs"``."""
    if checkpoints not in CHECKPOINT_KINDS:
        raise UserError(
            f"unknown checkpoints {checkpoints!r}; choose from: {', '.join(CHECKPOINT_KINDS)}", param="checkpoints"
        )
    prefix = "cycle_" if checkpoints == "cycles" else "epoch_"
    manifest = read_json(run_dir / MANIFEST)
    if manifest is None:
        raise UserError(f"{run_dir} is not a run folder (no manifest.json)")
    if not isinstance(manifest, dict):
        raise UserError(f"{run_dir}: manifest.json does not hold a mapping")
    entries = manifest.get("checkpoints")
    if entries is None:  # interrupted or diverged: collect what each stage wrote
        entries = []
        for stage in sorted(run_dir.glob("**/stage.json")):
            found = read_json(stage) or {}
            entries += found.get("checkpoints", []) if isinstance(found, dict) else []
    if not isinstance(entries, list):
        raise UserError(f"{run_dir}: the manifest's checkpoints are not a list")
    if not entries and manifest.get("status") == "complete":
        raise UserError(f"{run_dir}: the manifest says complete but lists no checkpoints")
    points = []
    seen: set[Path] = set()
    for e in entries:
        path, level, cycle, epoch, sparsity = _entry(run_dir, e)  # every entry is checked, whatever its name
        name = path.name
        if not CHECKPOINT_NAME.match(name):
            raise UserError(f"{run_dir}: manifest entry {e['path']!r} does not name a checkpoint of this run")
        if path in seen:
            raise UserError(f"{run_dir}: manifest lists {e['path']!r} twice")
        seen.add(path)
        if name != "init.pt" and not name.startswith(prefix):
            continue
        if name == "init.pt" and level != 0:
            continue
        points.append(Point(path, level, cycle, epoch, sparsity, missing=not path.is_file()))
    status = manifest.get("status")
    if status not in STATUSES:  # checked after the entries, whose errors say more
        raise UserError(f"{run_dir}: manifest status {status!r} is not one of {', '.join(STATUSES)}")
    if checkpoints == "cycles":
        points.sort(key=lambda p: (p.level, p.cycle))
    else:
        points.sort(key=lambda p: (p.level, p.path.name != "init.pt", p.epoch))
    return points, status


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".tar", ".bin")
OPEN_LTH_LEVEL = re.compile(r"^level_(\d+)$")


def foreign_runs(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, list[Point]]]:
    """Runs of checkpoints from elsewhere (files the loading layer reads with a model spec), as
    ``[(folder, points)]``, each run's points in order:

    * an open_lth run folder (``level_<L>/main/`` with ``mask.pth``): one point per level, in level
      order, the level's last ``model_ep<E>_it<I>.pth`` (its ``mask.pth`` applies on load);
    * any other folder: its checkpoint files (``.pt``, ``.pth``, ``.ckpt``, ``.safetensors``,
      ``.tar``, ``.bin``) sorted by name;
    * files, and glob patterns (sorted matches), given directly: together one run, in the order given.

    A point's ``cycle`` is its position, ``level`` the open_lth level (else 0), ``epoch`` open_lth's
    epoch (else -1); ``sparsity`` is NaN until the checkpoint is loaded."""
    runs: list[tuple[Path, list[Path], list[int], list[int]]] = []
    loose: list[Path] = []
    for given in paths:
        text = str(given)
        path = Path(given)
        if not path.exists() and any(c in text for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text))
            if not matches:
                raise UserError(f"no checkpoint matches {text}")
            loose += matches
        elif path.is_file():
            loose.append(path)
        elif path.is_dir():
            runs.append(_foreign_folder(path))
        else:
            raise UserError(f"no such checkpoint or folder: {path}")
    if loose:
        parent = Path(os.path.commonpath([str(p.resolve().parent) for p in loose]))
        runs.append((parent, loose, [0] * len(loose), [-1] * len(loose)))
    out = []
    for folder, files, levels, epochs in runs:
        rows = enumerate(zip(files, levels, epochs, strict=True))
        points = [Point(f, level, i, epoch, float("nan")) for i, (f, level, epoch) in rows]
        out.append((folder, points))
    return out


def _foreign_folder(folder: Path) -> tuple[Path, list[Path], list[int], list[int]]:
    levels = sorted(
        (int(m.group(1)), d) for d in folder.iterdir() if (m := OPEN_LTH_LEVEL.match(d.name)) and (d / "main").is_dir()
    )
    if levels:  # open_lth: the end of each level's main branch
        files, numbers, epochs = [], [], []
        for level, d in levels:
            models = [(int(m.group(1)), int(m.group(2)), f) for f in (d / "main").iterdir()
                      if (m := OPEN_LTH_MODEL.match(f.name))]  # fmt: skip
            if not models:
                raise UserError(f"open_lth level {d} holds no model_ep<E>_it<I>.pth")
            epoch, _, last = max(models)
            files.append(last)
            numbers.append(level)
            epochs.append(epoch)
        return folder, files, numbers, epochs
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in CHECKPOINT_SUFFIXES)
    if not files:
        raise UserError(f"{folder} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})")
    return folder, files, [0] * len(files), [-1] * len(files)


def point_metrics(rd: Path, pts: list[Point], by_epoch: bool = False) -> dict[str, np.ndarray]:
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
