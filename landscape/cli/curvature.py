"""The work behind ``landscape hessian``: spectra, traces, diagonals and densities of a checkpoint's
curvature, printed as tables and merged into one Dataset (options in :mod:`landscape.cli.analysis_commands`)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from rich.table import Table

from landscape.cli.app import out_console
from landscape.hessian.trace import DIAGONAL_METHODS, TRACE_METHODS
from training.errors import UserError

NAMES = {"hessian": "Hessian", "ggn": "GGN", "fisher": "Empirical Fisher", "fisher-mc": "Monte-Carlo Fisher"}


def vectors_file(out: Path) -> Path:
    """The Ritz-vector file beside ``out``: ``h.nc`` -> ``h.vectors.pt``."""
    return out.with_suffix(".vectors.pt")


def run_hessian(
    ckpt: Path,
    *,
    eigen: dict[str, Any],
    batches: int,
    batch_size: int,
    trace: bool,
    trace_method: str,
    diag: bool,
    diag_method: str,
    density: bool,
    vectors: bool,
    start: Path | None,
    data: Any,
    out: Path | None,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """Compute what the options ask for on ``batches`` unaugmented training batches, print it, save it to
    ``out`` with ``attrs`` added."""
    from landscape.hessian import hessian_density, hessian_diagonal, hessian_eigenvalues, hessian_trace
    from landscape.hessian.vectors import load_ritz_vectors
    from landscape.results import save_dataset

    if batches < 1 or batch_size < 1:
        raise UserError("--batches and --batch-size must be at least 1")
    if trace_method not in TRACE_METHODS:
        raise UserError(f"unknown --trace-method {trace_method!r}; choose from: {', '.join(TRACE_METHODS)}")
    if diag_method not in DIAGONAL_METHODS:
        raise UserError(f"unknown --diag-method {diag_method!r}; choose from: {', '.join(DIAGONAL_METHODS)}")
    if vectors and out is None:
        raise UserError("--vectors writes the Ritz vectors beside --out; give --out too")
    c = data.load(ckpt)  # data: the command's landscape.cli.sources.SourceOptions
    splits, train = data.splits(c, [], batch_size)
    train = train if train is not None else splits.get("data")
    if train is None:
        raise UserError(f"data {data.data!r} has no train split for the curvature; return {{'train': ...}}")
    chosen = list(itertools.islice(train, batches))
    eigen = {**eigen, "loss_fn": data.loss_fn()}
    common = {k: eigen[k] for k in ("subspace", "seed", "device", "operator", "mc_samples", "loss_fn")}
    groups = {"per_layer": eigen["per_layer"], "params": eigen["params"]}
    ds = hessian_eigenvalues(
        c, chosen, return_vectors=vectors, vectors_path=vectors_file(out) if vectors else None,
        start=load_ritz_vectors(start) if start is not None else None, **eigen,
    )  # fmt: skip
    print_spectrum(ds, sum(len(b[1]) for b in chosen))
    parts = [ds]
    if trace:
        t = hessian_trace(c, chosen, method=trace_method, **common, **groups)
        print_trace(t)
        parts.append(t)
    if diag:
        d = hessian_diagonal(c, chosen, method=diag_method, params=eigen["params"], **common)
        out_console.print(
            f"diagonal ({diag_method}, {d.attrs['hvp_count']} products): sum {float(d['diagonal'].sum()):.6g}, "
            f"largest {float(d['diagonal'].max()):.6g}, "
            f"median standard error {float(d['diagonal_stderr'].median()):.2g}"
        )
        parts.append(d)
    if density:
        parts.append(hessian_density(c, chosen, **common, **groups))
        out_console.print("density: computed (SLQ)")
    merged = xr.merge(parts, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts")
    merged.attrs.update({k: v for k, v in ds.attrs.items() if k in ("vectors_path", "hvp_count", "dimension")})
    merged.attrs.update(attrs)
    if out is not None:
        save_dataset(merged, out)
        print(f"wrote {out}")
        if vectors:
            print(f"wrote {vectors_file(out)}")
    return merged


def print_spectrum(ds: xr.Dataset, samples: int) -> None:
    """The eigenvalue table: one row per (group,) k."""
    # the title on a line of its own: a table title wraps at the table's width, splitting its phrases
    count = ds.attrs["hvp_count"]  # -1: PyHessian does not count its products
    out_console.print(
        f"{NAMES[ds.attrs['operator']]} of the mean loss over {samples} samples "
        f"({ds.attrs['subspace']} subspace, dimension {ds.attrs['dimension']}); "
        f"{ds.attrs['which']} eigenvalues" + (f", {count} products" if count >= 0 else "")
    )
    table = Table()
    grouped = "group" in ds.dims
    judged = "converged" in ds.attrs  # pyhessian does not say
    columns = ["k", "eigenvalue", "residual", "error bound"] + (["converged"] if judged else [])
    for col in (["group"] if grouped else []) + columns:
        table.add_column(col, justify="right")
    labels = ds["group"].values if grouped else [None]
    unconverged = 0
    for label in labels:
        sel = ds.sel(group=label) if grouped else ds
        prefix_ok = True  # every better-ranked eigenvalue of this group converged
        for rank, val, res, bound in zip(
            sel["k"].values, sel["eigenvalue"].values, sel["residual"].values, sel["error_bound"].values, strict=True
        ):
            row = [str(rank), f"{val:.6g}", f"{res:.2e}", f"{bound:.2e}"]
            if judged:
                # The bound is on the distance to *some* eigenvalue. It is the k-th one's only if the run's
                # stopping rule held or every better-ranked value converged: a Ritz value behind an
                # unconverged one can sit, with a small residual, on another eigenvalue than the k-th.
                ok = bool(np.isfinite(bound) and bound <= ds.attrs["tol"] * abs(val))
                ok = ok and (bool(ds.attrs["converged"]) or prefix_ok)
                prefix_ok = prefix_ok and ok
                unconverged += not ok
                row.append("yes" if ok else "not converged")
            table.add_row(*([str(label)] if grouped else []), *row)
    out_console.print(table)
    if judged and not ds.attrs["converged"] and not unconverged:
        out_console.print(f"note: the stopping rule did not hold within --max-iter {ds.attrs['max_iter']} products")
    if unconverged:
        out_console.print(
            f"not converged: {unconverged} eigenvalue(s) after {ds.attrs['hvp_count']} products (--max-iter "
            f"{ds.attrs['max_iter']}); their values and bounds are not to be trusted: raise --max-iter. An error "
            "bound is a heuristic: it bounds the distance to some eigenvalue, and its gap to the neighbouring Ritz "
            "values is an estimate until they converge, so it says nothing about the k-th eigenvalue before then."
        )


def print_trace(t: xr.Dataset) -> None:
    method = t.attrs["trace_method"]
    if "group" not in t.dims:
        out_console.print(
            f"trace {float(t['trace']):.6g} ± {float(t['trace_stderr']):.2g} ({method}, {int(t['probes'])} probes, "
            f"{t.attrs['hvp_count']} products)"
        )
        return
    for label, tr, se in zip(t["group"].values, t["trace"].values, t["trace_stderr"].values, strict=True):
        out_console.print(f"trace[{label}] {tr:.6g} ± {se:.2g} ({method})")
