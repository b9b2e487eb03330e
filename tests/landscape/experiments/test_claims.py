"""Claims paired by seed on fabricated tables: effects against a hand-computed paired t interval,
verdicts, contrasts, one-sample claims, missing arms; and the generated report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from landscape.experiments import CLAIMS, ExperimentResult, claims_of
from landscape.experiments.claims import Claim, Comparison, arm, evaluate, evaluate_group
from landscape.experiments.report import BEGIN, END, claims_table, format_effect, load_claims, part2, write_into


def _cyclic_table(gains: dict[int, float], base: float = 0.8) -> pd.DataFrame:
    """Rows of the cyclic family: per seed an ordinary and a cyclic run of the random mask at 90%,
    in scrambled order, the cyclic run ``gains[seed]`` more accurate."""
    rows = []
    for seed, gain in gains.items():
        rows.append({"arm": "ordinary", "mask.method": "random", "mask.sparsity": 0.9, "seed": seed, "accuracy": base})
        rows.append(
            {"arm": "cyclic", "mask.method": "random", "mask.sparsity": 0.9, "seed": seed, "accuracy": base + gain}
        )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def _t_interval(d) -> tuple[float, float]:
    d = np.asarray(d, dtype=float)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def _p11() -> Claim:
    return next(c for c in CLAIMS if c.id == "P1-1")


def test_claim_pairs_runs_by_seed_and_reproduces():
    gains = {3: 0.02, 0: 0.03, 4: 0.025, 1: 0.015, 2: 0.02}
    result = ExperimentResult(table=_cyclic_table(gains), summary={})
    random, snip = evaluate(_p11(), result)
    low, high = _t_interval([gains[s] for s in sorted(gains)])
    assert random.label.startswith("random@90%") and random.n == 5 and random.seeds == (0, 1, 2, 3, 4)
    assert random.effect == pytest.approx(np.mean(list(gains.values())))
    assert (random.ci_low, random.ci_high) == pytest.approx((low, high))
    assert random.verdict == "reproduces" and random.tested
    assert random.mean_a == pytest.approx(0.8 + random.effect) and random.mean_b == pytest.approx(0.8)
    assert not snip.tested and snip.n == 0 and snip.verdict == "inconclusive"  # no SNIP runs in the table


def test_claim_contradicts_and_inconclusive_and_drops_unpaired_seeds():
    losses = ExperimentResult(table=_cyclic_table({0: -0.02, 1: -0.03, 2: -0.025}), summary={})
    assert evaluate(_p11(), losses)[0].verdict == "contradicts"  # cyclic significantly worse
    table = _cyclic_table({0: 0.02, 1: -0.02, 2: 0.01})
    table = table[~((table["seed"] == 2) & (table["arm"] == "ordinary"))]  # seed 2 has no partner
    mixed = evaluate(_p11(), ExperimentResult(table=table, summary={}))[0]
    assert mixed.n == 2 and mixed.seeds == (0, 1) and mixed.effect == pytest.approx(0.0)
    assert mixed.verdict == "inconclusive"


def test_direction_minus_one_and_contrast_of_drops():
    rows = []
    for seed in range(4):
        for method, drop in (("lrr", 0.05 + 0.01 * seed), ("snip", 0.001 * seed)):
            rows.append({"method": method, "check": "original", "seed": seed, "accuracy": 0.9})
            rows.append({"method": method, "check": "rearrange", "seed": seed, "accuracy": 0.9 - drop})
    result = ExperimentResult(table=pd.DataFrame(rows), summary={})
    contrast = next(r for r in evaluate_group("sanity", result, CLAIMS) if r.id == "P2-2c" and "rearrange" in r.label)
    d = [(0.05 + 0.01 * s) - 0.001 * s for s in range(4)]
    assert contrast.effect == pytest.approx(np.mean(d)) and (contrast.ci_low, contrast.ci_high) == pytest.approx(
        _t_interval(d)
    )
    assert contrast.verdict == "reproduces"
    lower = Claim(
        "X",
        "g",
        "s",
        "a < b",
        "setting",
        "accuracy",
        -1,
        (Comparison("lrr", arm({"method": "lrr", "check": "rearrange"}), arm({"method": "lrr", "check": "original"})),),
    )
    assert evaluate(lower, result)[0].verdict == "reproduces"  # the check's runs are lower


def test_one_sample_claim_against_zero_averages_rows_per_seed():
    rows = [
        {"kind": "consecutive cycles", "pair": pair, "seed": seed, "error_barrier": b, "error_barrier_chord": b / 2}
        for seed in range(3)
        for pair, b in (("1→2", 0.03 + 0.01 * seed), ("2→3", 0.02), ("3→4", 0.01))
    ]
    rows.append(
        {"kind": "independent seeds", "pair": "0,1", "seed": 0, "error_barrier": 0.5, "error_barrier_chord": 0.5}
    )
    result = ExperimentResult(table=pd.DataFrame({"seed": []}), summary={}, tables={"barriers": pd.DataFrame(rows)})
    frankle, chord = evaluate(next(c for c in CLAIMS if c.id == "P1-7"), result)
    per_seed = [np.mean([0.03 + 0.01 * s, 0.02, 0.01]) for s in range(3)]
    assert frankle.effect == pytest.approx(np.mean(per_seed)) and frankle.mean_b == 0.0
    assert (frankle.ci_low, frankle.ci_high) == pytest.approx(_t_interval(per_seed))
    assert chord.metric == "error_barrier_chord" and chord.effect == pytest.approx(frankle.effect / 2)


def test_every_protocol_claim_belongs_to_a_group_with_its_direction():
    ids = [c.id for c in CLAIMS]
    paper1 = ["P1-1", "P1-2", "P1-3", "P1-1i", "P1-4", "P1-5a", "P1-5b", "P1-6a", "P1-6b", "P1-6c", "P1-7"]
    reviews = [
        "B-1",
        "B-2",
        "B-3",
        "B-4",
        "V-1",
        "V-2",
        "S-1",
        "S-2",
        "O-1",
        "O-2",
        "O-3",
        "A-1",
        "A-4",
        "A-5a",
        "A-5b",
    ]
    assert ids == [*paper1, "P2-1", "P2-2", "P2-2c", "P2-3", "P2-4", "P2-5", *reviews]
    direction = {c.id: c.direction for c in CLAIMS}
    assert {k for k, d in direction.items() if d == -1} == {"P1-3", "P1-4", "B-3", "A-4"}
    assert {k for k, d in direction.items() if d == 0} == {"B-1", "B-2", "S-1", "S-2", "O-3"}  # two-sided
    equivalences = {"P1-5b", "P1-6b", "P2-1", "P2-3", "P2-4", "B-4", "O-2", "A-5b"}
    assert {c.id for c in CLAIMS if c.equivalence} == equivalences
    assert [c.id for c in claims_of("sanity")] == ["P2-1", "P2-2", "P2-2c", "P2-3"]
    assert sum(len(c.comparisons) for c in claims_of("tickets")) == 5  # 2 sparsities × (SNIP, GraSP) + hybrid


def _payload(group: str, claims: list[dict], **extra) -> dict:
    return {"group": group, "tier": "medium", "claims": claims, "summary": {}, **extra}


def _result(cid: str, label: str, **values) -> dict:
    base = {"id": cid, "label": label, "metric": "accuracy", "direction": 1, "n": 5, "tested": True}
    return base | values


def test_report_renders_claims_quick_beside_and_untested_rows(tmp_path):
    label = "random@90%, cyclic vs ordinary"
    medium = {
        "cyclic": _payload(
            "cyclic",
            [
                _result(
                    "P1-1",
                    label,
                    effect=0.0123,
                    ci_low=0.0045,
                    ci_high=0.0201,
                    verdict="reproduces",
                    mean_a=0.9,
                    mean_b=0.8877,
                )
            ],
            timing={"wall_time_s": 900.0, "runs_trained": 40, "runs_read_back": 0, "jobs": 2},
        )
    }
    quick = {
        "cyclic": _payload(
            "cyclic",
            [_result("P1-1", label, n=2, effect=-0.01, ci_low=-0.2, ci_high=0.18, verdict="inconclusive", tested=True)],
        )
    }
    for folder, payloads in (("medium", medium), ("quick", quick)):
        (tmp_path / folder).mkdir()
        for group, payload in payloads.items():
            (tmp_path / folder / f"{group}-claims.json").write_text(json.dumps(payload))
    medium, quick = load_claims(tmp_path / "medium"), load_claims(tmp_path / "quick")
    table = claims_table(medium, quick)
    row = next(line for line in table.splitlines() if "**P1-1**" in line)
    assert "+1.23 pp [+0.45, +2.01], n = 5 (a 90.00, b 88.77)" in row and "**reproduces**" in row
    assert "-1.00 pp [-20.00, +18.00], n = 2, inconclusive" in row
    snip_row = next(line for line in table.splitlines() if "SNIP@90%, cyclic vs ordinary" in line)
    assert "not tested" in snip_row and "no such arm in the quick tier" in snip_row
    assert "not run (no `high-sparsity-claims.json`)" in next(line for line in table.splitlines() if "P1-4" in line)
    block = part2(medium, quick)
    assert block.startswith(BEGIN) and block.endswith(END) and "1 reproduces, 0 contradicts, 0 inconclusive" in block
    row = "`landscape reproduce cyclic --tier medium` | 15.0 min | 2 | 1 (not recorded: --jobs ≥ 2) | 40 | 0 |"
    assert row in block
    medium["cyclic"]["timing"]["paused_s"] = 300.0  # time the process was stopped does not count
    assert "| `landscape reproduce cyclic --tier medium` | 10.0 min | 2 |" in part2(medium, quick)
    del medium["cyclic"]["timing"]["paused_s"]
    assert "### The full tier's deviations from the papers" in block and "E = 30" in block
    doc = tmp_path / "REPRODUCTION.md"
    doc.write_text(f"# Report\n\nprose before\n{BEGIN}\nold\n{END}\nprose after\n")
    write_into(doc, block)
    text = doc.read_text()
    assert "old" not in text and text.startswith("# Report\n\nprose before\n") and text.endswith("prose after\n")
    assert format_effect(
        _result("P1-3", "x", metric="train_set_loss", effect=-0.0012, ci_low=-0.002, ci_high=-0.0004, mean_a=None)
    ) == ("-0.0012 nats [-0.0020, -0.0004], n = 5")


def test_report_puts_the_longer_cycles_beside_the_medium_tier():
    label = "random@90%, cyclic vs one-cycle"
    loss = {"metric": "train_set_loss", "direction": -1}
    medium = {
        "cyclic": _payload(
            "cyclic",
            [_result("P1-3", label, **loss, effect=0.0033, ci_low=0.0003, ci_high=0.0063, verdict="contradicts")],
        )
    }
    flat = {"cycle 1": {"last_epoch_train_loss": 0.05, "last_epoch_relative_fall": 0.1, "train_set_loss": 0.04}}
    longer = {
        "cyclic": _payload(
            "cyclic",
            [
                _result("P1-3", label, **loss, effect=-0.001, ci_low=-0.002, ci_high=0.0005, verdict="inconclusive"),
                _result("P1-1", "random@90%, cyclic vs ordinary", tested=False),  # no such arm: left out
            ],
            summary={"loss_flattening": flat},
            timing={"wall_time_s": 1200.0, "runs_trained": 20, "runs_read_back": 0, "jobs": 2},
        )
    }
    block = part2(medium, {}, longer)
    assert (
        f"| P1-3 | {label} | +0.0033 nats [+0.0003, +0.0063], n = 5 | **contradicts** "
        "| -0.0010 nats [-0.0020, +0.0005], n = 5 | **inconclusive** |"
    ) in block
    assert "### Cycle length: cyclic with E = 16 (tier `medium-long`) beside E = 8" in block
    assert "cyclic vs ordinary" not in block.split("### Cycle length")[1].split("Training loss per cycle")[0]
    assert "| cycle 1 | 0.0500 | 10.0% | 0.0400 |" in block
    row = "| `landscape reproduce cyclic --tier medium-long` | 20.0 min | 2 | 1 (not recorded: --jobs ≥ 2) | 20 | 0 |"
    assert row in block
    assert "### Cycle length" not in part2(medium, {})  # not run: no section
