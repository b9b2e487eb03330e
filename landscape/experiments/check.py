"""Re-deriving a claim group (``landscape reproduce GROUP --check``): train it again into a scratch
folder, compare the new results with the committed ones, and measure how far numbers move between
machines or library builds.

A CPU run is bitwise reproducible on one machine and library build, not across them (the kernels differ;
:mod:`training.environment`). A check compares, for every run present in both (matched by run folder
name, i.e. config hash), the final accuracy, training-set loss and training FLOPs; and for every claim
the effect, the interval and the verdict side by side. It is recorded with both environments in
``results/<tier>/checks/<group>.json``.

The recorded checks give the **cross-machine spread** of each metric: the largest move of an interval
bound between the committed and the re-derived results. The report marks a verdict **fragile** when the
bound of its interval nearest zero lies within that spread of zero (:func:`fragile`), i.e. the move
measured between two places could flip it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from training.errors import UserError
from training.fileio import read_json

COMPARED = ("accuracy", "train_set_loss", "train_flops")
DECIDED = ("reproduces", "contradicts", "differs")


NUMERIC_LABELS = ("seed", "sparsity", "mask.sparsity", "target", "budget")


def _runs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"no results to compare with: {path} is missing (run the group first)")
    ds = xr.load_dataset(path)
    table = pd.DataFrame({k: ds[k].values for k in ds.data_vars if ds[k].dims == ("run",)})
    if table.empty or "group" not in ds.attrs:
        raise UserError(f"{path} is not a results file of `landscape reproduce` (no group, no rows)")
    labels = [c for c in table if c not in ("run_dir", "made_on") and table[c].dtype.kind in "OUS"]
    labels += [c for c in NUMERIC_LABELS if c in table]
    table["key"] = [repr(tuple(row)) for row in table[labels].itertuples(index=False)]
    # a descriptive group's rows (keep-ratios: one per method, sparsity and seed) are named by their labels
    table["run"] = [Path(str(p)).name for p in table["run_dir"]] if "run_dir" in table else table["key"]
    return table


def _compared(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """:data:`COMPARED` where present; for a table of other rows, every floating-point column of both."""
    present = [c for c in COMPARED if c in a and c in b]
    if "run_dir" in a or present:
        return present
    return [c for c in a if c in b and a[c].dtype.kind == "f" and c not in NUMERIC_LABELS]


def compare_runs(committed: Path, rederived: Path) -> pd.DataFrame:
    """One row per run in both results files, matched by run folder name (the config hash) or, for runs
    whose config names another run's path (the coupling arms), by their labels and seed: per compared
    column, the committed value, the re-derived one and their difference, and ``identical`` (every
    compared value equal to the bit, NaN equal to NaN)."""
    a, b = _runs(committed), _runs(rederived)
    by_name, by_key = b.set_index("run"), b.drop_duplicates("key").set_index("key")
    rows = []
    for _, left in a.iterrows():
        if left["run"] in by_name.index:
            right = by_name.loc[left["run"]]
        elif left["key"] in by_key.index and (a["key"] == left["key"]).sum() == 1:
            right = by_key.loc[left["key"]]
        else:
            continue
        row: dict[str, Any] = {"run": left["run"]}
        same = True
        for col in _compared(a, b):
            x, y = float(left[col]), float(right[col])
            row[f"{col}_committed"], row[f"{col}_rederived"], row[f"{col}_diff"] = x, y, y - x
            same &= (x == y) or (math.isnan(x) and math.isnan(y))
        row["identical"] = same
        rows.append(row)
    return pd.DataFrame(rows)


def compare_claims(committed: Mapping[str, Any], rederived: Mapping[str, Any]) -> pd.DataFrame:
    """One row per comparison in both claims payloads: the effect, interval and verdict of each, the
    moves of the effect and of both bounds, and ``verdict_changed``."""
    new = {(c["id"], c["label"]): c for c in rederived.get("claims", [])}
    rows = []
    for c in committed.get("claims", []):
        d = new.get((c["id"], c["label"]))
        if d is None or not c.get("tested", True) or not d.get("tested", True):
            continue
        moves = {
            f"{k}_move": (d[k] - c[k]) if c.get(k) is not None and d.get(k) is not None else math.nan
            for k in ("effect", "ci_low", "ci_high")
        }
        rows.append(
            {
                "id": c["id"],
                "label": c["label"],
                "metric": c["metric"],
                **{f"{k}_committed": c.get(k) for k in ("effect", "ci_low", "ci_high", "verdict")},
                **{f"{k}_rederived": d.get(k) for k in ("effect", "ci_low", "ci_high", "verdict")},
                **moves,
                "verdict_changed": c["verdict"] != d["verdict"],
            }
        )
    return pd.DataFrame(rows)


def check_record(
    group: str, tier: str, runs: pd.DataFrame, claims: pd.DataFrame, committed: Mapping, rederived: Mapping
) -> dict[str, Any]:
    """The JSON record of one check: both environments, per-run differences and their summary, every
    claim side by side, and the spread (largest bound move) per metric."""
    summary = {
        "runs_compared": len(runs),
        "runs_identical": int(runs["identical"].sum()) if len(runs) else 0,
        "largest_accuracy_difference": (
            float(runs["accuracy_diff"].abs().max()) if "accuracy_diff" in runs else math.nan
        ),
        "verdicts_changed": int(claims["verdict_changed"].sum()) if len(claims) else 0,
    }
    return {
        "group": group,
        "tier": tier,
        "committed_environment": committed.get("environment", {}),
        "rederived_environment": rederived.get("environment", {}),
        "summary": summary,
        "spread": spread(claims),
        "runs": runs.to_dict(orient="records"),
        "claims": claims.to_dict(orient="records"),
    }


def spread(claims: pd.DataFrame) -> dict[str, float]:
    """Per metric: the largest move of either interval bound between two derivations (0 when bitwise
    equal; metrics with no finite move are left out)."""
    out: dict[str, float] = {}
    if claims.empty:
        return out
    for metric, df in claims.groupby("metric"):
        moves = np.abs(df[["ci_low_move", "ci_high_move"]].to_numpy(dtype=float))
        if np.isfinite(moves).any():
            out[str(metric)] = float(np.nanmax(moves))
    return out


def load_spreads(folders: Iterable[str | Path]) -> dict[str, float]:
    """Per metric, the largest spread over every check record (``*.json``) in ``folders`` — counting only
    records whose two environments differ (a check on the same machine and build measures nothing about
    other places)."""
    out: dict[str, float] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            record = read_json(path)
            if not isinstance(record, dict) or not isinstance(record.get("spread"), dict):
                continue
            if not differs(record.get("committed_environment", {}), record.get("rederived_environment", {})):
                continue
            for metric, value in record["spread"].items():
                if isinstance(value, int | float) and math.isfinite(value):
                    out[metric] = max(out.get(metric, 0.0), float(value))
    return out


PLACE = ("cpu_model", "cpu_capability", "torch_version", "numpy_version", "python_version", "cuda_device")


def differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two environments are different places (machine or library build); the package commit and
    thread counts do not count (the thread count is part of each run's config)."""
    return any(a.get(k) != b.get(k) for k in PLACE)


def fragile(result: Mapping[str, Any], spreads: Mapping[str, float]) -> bool:
    """Whether a decided verdict (reproduces, contradicts, differs) rests on an interval whose bound
    nearest zero is within the measured spread of its metric (no spread measured: not fragile)."""
    if result.get("verdict") not in DECIDED or result.get("ci_low") is None or result.get("ci_high") is None:
        return False
    width = spreads.get(result.get("metric", ""))
    if width is None:
        return False
    return min(abs(result["ci_low"]), abs(result["ci_high"])) <= width
