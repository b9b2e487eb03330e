import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.config import ScheduleConfig
from training.schedules import learning_rate, one_cycle, schedule_curve, step_schedule


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.2), (10, 0.6), (19, 0.96), (20, 1.0), (60, 0.5), (80, 0.25), (99, 0.0125)],
)
def test_one_cycle_linear_known_values(step, expected):
    assert one_cycle(step, 100, 1.0) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.2),
        (20, 1.0),
        (40, 0.5 * (1 + math.cos(math.pi / 4))),
        (60, 0.5),
        (99, 0.5 * (1 + math.cos(math.pi * 79 / 80))),
    ],
)
def test_one_cycle_cosine_known_values(step, expected):
    assert one_cycle(step, 100, 1.0, decay="cosine") == pytest.approx(expected, abs=1e-12)


def test_one_cycle_scales_with_peak_and_warmup_start():
    assert one_cycle(0, 50, 0.4, warmup_start=0.0) == 0.0
    assert one_cycle(10, 50, 0.4) == pytest.approx(0.4)
    assert one_cycle(0, 50, 0.4, warmup_fraction=0.0) == pytest.approx(0.4)


def test_step_schedule_known_values():
    ms = (0.5, 0.75)
    assert step_schedule(0, 160, 0.1, ms, 0.1) == pytest.approx(0.1)
    assert step_schedule(79, 160, 0.1, ms, 0.1) == pytest.approx(0.1)
    assert step_schedule(80, 160, 0.1, ms, 0.1) == pytest.approx(0.01)
    assert step_schedule(120, 160, 0.1, ms, 0.1) == pytest.approx(0.001)


def test_cyclic_restarts_each_cycle_and_skip_warmup():
    cfg = ScheduleConfig(name="cyclic", cycles=3, epochs=1)
    for cycle in (1, 2, 3):
        assert learning_rate(cfg, 0.2, 0, 10, cycle) == pytest.approx(0.04)
        assert learning_rate(cfg, 0.2, 2, 10, cycle) == pytest.approx(0.2)
    skip = ScheduleConfig(name="cyclic", cycles=3, epochs=1, skip_warmup=True)
    assert learning_rate(skip, 0.2, 0, 10, 1) == pytest.approx(0.04)
    assert learning_rate(skip, 0.2, 0, 10, 2) == pytest.approx(0.2)
    assert learning_rate(skip, 0.2, 5, 10, 2) == pytest.approx(0.1)


def test_one_cycle_budget_matches_stretched_cyclic():
    cyc = schedule_curve(ScheduleConfig(name="cyclic", cycles=4, epochs=5), 0.1, 10)
    one = schedule_curve(ScheduleConfig(name="one-cycle", cycles=1, epochs=20), 0.1, 10)
    assert len(cyc) == len(one) == 200
    assert max(lr for _, lr in one) == pytest.approx(0.1)
    # four peaks for the cyclic schedule, one for the one-cycle schedule
    assert sum(1 for _, lr in cyc if lr == pytest.approx(0.1)) == 4
    assert sum(1 for _, lr in one if lr == pytest.approx(0.1)) == 1


def test_step_out_of_range():
    with pytest.raises(ValueError):
        one_cycle(100, 100, 1.0)


@given(
    total=st.integers(2, 5000),
    frac=st.floats(0.0, 0.9),
    start=st.floats(0.0, 1.0),
    decay=st.sampled_from(["linear", "cosine"]),
)
def test_one_cycle_bounds_and_continuity(total, frac, start, decay):
    lrs = [one_cycle(t, total, 1.0, frac, start, decay) for t in range(total)]
    assert all(0.0 <= lr <= 1.0 + 1e-12 for lr in lrs)
    assert max(lrs) == pytest.approx(1.0)
    # continuity: no jump larger than the largest single-step change of either linear piece
    warmup = round(frac * total)
    bound = max((1 - start) / warmup if warmup else 0.0, math.pi / 2 / max(total - warmup, 1)) + 1e-9
    assert all(abs(b - a) <= bound for a, b in itertools.pairwise(lrs))
