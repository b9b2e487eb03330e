"""The medium tier's runs are the protocol's arms (REPRODUCTION.md, Part 1), checked on the configs
without training; and the full tier's settings against the papers'."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import xarray as xr

from landscape import experiments
from landscape.experiments.barriers import DATA_ORDER_OFFSET, barrier_configs, seed_pairs
from landscape.experiments.parallel import planned_epochs
from training.recipes import level_densities
from training.run import RunResult
from training.validate import validate

MEDIUM = experiments.get_tier("medium")
SEEDS = (0, 1, 2, 3, 4)


def test_medium_base_settings():
    b = MEDIUM.base
    assert (b.data.name, b.data.mnist1d_test, b.data.batch_size) == ("mnist1d", 10000, 128)
    assert (b.model.name, b.model.width) == ("resnet20_1d", 16)
    assert (b.optim.lr, b.optim.momentum, b.optim.weight_decay) == (0.1, 0.9, 5e-4)
    assert MEDIUM.seeds == SEEDS


def test_cyclic_arms_p1_1_to_p1_3():
    arms = experiments.cyclic_arms(MEDIUM)
    assert Counter(arm for arm, _ in arms) == {"cyclic": 10, "one-cycle": 10, "ordinary": 10, "cosine": 10}
    by_arm = {arm: cfg.schedule for arm, cfg in arms}
    assert (by_arm["cyclic"].name, by_arm["cyclic"].cycles, by_arm["cyclic"].epochs) == ("cyclic", 4, 8)
    assert (by_arm["one-cycle"].name, by_arm["one-cycle"].epochs, by_arm["one-cycle"].decay) == (
        "one-cycle",
        32,
        "linear",
    )
    assert (by_arm["ordinary"].name, by_arm["ordinary"].epochs) == ("one-cycle", 8)
    assert (by_arm["cosine"].epochs, by_arm["cosine"].decay) == (32, "cosine")
    assert {(c.mask.method, c.mask.sparsity) for _, c in arms} == {("random", 0.9), ("snip", 0.9)}
    assert {c.seed for _, c in arms} == set(SEEDS)
    for _, cfg in arms:
        validate(cfg)
    assert sum(planned_epochs(c) for _, c in arms) == 2 * 5 * (32 + 32 + 8 + 32)


def test_high_sparsity_arms_p1_4_and_p1_5():
    labelled = experiments.sculpting_configs(MEDIUM)
    methods = Counter(lab["method"] for lab, _ in labelled)
    assert methods == {"sculpt s0=0.5": 5, "lrr": 5, "cyclic PaI": 5}
    pai = next(c for lab, c in labelled if lab["method"] == "cyclic PaI")
    assert (pai.schedule.name, pai.schedule.cycles, pai.schedule.epochs) == ("cyclic", 15, 8)
    assert (pai.mask.method, pai.mask.distribution, pai.mask.sparsity) == ("random", "erk", 0.95)
    lrr = next(c for lab, c in labelled if lab["method"] == "lrr")
    assert (lrr.recipe.name, lrr.recipe.prune_fraction, lrr.recipe.rewind_epoch) == ("lrr", 0.2, 1)
    assert (lrr.schedule.name, lrr.schedule.epochs, lrr.mask.sparsity) == ("one-cycle", 8, 0.95)
    densities = level_densities(0.95, 0.2, None)
    assert len(densities) == 15 and abs(densities[-1] - 0.05) < 1e-12  # dense level 0 and 14 levels of 20%
    assert planned_epochs(lrr) == planned_epochs(pai) == 120  # the same 15 trainings
    sculpt = next(c for lab, c in labelled if lab["method"].startswith("sculpt"))
    assert (sculpt.recipe.sculpt_sparsity, sculpt.recipe.sculpt_cycles, sculpt.schedule.cycles) == (0.5, 3, 3)
    assert (sculpt.mask.distribution, sculpt.mask.sparsity, planned_epochs(sculpt)) == ("erk", 0.95, 32)


def _fake_run(cfg, runs: Path) -> RunResult:
    stages = [{"dir": f"level_{k}", "level": k, "cycles": 1} for k in range(15)]
    return RunResult(runs / cfg.run_name, cfg, xr.Dataset(), stages)


def test_coupling_arms_take_each_seeds_lrr_run_of_p1_4():
    tickets = experiments.lrr_configs(MEDIUM)
    sculpt_lrr = [c for lab, c in experiments.sculpting_configs(MEDIUM) if lab["method"] == "lrr"]
    assert [c.run_name for c in tickets] == [c.run_name for c in sculpt_lrr]  # the same runs, trained once
    runs = Path("runs/medium")
    by_seed = {c.seed: _fake_run(c, runs) for c in tickets}
    configs = experiments.coupling_configs(MEDIUM, by_seed)
    assert Counter(c.recipe.coupling_init for c in configs) == dict.fromkeys(
        ("random", "rewind-init", "warmup", "warmup-signs", "random-signs"), 5
    )
    for cfg in configs:
        ticket = by_seed[cfg.seed]
        assert cfg.recipe.mask_from == str(runs / ticket.config.run_name / "level_14" / "cycle_1.pt")
        assert cfg.recipe.warmup_from == str(runs / ticket.config.run_name / "level_0" / "rewind.pt")
        assert (cfg.schedule.name, cfg.schedule.cycles, cfg.schedule.epochs) == ("cyclic", 4, 8)
        validate(cfg)


def test_connectivity_runs_are_p1_1s_cyclic_random_runs_and_the_data_order_control():
    labelled = barrier_configs(MEDIUM)
    cyclic = [c for lab, c in labelled if lab["role"] == "cyclic"]
    p11 = [c for arm, c in experiments.cyclic_arms(MEDIUM) if arm == "cyclic" and c.mask.method == "random"]
    assert [c.run_name for c in cyclic] == [c.run_name for c in p11]
    orders = [c for lab, c in labelled if lab["role"] == "data order"]
    assert [(c.seed, c.data_seed) for c in orders] == [(s, s + DATA_ORDER_OFFSET) for s in SEEDS]
    assert all(o.run_name != c.run_name for o, c in zip(orders, cyclic, strict=True))
    assert seed_pairs(SEEDS) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]
    assert seed_pairs((0, 1)) == [(0, 1)]
    assert MEDIUM.connectivity.points == 11


def test_sanity_arms_p2_1_to_p2_3():
    labelled = experiments.check_configs(MEDIUM)
    assert len(labelled) == 4 * 3 * 5
    for lab, cfg in labelled:
        assert (cfg.schedule.name, cfg.schedule.epochs, cfg.mask.sparsity) == ("one-cycle", 16, 0.9)
        assert cfg.recipe.corrupt == ("random-labels" if lab["check"] == "random-labels" else "none")
        assert cfg.mask.mask_op == ("rearrange" if lab["check"] == "rearrange" else "none")
        recipe = {"snip": ("pai", "snip"), "grasp": ("pai", "grasp"), "lt": ("imp", "none"), "lrr": ("lrr", "none")}
        assert (cfg.recipe.name, cfg.mask.method) == recipe[lab["method"]]
        assert cfg.recipe.one_shot == (lab["method"] in ("lt", "lrr"))
        validate(cfg)
    lt = next(c for lab, c in labelled if lab["method"] == "lt")
    assert level_densities(0.9, lt.recipe.prune_fraction, None, lt.recipe.one_shot) == [1.0, 0.09999999999999998]
    assert planned_epochs(lt) == 32  # 16 dense + 16


def test_ticket_arms_p2_4_and_p2_5():
    labelled = experiments.ticket_configs(MEDIUM)
    assert Counter((lab["ticket"], lab["sparsity"]) for lab, _ in labelled) == {
        **{(t, s): 5 for t in ("smart-ratio random", "snip", "grasp") for s in (0.9, 0.95)},
        ("hybrid", 0.95): 5,
        ("lrr", 0.95): 5,
    }
    smart = next(c for lab, c in labelled if lab["ticket"] == "smart-ratio random")
    assert (smart.mask.method, smart.mask.distribution) == ("random", "smart-ratio")
    lrr = next(c for lab, c in labelled if lab["ticket"] == "lrr")
    assert lrr.recipe.one_shot and planned_epochs(lrr) == 32
    hybrid = next(c for lab, c in labelled if lab["ticket"] == "hybrid")
    assert hybrid.recipe.name == "hybrid" and planned_epochs(hybrid) == 32
    checks = {c.run_name for lab, c in experiments.check_configs(MEDIUM) if lab["check"] == "original"}
    shared = {c.run_name for lab, c in labelled if lab["ticket"] in ("snip", "grasp") and lab["sparsity"] == 0.9}
    assert shared <= checks  # the 90% SNIP and GraSP tickets are the sanity checks' original runs


def test_images_tier_p1_1i():
    tier = experiments.get_tier("medium-images")
    b = tier.base
    assert (b.data.name, b.data.train_samples, b.model.name, b.model.width) == ("fashion-mnist", 10000, "resnet20", 8)
    arms = experiments.cyclic_arms(tier)
    schedules = {arm: (c.schedule.name, c.schedule.cycles, c.schedule.epochs) for arm, c in arms}
    assert schedules == {"cyclic": ("cyclic", 3, 4), "one-cycle": ("one-cycle", 1, 12), "ordinary": ("one-cycle", 1, 4)}
    assert {(c.mask.method, c.mask.sparsity) for _, c in arms} == {("random", 0.9)} and len(arms) == 15


def test_medium_long_tier_doubles_e_in_the_cyclic_and_high_sparsity_groups():
    long = experiments.get_tier("medium-long")
    arms = experiments.cyclic_arms(long)
    schedules = {arm: (c.schedule.name, c.schedule.cycles, c.schedule.epochs) for arm, c in arms}
    assert schedules == {"cyclic": ("cyclic", 4, 16), "one-cycle": ("one-cycle", 1, 64)} and len(arms) == 20
    assert {(c.mask.method, c.mask.sparsity) for _, c in arms} == {("random", 0.9), ("snip", 0.9)}
    assert {c.seed for _, c in arms} == set(SEEDS)
    # the same runs as the medium tier apart from the schedule, so the two tiers' cyclic groups pair by seed
    medium = {(arm, c.mask.method, c.seed): c for arm, c in experiments.cyclic_arms(MEDIUM)}
    for arm, c in arms:
        m = medium[(arm, c.mask.method, c.seed)]
        assert (c.model, c.data, c.optim, c.mask) == (m.model, m.data, m.optim, m.mask) and c.schedule != m.schedule
    assert long.sanity == MEDIUM.sanity and long.coupling == MEDIUM.coupling
    sculpt = {(lab["method"], c.seed): c for lab, c in experiments.sculpting_configs(long)}
    medium_sculpt = {(lab["method"], c.seed): c for lab, c in experiments.sculpting_configs(MEDIUM)}
    assert sculpt.keys() == medium_sculpt.keys() and len(sculpt) == 15
    for key, c in sculpt.items():
        m = medium_sculpt[key]
        assert c.schedule.epochs == 16 and m.schedule.epochs == 8 and c.schedule.cycles == m.schedule.cycles
        assert (c.mask, c.recipe, c.model, c.data) == (m.mask, m.recipe, m.model, m.data)


def test_full_tier_uses_the_papers_optimisers_and_lists_its_deviations():
    full = experiments.get_tier("full")
    assert (full.base.model.name, full.base.data.batch_size, full.base.optim.lr) == ("resnet18", 512, 0.2)
    sanity = experiments.check_configs(full)[0][1]
    assert (sanity.data.batch_size, sanity.optim.lr, sanity.optim.weight_decay) == (64, 0.1, 1e-4)
    assert (sanity.schedule.name, sanity.schedule.epochs, sanity.schedule.milestones) == ("step", 160, (0.5, 0.75))
    deviations = experiments.full_tier_deviations()
    assert any("E = 30" in d and "150" in d for d in deviations) and len(deviations) >= 5
