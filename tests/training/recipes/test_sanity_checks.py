"""Su et al.'s sanity checks in iterative recipes: corruption of all mask-producing training, the mask
operation once on the final mask, rearranged positions filled from the right state, one-shot LT/LRR,
and the semantics version that keeps runs of the old recipe from being reused."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training.test_recipes import cfg_for
from training.checkpoint import read_checkpoint
from training.errors import UserError
from training.masks import density
from training.recipes import semantics_version
from training.run import train
from training.trainer import Trainer


def record_stage_data(monkeypatch):
    """Record, per level, whether each stage trained on the run's own (true) training labels."""
    seen: dict[int, bool] = {}
    original = Trainer.run_stage

    def run_stage(self, stage, start):
        data = stage.data or self.data
        seen[stage.level] = torch.equal(data.train[1], self.data.train[1])
        return original(self, stage, start)

    monkeypatch.setattr(Trainer, "run_stage", run_stage)
    return seen


@pytest.mark.parametrize("recipe", ["imp", "wr", "lrr"])
def test_random_labels_train_every_level_but_the_last(tmp_path, monkeypatch, recipe):
    seen = record_stage_data(monkeypatch)
    dotted = {"mask.sparsity": 0.875, "recipe.prune_fraction": 0.5, "recipe.corrupt": "random-labels"}
    train(cfg_for(recipe, **dotted, **{"schedule.epochs": 1}), tmp_path, quiet=True)
    assert seen == {0: False, 1: False, 2: False, 3: True}  # levels 0-2 produce the mask; level 3 is the ticket


def test_sculpt_and_hybrid_corrupt_the_level_that_produces_the_mask(tmp_path, monkeypatch):
    seen = record_stage_data(monkeypatch)
    sculpt = {"mask.method": "random", "mask.sparsity": 0.9, "recipe.sculpt_sparsity": 0.5}
    train(
        cfg_for("sculpt", **sculpt, **{"recipe.corrupt": "random-labels", "schedule.epochs": 1}), tmp_path, quiet=True
    )
    assert seen == {0: False, 1: True}
    seen.clear()
    train(
        cfg_for("hybrid", **{"mask.sparsity": 0.5, "recipe.corrupt": "random-labels", "schedule.epochs": 1}),
        tmp_path,
        quiet=True,
    )
    assert seen == {0: False, 1: True}


def _lrr_rearranged(tmp_path, fill):
    dotted = {"mask.sparsity": 0.875, "recipe.prune_fraction": 0.5, "mask.mask_op": "rearrange"}
    return train(
        cfg_for("lrr", **dotted, **{"recipe.rearrange_fill": fill, "schedule.epochs": 1}), tmp_path, quiet=True
    )


def test_lrr_rearrange_applies_once_and_fills_from_the_dense_network(tmp_path):
    run = _lrr_rearranged(tmp_path, "auto")
    dense = read_checkpoint(run.run_dir / "level_0" / "cycle_1.pt")["model"]
    for level in (1, 2):  # the levels that produce the mask are plain magnitude pruning: nested, top-|w|
        start = read_checkpoint(run.run_dir / f"level_{level}" / "init.pt")
        trained = read_checkpoint(run.run_dir / f"level_{level - 1}" / "cycle_1.pt")
        for n, m in start["mask"].items():
            assert not (m & ~trained["mask"][n]).any(), (level, n)
            w = trained["model"][n].abs()
            assert w[m].min() >= w[~m & trained["mask"][n]].max(), (level, n)
    ticket = read_checkpoint(run.run_dir / "level_3" / "init.pt")
    previous = read_checkpoint(run.run_dir / "level_2" / "cycle_1.pt")
    zeros = kept = 0
    for n, m in ticket["mask"].items():
        zeros += int((ticket["model"][n][m] == 0).sum())
        kept += int(m.sum())
        lacking = m & ~previous["mask"][n]  # rearranged onto weights pruned earlier: from the dense level 0
        assert torch.equal(ticket["model"][n][lacking], dense[n][lacking])
        kept_both = m & previous["mask"][n]
        assert torch.equal(ticket["model"][n][kept_both], previous["model"][n][kept_both])
    dense_zeros = sum(int((dense[n] == 0).sum()) for n in ticket["mask"]) / sum(
        m.numel() for m in ticket["mask"].values()
    )
    assert zeros / kept <= dense_zeros + 0.01  # at chance level: as often zero as a weight of the dense network


def test_lrr_rearrange_with_zero_fill_shows_what_the_old_recipe_did(tmp_path):
    ticket = read_checkpoint(_lrr_rearranged(tmp_path, "zero").run_dir / "level_3" / "init.pt")
    zeros = sum(int((ticket["model"][n][m] == 0).sum()) for n, m in ticket["mask"].items())
    kept = sum(int(m.sum()) for m in ticket["mask"].values())
    assert zeros / kept > 0.5  # most rearranged positions land on weights pruned at earlier levels


@pytest.mark.parametrize("recipe", ["imp", "lrr"])
def test_one_shot_prunes_to_the_target_in_one_level(tmp_path, recipe):
    run = train(
        cfg_for(recipe, **{"mask.sparsity": 0.9, "recipe.one_shot": True, "schedule.epochs": 1}), tmp_path, quiet=True
    )
    levels = sorted(p.name for p in run.run_dir.glob("level_*"))
    assert levels == ["level_0", "level_1"]
    ticket = read_checkpoint(run.run_dir / "level_1" / "init.pt")
    assert 1 - density(ticket["mask"]) == pytest.approx(0.9, abs=1e-3)
    source = run.run_dir / "level_0" / ("init.pt" if recipe == "imp" else "cycle_1.pt")
    expected = read_checkpoint(source)["model"]
    assert all(torch.equal(ticket["model"][n], expected[n] * m) for n, m in ticket["mask"].items())


def test_semantics_version_is_recorded_and_an_old_run_is_refused(tmp_path):
    cfg = cfg_for(
        "lrr",
        **{"mask.sparsity": 0.5, "recipe.prune_fraction": 0.5, "recipe.corrupt": "random-labels", "schedule.epochs": 1},
    )
    assert semantics_version(cfg) == 2 and semantics_version(cfg_for("pai")) == 1
    run = train(cfg, tmp_path, quiet=True)
    manifest_path = run.run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["semantics"] == 2
    del manifest["semantics"]  # what version 0.1 wrote: no field, i.e. version 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="semantics version 1"):
        train(cfg, tmp_path, quiet=True)
