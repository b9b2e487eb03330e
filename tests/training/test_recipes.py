"""Recipes end to end, against invariants: LRR(f=0) = cyclic, exact WR rewind, level densities, etc."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from tests.helpers import tiny_config
from training.checkpoint import read_checkpoint
from training.config import DataConfig, MaskConfig, ModelConfig, RecipeConfig, ScheduleConfig, replace_dotted
from training.data import corrupt, load_data
from training.errors import ConfigError
from training.masks import density, layer_densities
from training.pruning import layer_kinds, smart_ratio_densities
from training.recipes import level_densities
from training.run import train


def cfg_for(recipe, **dotted):
    base = tiny_config(
        schedule=ScheduleConfig(name="one-cycle", cycles=1, epochs=2),
        mask=MaskConfig(method="none", sparsity=0.0),
        recipe=RecipeConfig(name=recipe, rewind_epoch=1),
    )
    return replace_dotted(base, dotted)


def states_equal(a, b, keys=None):
    keys = keys or a.keys()
    return all(torch.equal(a[k], b[k]) for k in keys)


def test_level_densities():
    assert level_densities(0.9, 0.2, None) == pytest.approx([1.0] + [0.8**k for k in range(1, 11)] + [0.1])
    assert len(level_densities(0.9, 0.2, None)) == 12  # 11 levels of 20% to 90% (0.8^11 = 0.086), plus dense level 0
    assert len(level_densities(0.95, 0.2, None)) - 1 == 14 and len(level_densities(0.98, 0.2, None)) - 1 == 18
    assert level_densities(0.5, 0.5, None) == [1.0, 0.5]
    assert level_densities(0.9, 0.0, 3) == [1.0, 1.0, 1.0, 1.0]
    assert level_densities(0.9, 0.2, 2) == pytest.approx([1.0, 0.8, 0.64])


def test_lrr_with_prune_fraction_zero_equals_cyclic(tmp_path):
    lrr = cfg_for("lrr", **{"mask.sparsity": 0.9, "recipe.prune_fraction": 0.0, "recipe.levels": 2})
    cyclic = cfg_for("pai", **{"schedule.name": "cyclic", "schedule.cycles": 3})
    a = train(lrr, tmp_path, quiet=True)
    b = train(cyclic, tmp_path, quiet=True)
    for level in range(3):
        sa = read_checkpoint(a.checkpoint(level=level))["model"]
        sb = read_checkpoint(b.checkpoint(cycle=level + 1))["model"]
        assert states_equal(sa, sb), level  # bitwise, level by level
    np.testing.assert_array_equal(a.metrics["test_loss"].values.ravel(), b.metrics["test_loss"].values.ravel())


def test_imp_levels_rewind_to_init_and_reach_the_target(tmp_path):
    cfg = cfg_for("imp", **{"mask.sparsity": 0.75, "recipe.prune_fraction": 0.5})
    run = train(cfg, tmp_path, quiet=True)
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    levels = sorted({c["level"] for c in manifest["checkpoints"]})
    assert levels == [0, 1, 2]
    theta0 = read_checkpoint(run.run_dir / "level_0" / "init.pt")["model"]
    for level, expected in ((1, 0.5), (2, 0.75)):
        init = read_checkpoint(run.run_dir / f"level_{level}" / "init.pt")
        assert 1 - density(init["mask"]) == pytest.approx(expected, abs=1e-3)
        for k, v in init["model"].items():
            m = init["mask"].get(k)
            assert torch.equal(v, theta0[k] * m if m is not None else theta0[k]), k
        # masks are nested: the next level prunes within the previous one
        prev = read_checkpoint(run.run_dir / f"level_{level - 1}" / "cycle_1.pt")["mask"]
        assert all(not torch.any(init["mask"][n] & ~prev[n]) for n in prev)
    entries = {c["path"]: c for c in manifest["checkpoints"]}
    assert entries["level_2/cycle_1.pt"]["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert entries["level_1/cycle_1.pt"]["epoch"] == 2 and entries["level_1/cycle_1.pt"]["cycle"] == 1
    assert "level" in run.metrics.dims and run.metrics.sizes["level"] == 3


def test_wr_restores_the_epoch_k_state_exactly(tmp_path):
    cfg = cfg_for(
        "wr", **{"mask.sparsity": 0.5, "recipe.prune_fraction": 0.5, "schedule.epochs": 3, "recipe.rewind_epoch": 2}
    )
    run = train(cfg, tmp_path, quiet=True)
    rewind = read_checkpoint(run.run_dir / "level_0" / "rewind.pt")
    assert "optimizer" in rewind and rewind["meta"]["epoch"] == 2
    # the rewind point equals epoch 2 of an independent dense run with the same seed
    dense = cfg_for("pai", **{"schedule.epochs": 3, "save_every": 1})
    ref = train(dense, tmp_path / "ref", quiet=True)
    assert states_equal(rewind["model"], read_checkpoint(ref.run_dir / "epoch_2.pt")["model"])
    init = read_checkpoint(run.run_dir / "level_1" / "init.pt")
    for k, v in init["model"].items():  # weights masked; BN buffers and the rest restored exactly
        m = init["mask"].get(k)
        assert torch.equal(v, rewind["model"][k] * m if m is not None else rewind["model"][k]), k


def test_wr_remaining_continues_the_schedule(tmp_path):
    cfg = cfg_for(
        "wr",
        **{
            "mask.sparsity": 0.5,
            "recipe.prune_fraction": 0.5,
            "schedule.epochs": 3,
            "recipe.rewind_epoch": 1,
            "recipe.wr_schedule": "remaining",
        },
    )
    run = train(cfg, tmp_path, quiet=True)
    level1 = run.metrics.sel(level=1)
    assert np.isnan(level1["train_loss"].values[0, 0]) and np.isfinite(level1["train_loss"].values[0, 1:]).all()


def test_lrr_keeps_trained_weights(tmp_path):
    cfg = cfg_for("lrr", **{"mask.sparsity": 0.5, "recipe.prune_fraction": 0.5})
    run = train(cfg, tmp_path, quiet=True)
    trained = read_checkpoint(run.run_dir / "level_0" / "cycle_1.pt")["model"]
    init = read_checkpoint(run.run_dir / "level_1" / "init.pt")
    for k, v in init["model"].items():
        m = init["mask"].get(k)
        assert torch.equal(v, trained[k] * m if m is not None else trained[k]), k
    # the mask is the global magnitude mask of the trained weights
    w = torch.cat([trained[n].abs().flatten() for n in init["mask"]])
    kept = torch.cat([init["mask"][n].flatten() for n in init["mask"]])
    assert w[kept].min() >= w[~kept].max()


def test_sculpt_stages(tmp_path):
    cfg = cfg_for(
        "sculpt",
        **{"mask.method": "random", "mask.sparsity": 0.9, "recipe.sculpt_sparsity": 0.5, "recipe.sculpt_cycles": 2},
    )
    run = train(cfg, tmp_path, quiet=True)
    s0 = read_checkpoint(run.run_dir / "level_0" / "init.pt")
    assert 1 - density(s0["mask"]) == pytest.approx(0.5, abs=1e-3)
    assert (run.run_dir / "level_0" / "cycle_2.pt").exists()
    trained = read_checkpoint(run.run_dir / "level_0" / "cycle_2.pt")
    s1 = read_checkpoint(run.run_dir / "level_1" / "init.pt")
    assert 1 - density(s1["mask"]) == pytest.approx(0.9, abs=1e-3)
    assert all(torch.equal(s1["model"][n], trained["model"][n] * s1["mask"][n]) for n in s1["mask"])  # no rewind
    assert (run.run_dir / "level_1" / "cycle_1.pt").exists() and not (run.run_dir / "level_1" / "cycle_2.pt").exists()


def test_hybrid_uses_smart_ratio_budgets_on_trained_weights(tmp_path):
    cfg = cfg_for("hybrid", **{"mask.sparsity": 0.9, "model.width": 32})
    run = train(cfg, tmp_path, quiet=True)
    trained = read_checkpoint(run.run_dir / "level_0" / "cycle_1.pt")
    ticket = read_checkpoint(run.run_dir / "level_1" / "init.pt")
    from training.models import build

    model = build("cnn1d", 10, input_shape=(1, 40), width=32)
    names = list(ticket["mask"])
    shapes = {n: ticket["mask"][n].shape for n in names}
    dens = smart_ratio_densities(shapes, 0.1, layer_kinds(model, names), l2_scaling=True)  # cnn1d is not a ResNet
    for n in names:
        assert int(ticket["mask"][n].sum()) == max(1, math.floor(dens[n] * ticket["mask"][n].numel()))
        w, m = trained["model"][n].abs(), ticket["mask"][n]
        if not m.all():  # with the 1/l² rule the first conv layer can keep every weight
            assert w[m].min() >= w[~m].max()  # top-|w| within the layer
    ratios = layer_densities(ticket["mask"])
    assert ratios["fc.weight"] == pytest.approx(0.3, abs=2e-3)


@pytest.mark.parametrize("init", ["random", "rewind-init", "warmup", "warmup-signs", "random-signs"])
def test_coupling_ablations(tmp_path, init):
    lrr = train(cfg_for("lrr", **{"mask.sparsity": 0.5, "recipe.prune_fraction": 0.5}), tmp_path, quiet=True)
    source = lrr.run_dir / "level_1" / "cycle_1.pt"
    warm = lrr.run_dir / "level_0" / "rewind.pt"
    cfg = cfg_for(
        "coupling",
        **{"recipe.coupling_init": init, "recipe.mask_from": str(source), "recipe.warmup_from": str(warm), "seed": 7},
    )
    run = train(cfg, tmp_path, quiet=True)
    got = read_checkpoint(run.run_dir / "init.pt")
    src = read_checkpoint(source)
    assert all(torch.equal(got["mask"][n], src["mask"][n]) for n in src["mask"])
    w = read_checkpoint(warm)["model"]
    theta0 = read_checkpoint(lrr.run_dir / "level_0" / "init.pt")["model"]
    from training.fileio import derive_seed
    from training.models import build

    with torch.random.fork_rng(devices=[]):  # the arm's own stream: (seed, "coupling/<arm>")
        torch.manual_seed(derive_seed(7, f"coupling/{init}"))
        random_arm = build("cnn1d", 10, input_shape=(1, 40), width=8).state_dict()
    for n, m in src["mask"].items():
        expected = {
            "random": random_arm[n],
            "rewind-init": theta0[n],
            "warmup": w[n],
            "warmup-signs": w[n].abs() * torch.sign(src["model"][n]),
            "random-signs": random_arm[n].abs() * torch.sign(src["model"][n]),
        }[init] * m
        assert torch.equal(got["model"][n], expected), n


@pytest.mark.parametrize("seed", range(5))
def test_random_coupling_arm_never_starts_from_the_ticket_runs_init(tmp_path, seed):
    """Before the fix, seed 0's random arm was bitwise the LRR run's θ₀ (a rewind-to-init arm)."""
    lrr = train(
        cfg_for("lrr", **{"mask.sparsity": 0.5, "recipe.prune_fraction": 0.5, "schedule.epochs": 1, "seed": seed}),
        tmp_path,
        quiet=True,
    )
    source = lrr.run_dir / "level_1" / "cycle_1.pt"
    arm = cfg_for("coupling", **{"recipe.mask_from": str(source), "schedule.epochs": 1, "seed": seed})
    got = read_checkpoint(train(arm, tmp_path, quiet=True).run_dir / "init.pt")["model"]
    theta0 = read_checkpoint(lrr.run_dir / "level_0" / "init.pt")["model"]
    mask = read_checkpoint(source)["mask"]
    for n, m in mask.items():
        assert not torch.equal(got[n][m], theta0[n][m]), n
        assert float((got[n][m] == theta0[n][m]).float().mean()) < 0.01, n  # not even partly the same draw


def test_coupling_refuses_another_architecture(tmp_path):
    other = train(cfg_for("pai", **{"model.width": 4, "schedule.epochs": 1}), tmp_path, quiet=True)
    cfg = cfg_for("coupling", **{"recipe.mask_from": str(other.checkpoint())})
    from training.errors import CheckpointError

    with pytest.raises(CheckpointError, match="holds a cnn1d"):
        train(cfg, tmp_path, quiet=True)


def test_corruptions():
    bundle = load_data(DataConfig(name="mnist1d"))
    labels = corrupt(bundle, "random-labels")
    assert torch.equal(labels.train[0], bundle.train[0]) and not torch.equal(labels.train[1], bundle.train[1])
    assert (labels.train[1] == bundle.train[1]).float().mean() < 0.2  # about 1 in 10 by chance
    assert labels.test is bundle.test
    pixels = corrupt(bundle, "random-pixels")
    assert torch.equal(torch.sort(pixels.train[0][5].flatten()).values, torch.sort(bundle.train[0][5].flatten()).values)
    assert not torch.equal(pixels.train[0][5], bundle.train[0][5])
    half = corrupt(bundle, "half-data")
    assert len(half.train[1]) == 2000 and torch.equal(half.train[1], bundle.train[1][:2000])


def test_corrupted_labels_change_snip_masks_but_not_the_ticket_data(tmp_path):
    clean = train(
        cfg_for("pai", **{"mask.method": "snip", "mask.sparsity": 0.9, "schedule.epochs": 1}), tmp_path, quiet=True
    )
    noisy = train(
        cfg_for(
            "pai",
            **{"mask.method": "snip", "mask.sparsity": 0.9, "schedule.epochs": 1, "recipe.corrupt": "random-labels"},
        ),
        tmp_path,
        quiet=True,
    )
    ma, mb = read_checkpoint(clean.checkpoint(0))["mask"], read_checkpoint(noisy.checkpoint(0))["mask"]
    assert any(not torch.equal(ma[n], mb[n]) for n in ma)
    assert float(noisy.metrics["test_error"].max()) < 0.9  # the ticket itself trained on true labels


@pytest.mark.parametrize("op", ["rearrange", "shuffle-weights"])
def test_mask_ops_in_recipes(tmp_path, op):
    base = cfg_for("pai", **{"mask.method": "magnitude", "mask.sparsity": 0.8, "schedule.epochs": 1})
    a = read_checkpoint(train(base, tmp_path, quiet=True).checkpoint(0))
    b = read_checkpoint(
        train(
            dataclasses.replace(base, mask=dataclasses.replace(base.mask, mask_op=op)), tmp_path, quiet=True
        ).checkpoint(0)
    )
    for n in a["mask"]:
        if op == "rearrange":
            assert int(a["mask"][n].sum()) == int(b["mask"][n].sum())
        else:
            assert torch.equal(a["mask"][n], b["mask"][n])
            m = a["mask"][n]
            assert torch.equal(torch.sort(a["model"][n][m]).values, torch.sort(b["model"][n][m]).values)
    assert any(not torch.equal(a["model"][n], b["model"][n]) for n in a["mask"])


def test_resume_inside_a_later_level_is_bitwise_identical(tmp_path, monkeypatch):
    from tests.helpers import interrupted_run

    cfg = cfg_for("lrr", **{"mask.sparsity": 0.5, "recipe.prune_fraction": 0.5})
    whole = train(cfg, tmp_path / "whole", quiet=True)
    resumed = interrupted_run(cfg, tmp_path / "cut", 3, monkeypatch, resume_file="level_1/resume.pt")
    for level in (0, 1):
        assert states_equal(
            read_checkpoint(whole.checkpoint(level=level))["model"],
            read_checkpoint(resumed.checkpoint(level=level))["model"],
        )


@pytest.mark.parametrize(
    "dotted, message",
    [
        ({"recipe.name": "lrr", "mask.method": "snip", "mask.sparsity": 0.5}, "prunes by magnitude"),
        (
            {"recipe.name": "sculpt", "mask.method": "random", "mask.sparsity": 0.5, "recipe.sculpt_sparsity": 0.7},
            "sculpt_sparsity",
        ),
        ({"recipe.name": "coupling"}, "needs --mask-from"),
        ({"recipe.name": "coupling", "mask.method": "random", "mask.sparsity": 0.5}, "drop --prune"),
        ({"recipe.name": "wr", "mask.sparsity": 0.5, "recipe.rewind_epoch": 50}, "exceeds"),
        ({"recipe.name": "imp", "mask.sparsity": 0.5, "recipe.prune_fraction": 0.0}, "give --levels"),
        (
            {"recipe.name": "lottery"},
            "unknown recipe 'lottery'; choose from: acdc, coupling, gmp, gmp-star, hybrid, imp, lrr, pai, rigl",
        ),
        ({"recipe.corrupt": "noise"}, "unknown corruption"),
    ],
)
def test_recipe_validation(tmp_path, dotted, message):
    with pytest.raises(ConfigError, match=message):
        train(replace_dotted(cfg_for("pai"), dotted), tmp_path, quiet=True)


# ------------------------------------------------------------------------------- every model × recipe

MODELS = [
    ("cnn1d", DataConfig(name="mnist1d", batch_size=512), 32),
    ("mlp", DataConfig(name="mnist1d", batch_size=512), 16),
    ("resnet20", DataConfig(name="synthetic", batch_size=32, synthetic_train=64, synthetic_test=32), 4),
    ("vgg16", DataConfig(name="synthetic", batch_size=32, synthetic_train=64, synthetic_test=32), 8),
]
RECIPE_SETTINGS = {
    "pai-random-erk": {"mask.method": "random", "mask.distribution": "erk", "mask.sparsity": 0.9},
    "pai-smart-ratio": {"mask.method": "random", "mask.distribution": "smart-ratio", "mask.sparsity": 0.9},
    "pai-er-balanced": {"mask.method": "random", "mask.distribution": "er-balanced", "mask.sparsity": 0.9},
    "pai-snip": {"mask.method": "snip", "mask.sparsity": 0.9, "mask.samples_per_class": 2},
    "pai-grasp": {"mask.method": "grasp", "mask.sparsity": 0.9, "mask.samples_per_class": 2},
    "pai-synflow": {"mask.method": "synflow", "mask.sparsity": 0.9, "mask.synflow_rounds": 10},
    "pai-magnitude": {"mask.method": "magnitude", "mask.sparsity": 0.9},
    "imp": {"recipe.name": "imp", "mask.sparsity": 0.75, "recipe.prune_fraction": 0.5},
    "wr": {"recipe.name": "wr", "mask.sparsity": 0.5, "recipe.prune_fraction": 0.5},
    "lrr": {"recipe.name": "lrr", "mask.sparsity": 0.5, "recipe.prune_fraction": 0.5},
    "sculpt": {
        "recipe.name": "sculpt",
        "mask.method": "synflow",
        "mask.synflow_rounds": 5,
        "mask.sparsity": 0.9,
        "recipe.sculpt_sparsity": 0.5,
    },
    "hybrid": {"recipe.name": "hybrid", "mask.sparsity": 0.9},
}


@pytest.mark.slow
@pytest.mark.parametrize("model, data, width", MODELS, ids=[m[0] for m in MODELS])
def test_every_recipe_runs_on_every_model(tmp_path, model, data, width):
    for label, dotted in RECIPE_SETTINGS.items():
        if model == "mlp" and label in ("pai-smart-ratio", "hybrid"):
            continue  # smart ratios need conv layers (Su et al.'s rule); tested to raise below
        base = tiny_config(
            data=data,
            model=ModelConfig(name=model, width=width),
            schedule=ScheduleConfig(epochs=1),
            recipe=RecipeConfig(rewind_epoch=1),
            mask=MaskConfig(),
        )
        run = train(replace_dotted(base, dotted), tmp_path, quiet=True)
        manifest = json.loads((run.run_dir / "manifest.json").read_text())
        assert manifest["status"] == "complete", label
        final = read_checkpoint(run.checkpoint())
        target = dotted.get("mask.sparsity")
        if label not in ("pai-smart-ratio", "pai-er-balanced"):
            assert 1 - density(final["mask"]) == pytest.approx(target, abs=0.01), label
        assert all(torch.all(final["model"][n][~m] == 0) for n, m in final["mask"].items()), label
        assert np.isfinite(run.metrics["test_loss"].values[~np.isnan(run.metrics["test_loss"].values)]).all()
        if label == "lrr":
            lrr_run = run
    coupling = {
        "recipe.name": "coupling",
        "recipe.coupling_init": "warmup-signs",
        "recipe.mask_from": str(lrr_run.checkpoint()),
        "recipe.warmup_from": str(lrr_run.run_dir / "level_0" / "rewind.pt"),
    }
    base = tiny_config(
        data=data, model=ModelConfig(name=model, width=width), schedule=ScheduleConfig(epochs=1), mask=MaskConfig()
    )
    run = train(replace_dotted(base, coupling), tmp_path, quiet=True)
    assert 1 - density(read_checkpoint(run.checkpoint())["mask"]) == pytest.approx(0.5, abs=0.01)
    if model == "mlp":
        with pytest.raises(ConfigError, match="smart-ratio needs convolutional layers"):
            train(
                replace_dotted(
                    tiny_config(model=ModelConfig(name="mlp", width=16)), RECIPE_SETTINGS["pai-smart-ratio"]
                ),
                tmp_path,
                quiet=True,
            )
