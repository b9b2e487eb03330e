"""Claims of the reproduction protocol (``REPRODUCTION.md``, Part 1) evaluated on experiment tables.

A :class:`Claim` is one row of the protocol: the paper's statement, the arms, the metric and the
paper's direction. It holds one or more :class:`Comparison` s, each a concrete pair of arms (e.g. "random
mask at 90%, cyclic 4×8 vs ordinary 8"). An :class:`Arm` selects rows of a table of an
:class:`~landscape.experiments.tables.ExperimentResult` by column values; its value for a seed is the
mean of the metric over the selected rows of that seed (one row for a run; three pairs of cycles for
a barrier). A comparison's effect is the paired difference a − b over the seeds both arms have
(:func:`~landscape.experiments.stats.paired_effect`), with

* ``b`` absent: a is compared with 0 (a one-sample interval: "the barrier is above 0");
* ``a_minus``/``b_minus``: each side is itself a paired difference, e.g. the drop of LRR under a check
  (original − check) against the drop of SNIP.

Claims that two arms match (≈, "not worse", "unaffected") are tested in the direction a − b > 0, as
the protocol fixes: a significant shortfall contradicts them, a true match is inconclusive.

The protocol's claims are in :mod:`landscape.experiments.protocol`; they are evaluated the same way on
every tier (a comparison whose arms a tier does not run has n = 0 and ``tested`` false).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from landscape.experiments.stats import paired_effect
from landscape.experiments.tables import ExperimentResult
from training.errors import UserError


@dataclass(frozen=True)
class Arm:
    """Rows of ``table`` (``"runs"``: the result's main table; else a name in ``result.tables``) whose
    columns equal ``where``'s values; a tuple value matches any of its members."""

    where: tuple[tuple[str, Any], ...]
    table: str = "runs"

    def rows(self, result: ExperimentResult) -> pd.DataFrame:
        """The selected rows (an empty frame when the table or a column is missing)."""
        table = result.table if self.table == "runs" else result.tables.get(self.table)
        if table is None or table.empty:
            return pd.DataFrame()
        keep = np.ones(len(table), dtype=bool)
        for column, value in self.where:
            if column not in table:
                return table.iloc[0:0]
            keep &= _matches(table[column], value)
        return table[keep]

    def describe(self) -> str:
        """``column=value`` pairs, for logs and error messages."""
        return ", ".join(f"{k}={v}" for k, v in self.where) or "all rows"


def arm(where: Mapping[str, Any] | None = None, table: str = "runs") -> Arm:
    """An :class:`Arm` from a mapping of column → value."""
    return Arm(tuple((where or {}).items()), table)


def _matches(column: pd.Series, value: Any) -> np.ndarray:
    values = value if isinstance(value, tuple) else (value,)
    out = np.zeros(len(column), dtype=bool)
    for v in values:
        if isinstance(v, float):
            out |= np.isclose(pd.to_numeric(column, errors="coerce").to_numpy(dtype=float), v)
        else:
            out |= (column == v).to_numpy()
    return out


@dataclass(frozen=True)
class Comparison:
    """One concrete test of a claim: ``label`` (e.g. ``"random@90%, vs ordinary"``), the arms, and the
    metric when it differs from the claim's."""

    label: str
    a: Arm
    b: Arm | None = None
    a_minus: Arm | None = None
    b_minus: Arm | None = None
    metric: str | None = None


@dataclass(frozen=True)
class Claim:
    """One row of the protocol. ``direction``: +1 when the paper says a > b (or "a is not worse than
    b"), −1 when it says a < b. ``setting`` is the protocol's text of the arms; ``equivalence`` marks
    claims that two arms match, tested as "not worse"."""

    id: str
    group: str
    source: str
    statement: str
    setting: str
    metric: str
    direction: int
    comparisons: tuple[Comparison, ...]
    equivalence: bool = False


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one comparison: the paired effect a − b with its 95% interval, n pairs, the
    verdict, each arm's mean over the paired seeds, and the seeds. ``tested`` is false when either arm
    has no run in the tier (then n = 0 and the verdict is inconclusive)."""

    id: str
    label: str
    group: str
    metric: str
    direction: int
    effect: float
    ci_low: float
    ci_high: float
    n: int
    verdict: str
    mean_a: float
    mean_b: float
    seeds: tuple[int, ...] = field(default_factory=tuple)
    tested: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON (NaN as ``None``)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


def arm_values(result: ExperimentResult, side: Arm, metric: str) -> pd.Series:
    """The arm's value per seed: the mean of ``metric`` over its rows of each seed (index: seed)."""
    rows = side.rows(result)
    if rows.empty or metric not in rows or "seed" not in rows:
        return pd.Series(dtype=float)
    return rows.groupby("seed")[metric].mean().astype(float)


def _side(result: ExperimentResult, main: Arm | None, minus: Arm | None, metric: str, seeds: Sequence) -> pd.Series:
    if main is None:
        return pd.Series(0.0, index=list(seeds))
    values = arm_values(result, main, metric)
    return values if minus is None else (values - arm_values(result, minus, metric)).dropna()


def evaluate(claim: Claim, result: ExperimentResult) -> list[ClaimResult]:
    """Every comparison of ``claim`` on ``result``'s tables, runs paired by seed."""
    out = []
    for comp in claim.comparisons:
        metric = comp.metric or claim.metric
        a = _side(result, comp.a, comp.a_minus, metric, ())
        b = _side(result, comp.b, comp.b_minus, metric, a.index)
        seeds = sorted(set(a.index) & set(b.index))
        effect = paired_effect(a.reindex(seeds).to_numpy(), b.reindex(seeds).to_numpy(), claim.direction)
        out.append(
            ClaimResult(
                id=claim.id,
                label=comp.label,
                group=claim.group,
                metric=metric,
                direction=claim.direction,
                effect=effect.mean,
                ci_low=effect.low,
                ci_high=effect.high,
                n=effect.n,
                verdict=effect.verdict,
                mean_a=float(a.reindex(seeds).mean()) if seeds else math.nan,
                mean_b=float(b.reindex(seeds).mean()) if seeds else math.nan,
                seeds=tuple(int(s) for s in seeds),
                tested=bool(seeds),
            )
        )
    return out


def evaluate_group(group: str, result: ExperimentResult, claims: Sequence[Claim]) -> list[ClaimResult]:
    """The results of every claim of ``group`` (in protocol order)."""
    chosen = [c for c in claims if c.group == group]
    if not chosen:
        raise UserError(f"no claims belong to group {group!r}", param="group")
    return [r for claim in chosen for r in evaluate(claim, result)]
