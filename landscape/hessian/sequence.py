"""Curvature along the checkpoints of one run, for ``landscape analyze``: spectra with warm starts, traces
and diagonals, each cached per checkpoint.

**Warm starts.** Consecutive checkpoints of a run have close top eigenvectors, so the Lanczos of each
checkpoint starts from the previous checkpoint's Ritz vectors (read from the Ritz-vector file the
previous piece wrote): Lanczos starts from their normalised sum. The result
of checkpoint i then depends on checkpoints 0..i, which is what its cache key hashes, so appending a
checkpoint keeps every earlier piece; and it is the same whether the previous piece was computed now
or read from the cache (deterministic). ``warm_start=False`` starts every checkpoint at random.
The products each checkpoint cost are recorded (``hessian_matvecs``).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from landscape.hessian.api import hessian_eigenvalues
from landscape.hessian.estimates import hessian_diagonal, hessian_trace
from landscape.hessian.vectors import load_ritz_vectors
from training.checkpoint import Checkpoint, load_checkpoint
from training.fileio import atomic_path


@dataclass(frozen=True)
class HessianOptions:
    """Options of the curvature pieces of :func:`landscape.analysis.analyze` (see
    :func:`~landscape.hessian.api.hessian_eigenvalues`): the ``operator``, ``which``, parameter groups
    (``per_layer``, ``params`` patterns), ``vectors`` (keep each checkpoint's Ritz vectors in
    ``<run>/analysis/vectors/<checkpoint>.vectors.pt``), ``trace`` (None, ``hutchinson`` or ``hutchpp``),
    ``diag`` (the Hutchinson diagonal), ``warm_start``, and Lanczos' ``tol``, ``max_iter``, ``criterion``."""

    operator: str = "hessian"
    which: str = "largest"
    per_layer: bool = False
    params: tuple[str, ...] = ()
    vectors: bool = False
    trace: str | None = None
    diag: bool = False
    warm_start: bool = True
    tol: float = 1e-3
    max_iter: int = 100
    criterion: str = "bound"

    def groups(self) -> dict[str, Any]:
        return {"per_layer": self.per_layer, "params": list(self.params) or None}


Key = Callable[[str, list[Path], dict[str, Any]], str]
Get = Callable[[str, str, Callable[[], xr.Dataset]], xr.Dataset]


def hessian_along(
    paths: Sequence[Path],
    batches: list,
    k: int,
    options: HessianOptions,
    *,
    base: dict[str, Any],
    key: Key,
    get: Get,
    cache_dir: Path | None,
    run_dir: Path,
    device: str,
    progress: Callable[[], None] = lambda: None,
    load: Callable[[Path], Checkpoint] = load_checkpoint,
    loss_fn: Any = None,
) -> dict[str, xr.DataArray]:
    """The curvature variables of one run's points: ``eigenvalue``, ``eigenvalue_error_bound`` (point,
    [group,] k) and ``hessian_matvecs`` (point); with ``trace`` also ``trace``, ``trace_stderr``
    (point[, group]); with ``diag`` ``diagonal(point, coordinate)`` over every trainable coordinate in
    parameter order (NaN off the subspace). ``key(kind, files, options)`` is a piece's cache key and
    ``get(kind, key, compute)`` returns it (``base``: the options every piece shares); Ritz vectors go
    beside the pieces in ``cache_dir`` (a temporary folder when it is None). ``load`` reads a point's
    checkpoint; ``loss_fn`` replaces cross-entropy (:func:`landscape.hessian.hessian_eigenvalues`)."""
    opts = {**base, **dataclasses.asdict(options)}
    opts["params"] = list(options.params)
    keep_vectors = options.warm_start or options.vectors
    out: dict[str, list] = {"eig": [], "bound": [], "matvecs": [], "trace": [], "stderr": [], "diag": []}

    def _trace(path: Path) -> xr.Dataset:
        return hessian_trace(
            load(path), batches, device=device, operator=options.operator, method=options.trace,
            loss_fn=loss_fn, **options.groups(),
        )  # fmt: skip

    def _diag(path: Path) -> xr.Dataset:
        ckpt = load(path)
        ds = hessian_diagonal(
            ckpt, batches, device=device, operator=options.operator, params=options.params or None, loss_fn=loss_fn
        )
        return _full_space(ds, ckpt.model)

    with tempfile.TemporaryDirectory() as scratch:
        folder = cache_dir if cache_dir is not None else Path(scratch)
        previous: dict[str, Any] | None = None
        for i, path in enumerate(paths):
            files = list(paths[: i + 1]) if options.warm_start else [path]
            piece = key("hessian", files, opts)
            vectors = folder / f"hessian-{piece}.vectors.pt"

            def compute(path: Path = path, vectors: Path = vectors, start: Any = previous) -> xr.Dataset:
                return hessian_eigenvalues(
                    load(path), batches, k=k, device=device, operator=options.operator, loss_fn=loss_fn,
                    which=options.which, tol=options.tol, max_iter=options.max_iter, criterion=options.criterion,
                    return_vectors=keep_vectors, vectors_path=vectors if keep_vectors else None,
                    vector_residuals=options.vectors, start=start if options.warm_start else None,
                    **options.groups(),
                )  # fmt: skip

            ds = get("hessian", piece, compute)
            if keep_vectors and not vectors.exists():  # a cached piece whose vectors went missing
                ds = compute()
            if keep_vectors:
                previous = load_ritz_vectors(vectors)
            if options.vectors:
                relative = path.resolve().relative_to(run_dir.resolve())
                target = run_dir / "analysis" / "vectors" / relative.with_suffix(".vectors.pt")
                with atomic_path(target) as tmp:
                    shutil.copyfile(vectors, tmp)
            out["eig"].append(ds["eigenvalue"])
            out["bound"].append(ds["error_bound"])
            out["matvecs"].append(int(ds.attrs["hvp_count"]))
            if options.trace:
                t = get("trace", key("trace", [path], opts), lambda path=path: _trace(path))
                out["trace"].append(t["trace"])
                out["stderr"].append(t["trace_stderr"])
            if options.diag:
                d = get("diagonal", key("diagonal", [path], opts), lambda path=path: _diag(path))
                out["diag"].append(d["diagonal"])
            progress()

    result = {
        "eigenvalue": xr.concat(out["eig"], dim="point"),
        "eigenvalue_error_bound": xr.concat(out["bound"], dim="point"),
        "hessian_matvecs": xr.DataArray(np.array(out["matvecs"], dtype=np.int64), dims="point"),
    }
    if options.trace:
        result["trace"] = xr.concat(out["trace"], dim="point")
        result["trace_stderr"] = xr.concat(out["stderr"], dim="point")
    if options.diag:
        result["diagonal"] = xr.concat(out["diag"], dim="point")
    return result


def _full_space(ds: xr.Dataset, model: Any) -> xr.Dataset:
    """A diagonal on the subspace as a vector over every trainable coordinate (NaN elsewhere)."""
    import json

    names = json.loads(ds.attrs["parameters"])
    sizes = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    offsets = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1], strict=True))
    full = np.full(sum(sizes.values()), np.nan)
    where = np.array([offsets[names[i]] for i in ds["parameter_index"].values]) + ds["flat_index"].values
    full[where] = ds["diagonal"].values
    return xr.Dataset({"diagonal": ("coordinate", full)}, attrs=ds.attrs)
