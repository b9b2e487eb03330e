import dataclasses
import json

import numpy as np
import pytest
import torch
import xarray as xr

from tests.helpers import interrupted_run, tiny_config
from training.checkpoint import read_checkpoint
from training.config import OptimConfig, from_yaml_text
from training.errors import DivergedError
from training.masks import density
from training.run import train
from training.trainer import Trainer


def test_run_layout_and_metrics(tiny_run):
    run = tiny_run.run_dir
    assert {"init.pt", "cycle_1.pt", "cycle_2.pt", "metrics.nc", "config.yaml", "manifest.json"} <= {
        p.name for p in run.iterdir()
    }
    assert not (run / "resume.pt").exists()
    assert run.name == tiny_run.config.run_name
    assert from_yaml_text((run / "config.yaml").read_text()) == tiny_run.config
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config_hash"] in run.name
    ds = xr.load_dataset(run / "metrics.nc")
    assert dict(ds.sizes) == {"cycle": 2, "epoch": 2}
    assert ds["global_epoch"].values.tolist() == [[1, 2], [3, 4]]
    for var in ("train_loss", "train_error", "test_loss", "test_error", "lr", "density"):
        assert np.isfinite(ds[var].values).all(), var
    assert (ds["test_error"] < 0.9).all()  # better than chance on 10 classes
    init = read_checkpoint(run / "init.pt")
    final = read_checkpoint(run / "cycle_2.pt")
    d = density(init["mask"])
    assert d == pytest.approx(0.2, abs=0.01)
    # exact zeros at pruned coordinates after training; density is measured from the weights
    assert all(torch.all(final["model"][k][~m] == 0) for k, m in final["mask"].items())
    np.testing.assert_allclose(ds["density"].values, d, atol=1e-12)
    assert final["meta"]["cycle"] == 2 and final["meta"]["epoch"] == 4 and init["meta"]["cycle"] == 0
    assert all(torch.equal(init["mask"][k], final["mask"][k]) for k in init["mask"])  # no pruning between cycles


def test_rerun_of_complete_config_does_nothing(tiny_run):
    stamps = {p.name: p.stat().st_mtime_ns for p in tiny_run.run_dir.iterdir()}
    again = train(tiny_run.config, tiny_run.run_dir.parent, quiet=True)
    assert again.skipped and again.run_dir == tiny_run.run_dir
    assert {p.name: p.stat().st_mtime_ns for p in tiny_run.run_dir.iterdir()} == stamps
    xr.testing.assert_identical(again.metrics, tiny_run.metrics)


@pytest.mark.parametrize("stop_after", [1, 2, 3])  # mid-cycle, at a cycle boundary, in the last cycle
def test_resume_is_bitwise_identical(tmp_path, tiny_run, monkeypatch, stop_after):
    cfg = tiny_run.config
    resumed = interrupted_run(cfg, tmp_path, stop_after, monkeypatch)
    assert not resumed.skipped
    for name in ("init.pt", "cycle_1.pt", "cycle_2.pt"):
        a = read_checkpoint(tiny_run.run_dir / name)
        b = read_checkpoint(resumed.run_dir / name)
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    xr.testing.assert_identical(resumed.metrics, tiny_run.metrics)


def test_fresh_optimizer_every_cycle(tmp_path, monkeypatch):
    cfg = tiny_config(schedule=dataclasses.replace(tiny_config().schedule, cycles=3, epochs=1))
    calls = []
    original = Trainer.optimizer

    def counting(self, model):
        opt = original(self, model)
        calls.append(opt)
        return opt

    monkeypatch.setattr(Trainer, "optimizer", counting)
    train(cfg, tmp_path, quiet=True)
    assert len(calls) == 3 and len({id(o) for o in calls}) == 3


def test_seed_changes_everything_and_fixes_it(tmp_path):
    a = train(
        tiny_config(seed=11, schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1)),
        tmp_path / "a",
        quiet=True,
    )
    b = train(
        tiny_config(seed=11, schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1)),
        tmp_path / "b",
        quiet=True,
    )
    c = train(
        tiny_config(seed=12, schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1)),
        tmp_path / "c",
        quiet=True,
    )
    sa, sb, sc = (read_checkpoint(r.checkpoint())["model"] for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_divergence_stops_with_clear_error(tmp_path):
    cfg = tiny_config(optim=OptimConfig(lr=1e8, momentum=0.9))
    with pytest.raises(DivergedError, match=r"diverged .* in cycle 1, epoch 1; the last good state is .*init\.pt"):
        train(cfg, tmp_path, quiet=True)
    run = tmp_path / cfg.run_name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "diverged" and "cycle 1, epoch 1" in manifest["error"]
    stage = json.loads((run / "stage.json").read_text())
    assert stage["status"] == "diverged" and stage["diverged"]["epoch"] == 1
    init = read_checkpoint(run / "init.pt")  # the last good checkpoint is kept and intact
    assert all(torch.isfinite(v).all() for v in init["model"].values() if v.is_floating_point())
    assert not (run / "cycle_1.pt").exists()


def test_save_every(tmp_path):
    cfg = tiny_config(save_every=1, schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=2))
    run = train(cfg, tmp_path, quiet=True).run_dir
    assert (run / "epoch_1.pt").exists() and (run / "epoch_2.pt").exists()
    a, b = read_checkpoint(run / "epoch_2.pt"), read_checkpoint(run / "cycle_1.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_dense_training(tmp_path):
    cfg = tiny_config(
        mask=dataclasses.replace(tiny_config().mask, method="none", sparsity=0.0),
        schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1),
    )
    result = train(cfg, tmp_path, quiet=True)
    assert float(result.metrics["density"][0, 0]) == pytest.approx(1.0, abs=1e-3)


def test_test_every_skips_evaluations_without_changing_training(tmp_path):
    sched = dataclasses.replace(tiny_config().schedule, cycles=2, epochs=3)
    every = tiny_config(schedule=sched)
    sparse = tiny_config(schedule=sched, data=dataclasses.replace(every.data, test_every=2))
    assert sparse.run_name == every.run_name  # evaluation is not part of the run's identity
    a = train(every, tmp_path / "a", quiet=True)
    b = train(sparse, tmp_path / "b", quiet=True)
    errors = b.metrics["test_error"].values
    assert np.isnan(errors[:, 0]).all() and np.isfinite(errors[:, 1:]).all()  # epochs 2 and 3 (the last)
    np.testing.assert_array_equal(errors[:, 1:], a.metrics["test_error"].values[:, 1:])
    np.testing.assert_array_equal(b.metrics["train_loss"].values, a.metrics["train_loss"].values)
    wa, wb = read_checkpoint(a.run_dir / "cycle_2.pt"), read_checkpoint(b.run_dir / "cycle_2.pt")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
