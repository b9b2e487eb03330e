"""Paired effects against scipy's paired t-test, and the verdict rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from landscape.experiments.stats import paired_effect, verdict


def test_interval_equals_scipys_paired_t_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.02, size=5)
    b = a - rng.normal(0.01, 0.01, size=5)
    effect = paired_effect(a, b, direction=1)
    reference = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert effect.n == 5 and effect.mean == pytest.approx(float(np.mean(a - b)), rel=1e-12)
    assert (effect.low, effect.high) == pytest.approx((reference.low, reference.high), rel=1e-10)


def test_worked_example():
    # d = 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027, half-width 4.3027 / sqrt(3) = 2.4841
    effect = paired_effect([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], direction=1)
    assert (effect.mean, effect.sd) == (2.0, 1.0)
    assert effect.low == pytest.approx(2 - 2.4841, abs=1e-4) and effect.high == pytest.approx(2 + 2.4841, abs=1e-4)
    assert effect.verdict == "inconclusive"  # the interval [-0.48, 4.48] contains 0


@pytest.mark.parametrize(
    ("low", "high", "direction", "expected"),
    [
        (0.01, 0.03, 1, "reproduces"),
        (0.01, 0.03, -1, "contradicts"),
        (-0.03, -0.01, -1, "reproduces"),
        (-0.03, -0.01, 1, "contradicts"),
        (-0.01, 0.03, 1, "inconclusive"),
        (math.nan, math.nan, 1, "inconclusive"),
    ],
)
def test_verdict_rule(low, high, direction, expected):
    assert verdict(low, high, direction) == expected


def test_missing_runs_are_dropped_from_the_pairs():
    effect = paired_effect([0.9, math.nan, 0.8, 0.85], [0.8, 0.7, 0.75, 0.8], direction=1)
    assert effect.n == 3 and effect.mean == pytest.approx((0.1 + 0.05 + 0.05) / 3)
    lonely = paired_effect([0.9], [0.8], direction=1)
    assert lonely.n == 1 and math.isnan(lonely.low) and lonely.verdict == "inconclusive"
