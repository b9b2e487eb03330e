"""Paired effects with 95% confidence intervals, and the verdict rule the reproduction report uses.

Every claim compares two arms run with the same seeds (same data order and, where the arms allow, the
same initialisation), so the effect of a claim is the **paired difference** ``d_s = a_s − b_s`` over
seeds s. Its mean is reported with a two-sided t interval, ``mean ± t_{0.975, n−1} · sd(d) / √n``.

Verdict rule, fixed before any run: with the paper's ``direction`` (+1: it claims a > b; −1: a < b),

* ``reproduces`` if the interval excludes 0 on the paper's side,
* ``contradicts`` if it excludes 0 on the other side,
* ``inconclusive`` otherwise (including n < 2).

Questions with no stated direction (``direction`` 0, the reviewers' "how does X compare") are two-sided:
``differs`` if the interval excludes 0, otherwise ``no difference detected`` (including n < 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from training.errors import UserError

VERDICTS = ("reproduces", "contradicts", "inconclusive")
TWO_SIDED = ("differs", "no difference detected")


@dataclass(frozen=True)
class PairedEffect:
    """Mean paired difference ``a − b`` with its confidence interval, ``n`` pairs, and the verdict."""

    mean: float
    low: float
    high: float
    sd: float
    n: int
    direction: int
    verdict: str
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain values for tables, JSON and netCDF attributes."""
        return {
            "effect": self.mean,
            "ci_low": self.low,
            "ci_high": self.high,
            "sd": self.sd,
            "n": self.n,
            "direction": self.direction,
            "verdict": self.verdict,
            "confidence": self.confidence,
        }


def verdict(low: float, high: float, direction: int) -> str:
    """The verdict for an interval ``[low, high]`` of ``a − b`` when the paper claims sign ``direction``
    (0: no direction, the two-sided rule)."""
    if direction not in (1, -1, 0):
        raise UserError(
            f"direction must be +1 (a > b), -1 (a < b) or 0 (two-sided), got {direction}", param="direction"
        )
    finite = math.isfinite(low) and math.isfinite(high)
    if direction == 0:
        return "differs" if finite and (low > 0 or high < 0) else "no difference detected"
    if not finite:
        return "inconclusive"
    if (low > 0 and direction == 1) or (high < 0 and direction == -1):
        return "reproduces"
    if (high < 0 and direction == 1) or (low > 0 and direction == -1):
        return "contradicts"
    return "inconclusive"


def paired_effect(a: Sequence[float], b: Sequence[float], direction: int, confidence: float = 0.95) -> PairedEffect:
    """The paired effect of ``a`` against ``b`` (equal-length sequences, one value per seed, same order).

    Pairs where either value is not finite (a diverged or missing run) are dropped and ``n`` counts the
    rest; the interval is NaN (and the verdict ``inconclusive``) with fewer than two pairs.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise UserError(
            f"paired values need two equal-length 1-D sequences, got shapes {a_arr.shape} and {b_arr.shape}"
        )
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be in (0, 1), got {confidence}", param="confidence")
    d = (a_arr - b_arr)[np.isfinite(a_arr) & np.isfinite(b_arr)]
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return PairedEffect(
            mean, math.nan, math.nan, math.nan, n, direction, verdict(math.nan, math.nan, direction), confidence
        )
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    return PairedEffect(mean, low, high, sd, n, direction, verdict(low, high, direction), confidence)
