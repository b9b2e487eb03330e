"""A run's weights never depend on how it was launched: ``reproduce --jobs 1`` (in this process) and
``--jobs 2`` (worker processes) train with the config's ``threads``."""

import dataclasses
import json

import pytest
import torch

from landscape.experiments.parallel import train_parallel
from tests.helpers import tiny_config
from training.checkpoint import load_checkpoint
from training.config import ModelConfig
from training.errors import UserError
from training.run import train


@pytest.mark.slow
def test_weights_do_not_depend_on_jobs(tmp_path):
    """The audit: ``--jobs 1`` trained with 2 torch threads and ``--jobs 2`` with 1, and a resnet20_1d's
    weights differ by up to 6 between the two (measured). Now both use the config's thread count."""
    cfg = tiny_config(model=ModelConfig(name="resnet20_1d"))
    other = dataclasses.replace(cfg, seed=4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what this process had when reproduce --jobs 1 trained in it
    try:
        train_parallel([("a", cfg)], tmp_path / "one", jobs=1)
        assert torch.get_num_threads() == 2  # the caller's count is restored
    finally:
        torch.set_num_threads(before)
    train_parallel([("a", cfg), ("b", other)], tmp_path / "two", jobs=2)  # spawned workers
    ckpts = [load_checkpoint(tmp_path / d / cfg.run_name / "cycle_2.pt") for d in ("one", "two")]
    for k, v in ckpts[0].state.items():
        assert torch.equal(v, ckpts[1].state[k]), k
    for d in ("one", "two"):
        assert json.loads((tmp_path / d / cfg.run_name / "manifest.json").read_text())["threads"] == 1


def test_a_run_made_under_another_thread_count_is_refused(tmp_path):
    cfg = tiny_config(schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1))
    result = train(cfg, tmp_path, quiet=True)
    manifest = result.run_dir / "manifest.json"
    recorded = json.loads(manifest.read_text())
    assert recorded["threads"] == 1 and train(cfg, tmp_path, quiet=True).skipped
    for threads, says in ((None, "before runs recorded their torch thread count"), (2, "with 2 torch threads")):
        edited = {k: v for k, v in recorded.items() if k != "threads"}
        manifest.write_text(json.dumps(edited if threads is None else {**edited, "threads": threads}))
        for launch in (lambda: train(cfg, tmp_path, quiet=True), lambda: train_parallel([("a", cfg)], tmp_path)):
            with pytest.raises(UserError, match=f"{says}, but this config trains with threads=1"):
                launch()
    # another thread count is another run: its own folder, its count recorded
    two = train(dataclasses.replace(cfg, threads=2), tmp_path, quiet=True)
    assert two.run_dir != result.run_dir and json.loads((two.run_dir / "manifest.json").read_text())["threads"] == 2
