"""The claim groups added for the reviewers (budget, boost-vs-sparsity, sharpness, coupling-ordinary,
keep-ratios): their arms against the protocol, their derived numbers against hand computations, and
each group end to end on a tiny test-only tier."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from landscape.cli.main import main
from landscape.experiments import boost, budget, coupling, keep_ratios, review_groups, sculpting, settings, sharpness
from landscape.experiments.protocol import CLAIMS, GROUPS, claims_of
from landscape.experiments.review_settings import BoostSettings, BudgetSettings, KeepRatioSettings, SharpnessSettings
from landscape.experiments.settings import CouplingSettings, CyclicSettings, get_tier
from landscape.experiments.stats import paired_effect, verdict
from training.config import DataConfig, ModelConfig


@pytest.fixture
def tiny_review_tier(hidden_tier):
    """A hidden tier: cnn1d of width 16, batch 256 (16 steps per epoch), 1-epoch cycles, 2 seeds."""
    return hidden_tier(
        "tiny-review",
        16,
        cyclic=CyclicSettings(cycles=2, epochs=1, sparsities=(0.9,), methods=("random",)),
        coupling=CouplingSettings(epochs=1, cycles=2, sparsity=0.9, lrr_prune_fraction=0.7, ticket_per_seed=True),
        budget=BudgetSettings(
            sparsities=(0.9,),
            epochs=3,
            cycle_epochs=1,
            sculpt_cycles=1,
            lrr_prune_fraction=0.7,
            pai_cycles=2,
            interval=2,
        ),
        boost=BoostSettings(cycles=2, epochs=1, sparsities=(0.5, 0.9)),
        sharpness=SharpnessSettings(sparsity=0.9, methods=("random",), samples=64, max_iter=30, trace_matvecs=12),
        keep_ratios=KeepRatioSettings(sparsities=(0.9,), methods=("snip",)),
    )


def _reproduce(group, tmp_path):
    args = ["reproduce", group, "--tier", "tiny-review", "--runs", str(tmp_path / "runs"), "--quiet", "--jobs", "1"]
    args += ["--results", str(tmp_path / "results"), "--figures", str(tmp_path / "figures")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    payload = json.loads((tmp_path / "results" / f"{group}-claims.json").read_text())
    return (
        xr.load_dataset(tmp_path / "results" / f"{group}.nc"),
        payload,
        {(c["id"], c["label"]): c for c in payload["claims"]},
    )


def test_two_sided_rule():
    assert verdict(0.1, 0.3, 0) == "differs" and verdict(-0.3, -0.1, 0) == "differs"
    assert verdict(-0.1, 0.3, 0) == "no difference detected"
    assert verdict(float("nan"), float("nan"), 0) == "no difference detected"
    effect = paired_effect([1.0, 2.0, 3.0], [0.0, 0.5, 1.0], 0)
    assert effect.verdict == "differs" and effect.mean == pytest.approx(1.5)
    assert paired_effect([1.0], [0.0], 0).verdict == "no difference detected"  # n < 2


def test_every_group_has_a_runner_and_the_registered_claims():
    from landscape.experiments.reproduce import GROUP_SPECS

    assert tuple(GROUP_SPECS) == GROUPS
    assert {c.id for c in claims_of("budget")} == {"B-1", "B-2", "B-3", "B-4"}
    assert not claims_of("keep-ratios")  # descriptive
    b1 = next(c for c in CLAIMS if c.id == "B-1")
    assert b1.direction == 0 and len(b1.comparisons) == 2 * (8 + 1)  # 8 baselines and RigL 2×, at 90% and 95%
    assert next(c for c in CLAIMS if c.id == "B-3").direction == -1
    assert next(c for c in CLAIMS if c.id == "V-1").metric == "slope"


def test_budget_arms_are_the_protocols():
    tier = get_tier("medium")
    labelled = budget.budget_configs(tier)
    per_seed = 1 + 2 * 9  # dense, then per sparsity SCULPT, LRR, cyclic PaI, RigL 1× and 2×, SET, GMP, GMP*, AC/DC
    assert len(labelled) == 5 * per_seed
    arms = {(lab["method"], lab["sparsity"], lab["budget"]): cfg for lab, cfg in labelled if cfg.seed == 0}
    rigl2 = arms[("rigl", 0.95, 2)]
    assert rigl2.schedule.epochs == 64 and rigl2.recipe.dst_interval == 16 and rigl2.mask.distribution == "erk"
    assert arms[("set", 0.9, 1)].recipe.dst_interval is None  # SET's own: once per epoch
    assert arms[("gmp-star", 0.9, 1)].recipe.gmp_interval == 16 and arms[("gmp", 0.9, 1)].mask.method == "none"
    assert arms[("acdc", 0.95, 1)].schedule.epochs == 32 and arms[("dense", 0.0, 1)].mask.sparsity == 0.0
    assert arms[("cyclic PaI", 0.9, 1)].schedule.cycles == 4 and arms[("cyclic PaI", 0.9, 1)].schedule.epochs == 8
    # SCULPT and LRR at 95% are the high-sparsity group's runs, and LRR at 95% is P1-6's coupling ticket
    high = {lab["method"]: cfg for lab, cfg in sculpting.sculpting_configs(tier) if cfg.seed == 0}
    assert arms[("sculpt", 0.95, 1)].run_name == high["sculpt s0=0.5"].run_name
    assert arms[("lrr", 0.95, 1)].run_name == high["lrr"].run_name == coupling.lrr_config(tier, 0).run_name


def test_nearest_budget_picks_rigl_closest_in_log_flops():
    table = pd.DataFrame(
        {
            "method": ["sculpt", "sculpt", "rigl", "rigl", "rigl", "rigl", "set"],
            "sparsity": [0.9] * 7,
            "budget": [1, 1, 1, 1, 2, 2, 1],
            "train_flops": [100.0, 100.0, 30.0, 30.0, 60.0, 60.0, 100.0],
        }
    )
    assert budget.nearest_budget(table).tolist() == [False, False, False, False, True, True, False]
    table.loc[table["budget"] == 2, "train_flops"] = 400.0  # log distance: 30 → 1.20, 400 → 1.39
    assert budget.nearest_budget(table).tolist() == [False, False, True, True, False, False, False]


def test_seed_slopes_are_least_squares_slopes_per_seed():
    rows = []
    for seed, slope in ((0, 0.02), (1, -0.01)):
        for s in (0.5, 0.9, 0.99):
            x = float(boost.density_decades(s))
            rows.append({"seed": seed, "sparsity": s, "x": x, "d": 0.1 + slope * x})
    slopes = boost.seed_slopes(pd.DataFrame(rows))
    assert slopes["slope"].to_numpy() == pytest.approx([0.02, -0.01])
    assert boost.density_decades(0.9) == pytest.approx(1.0) and boost.density_decades(0.99) == pytest.approx(2.0)


def test_agreement_with_smart_ratios():
    layers = pd.DataFrame(
        {
            "method": ["smart ratio"] * 3 + ["a"] * 3 + ["b"] * 3,
            "sparsity": [0.9] * 9,
            "seed": [0] * 9,
            "layer": ["l1", "l2", "l3"] * 3,
            "keep_ratio": [0.5, 0.2, 0.1, 0.6, 0.3, 0.2, 0.1, 0.2, 0.5],
        }
    )
    layers["smart_ratio"] = [0.5, 0.2, 0.1] * 3
    table = keep_ratios.agreement(layers).set_index("method")
    assert table.loc["a", "spearman"] == pytest.approx(1.0) and table.loc["b", "spearman"] == pytest.approx(-1.0)
    assert table.loc["a", "mean_abs_diff"] == pytest.approx(0.1)


def test_coupling_ordinary_runs_both_schedules(tiny_review_tier, tmp_path):
    ds, _payload, claims = _reproduce("coupling-ordinary", tmp_path)
    assert ds.sizes["run"] == 2 * 2 * 2 and ds.sizes["tickets_row"] == 2
    assert sorted(set(zip(ds["init"].values, ds["schedule"].values, strict=True))) == [
        ("random", "cyclic"), ("random", "one-cycle"), ("warmup", "cyclic"), ("warmup", "one-cycle"),
    ]  # fmt: skip
    acc = {
        (i, s, int(seed)): float(a)
        for i, s, seed, a in zip(*(ds[k].values for k in ("init", "schedule", "seed", "accuracy")), strict=True)
    }
    o3 = claims[("O-3", "warmup, cyclic vs one-cycle")]
    diffs = [acc[("warmup", "cyclic", s)] - acc[("warmup", "one-cycle", s)] for s in (0, 1)]
    assert o3["effect"] == pytest.approx(np.mean(diffs)) and o3["verdict"] in ("differs", "no difference detected")


def test_boost_and_sharpness_groups(tiny_review_tier, tmp_path):
    ds, _, claims = _reproduce("boost-vs-sparsity", tmp_path)
    assert ds.sizes["run"] == 2 * 2 * 2 and ds.sizes["slopes_row"] == 2
    v1 = claims[("V-1", "slope per decade of density")]
    assert v1["effect"] == pytest.approx(float(np.mean(ds["slopes.slope"].values))) and v1["n"] == 2
    assert (tmp_path / "figures" / "boost-vs-sparsity-boost.png").stat().st_size > 5_000
    ds, _payload, claims = _reproduce("sharpness", tmp_path)
    assert ds.sizes["run"] == 2 * 2
    # Cauchy interlacing: the mask subspace's λ_max is a principal sub-block's, never above the whole Hessian's
    assert (ds["lambda_max_all"].values >= ds["lambda_max_mask"].values * (1 - 1e-3)).all()
    assert (ds["converged_all"].values == 1).all() and np.isfinite(ds["trace_mask"].values).all()
    last = ds["cycles.lambda_max"].values[ds["cycles.cycle"].values == 2]  # warm-started, at the final cycle
    final = ds["lambda_max_mask"].values[ds["arm"].values == "cyclic"]
    np.testing.assert_allclose(np.sort(last), np.sort(final), rtol=5e-3)
    assert claims[("S-1", "random@90%, cyclic vs one-cycle")]["direction"] == 0


def test_budget_and_keep_ratio_groups(tiny_review_tier, tmp_path):
    ds, payload, claims = _reproduce("budget", tmp_path)
    assert ds.sizes["run"] == 2 * (1 + 9)
    rows = pd.DataFrame({k: ds[k].values for k in ("method", "sparsity", "budget", "seed", "train_flops", "nearest")})
    flops = rows[rows["budget"] == 1].set_index(["method", "seed"])["train_flops"]
    b3 = claims[("B-3", "90%, SCULPT vs LRR")]
    assert b3["effect"] == pytest.approx(np.mean([flops[("sculpt", s)] - flops[("lrr", s)] for s in (0, 1)]))
    assert (
        b3["verdict"] == "reproduces"
    )  # one cycle at 50% and one at 90% cost less than LRR's dense level and two more
    assert rows["nearest"].sum() == 2 and set(rows.loc[rows["nearest"], "method"]) == {"rigl"}
    assert (tmp_path / "figures" / "budget-accuracy-vs-flops.png").stat().st_size > 5_000
    ds, payload, _ = _reproduce("keep-ratios", tmp_path)
    assert payload["claims"] == [] and payload["timing"]["runs_trained"] == 0  # the budget runs are read back
    layers = pd.DataFrame({k.split(".", 1)[1]: ds[k].values for k in ds.data_vars if k.startswith("layers.")})
    erk = layers[layers["method"] == "erk"].set_index(["seed", "layer"])["keep_ratio"]
    rigl = layers[layers["method"] == "rigl"].set_index(["seed", "layer"])["keep_ratio"]
    pd.testing.assert_series_equal(
        rigl.sort_index(), erk.sort_index(), check_names=False
    )  # RigL keeps each layer's count
    smart = payload["summary"]["spearman"]
    assert set(smart) == {"0.9/erk", "0.9/lrr", "0.9/rigl", "0.9/snip"}


def test_sharpness_and_keep_ratio_configs_reuse_other_groups():
    tier = get_tier("medium")
    arms = sharpness.sharpness_configs(tier)
    assert len(arms) == 2 * 2 * 5 and {a for a, _ in arms} == {"cyclic", "one-cycle"}
    trained = keep_ratios.trained_configs(tier)
    assert {lab["method"] for lab, _ in trained} == {"lrr", "rigl"} and len(trained) == 2 * 2 * 5
    chosen = review_groups.coupling_ordinary_tier(tier)
    assert chosen.coupling.inits == ("random", "warmup") and chosen.coupling.schedules == ("cyclic", "one-cycle")


def test_report_sections_of_the_review_groups():
    from landscape.experiments.report_reviews import review_sections

    medium = {
        "budget": {
            "summary": {
                "T": 32,
                "accuracy": {"0.9/sculpt": [0.95, 0.004], "0.9/rigl 2×": [0.94, 0.002]},
                "train_flops": {"0.9/sculpt": 3.0e12, "0.9/rigl 2×": 1.5e12},
                "dense_epochs": {"0.9/sculpt": 14.0, "0.9/rigl 2×": 7.0},
                "nearest_rigl_budget": {"0.9": 2},
            }
        },
        "boost-vs-sparsity": {"summary": {"boost": {"0.5": [0.01, 0.002]}, "slope": [-0.004, 0.001], "scale": "x"}},
        "architectures": {
            "summary": {
                "accuracy": {"vit/sculpt/erk": [0.6512, 0.0103]},
                "train_set_loss": {"vit/sculpt/erk": [0.98765, 0.0123]},
                "epochs": {"vit/sculpt/erk": [40.0, 0.0]},
                "train_flops": {"vit/sculpt/erk": [1.234e12, 1e9]},
            }
        },
    }
    text = "\n".join(review_sections(medium))
    assert "| 90% | sculpt | 95.00 ± 0.40 | 3.000e+12 | 14.0 |" in text and "0.9: 2×" in text
    assert "| 50% | 1.00 ± 0.20 |" in text and "-0.40 ± 0.10 pp per decade" in text
    assert "budget-accuracy-vs-flops.png" in text and "### Sharpness" not in text  # only groups with results
    assert "| vit | sculpt | erk | 65.12 ± 1.03 | 0.988 ± 0.012 | 40 | 1.234e+12 |" in text


def test_architectures_group_on_fabricated_fashion_mnist(monkeypatch, tmp_path):
    from landscape.experiments import architectures
    from landscape.experiments.review_settings import ArchitectureModel, ArchitectureSettings
    from tests.training.data.test_fashion_mnist import fabricate

    root = tmp_path / "fmnist"
    root.mkdir()
    fabricate(root, n_train=40, n_test=20)
    quick = settings.get_tier("quick")
    tier = replace(
        quick,
        name="tiny-review-architectures",
        base=replace(quick.base, data=DataConfig(name="fashion-mnist", root=str(root), batch_size=20)),
        seeds=(0, 1),
        architectures=ArchitectureSettings(
            models=(ArchitectureModel(ModelConfig(name="vit", width=12, layers=1, heads=2, patch=7), 2, 10),
                    ArchitectureModel(ModelConfig(name="mobilenetv2", width=8), 1, 20)),
            sparsity=0.9, cycles=2, lrr_prune_fraction=0.7,
            sculpt_cycles=1,
        ),
    )  # fmt: skip
    monkeypatch.setitem(settings.TIERS, "tiny-review", replace(quick, name="tiny-review"))
    monkeypatch.setitem(settings.TIERS, "tiny-review-architectures", tier)
    labelled = architectures.architecture_configs(tier)
    assert len(labelled) == 2 * 2 * (2 * 2 + 3)  # models × seeds × (P1-1's 4 arms + LRR, cyclic PaI, SCULPT)
    pai = next(cfg for lab, cfg in labelled if lab["arm"] == "cyclic PaI")
    assert pai.schedule.cycles == architectures.lrr_trainings(tier.architectures) == 3  # LRR: 1, 0.3, 0.1
    mobile = [cfg for lab, cfg in labelled if lab["model"] == "mobilenetv2"]
    assert all(cfg.mask.dense_depthwise for cfg in mobile)
    assert not any(cfg.mask.dense_depthwise for lab, cfg in labelled if lab["model"] == "vit")
    vits = [cfg for lab, cfg in labelled if lab["model"] == "vit"]
    assert {(c.data.batch_size, c.schedule.epochs, c.model.layers) for c in vits} == {(10, 2, 1)}
    assert {(c.data.batch_size, c.schedule.epochs) for c in mobile} == {(20, 1)}
    ds, payload, claims = _reproduce("architectures", tmp_path)
    assert ds.sizes["run"] == 28 and payload["tier"] == "tiny-review-architectures"
    a1 = claims[("A-1", "ViT, random, cyclic vs ordinary")]
    rows = pd.DataFrame({k: ds[k].values for k in ("model", "arm", "method", "seed", "accuracy")})
    acc = rows.set_index(["model", "arm", "method", "seed"])["accuracy"]
    diffs = [acc[("vit", "cyclic", "random", s)] - acc[("vit", "ordinary", "random", s)] for s in (0, 1)]
    assert a1["effect"] == pytest.approx(np.mean(diffs)) and a1["n"] == 2
    assert claims[("A-5b", "MobileNetV2, SCULPT vs LRR")]["tested"]


def test_a_tier_without_a_groups_settings_is_refused_in_one_line():
    from training.errors import UserError

    tier = replace(get_tier("quick"), budget=None)
    with pytest.raises(UserError, match="tier 'quick' has no settings for the budget group"):
        budget.budget_configs(tier)
