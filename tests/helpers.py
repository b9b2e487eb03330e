"""Helpers the tests share: a valid checkpoint meta, a tiny, fast training config and an interrupted run."""

from __future__ import annotations

import dataclasses

from training.config import DataConfig, MaskConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig


def checkpoint_meta(**changes) -> dict:
    """A valid checkpoint ``meta`` for a width-8 cnn1d on MNIST-1D, with ``changes`` applied."""
    from training.checkpoint import FORMAT_VERSION

    meta = {
        "model": "cnn1d",
        "model_kwargs": {"input_shape": [1, 40], "width": 8},
        "dataset": "mnist1d",
        "num_classes": 10,
        "epoch": 3,
        "cycle": 1,
        "config_hash": "abc",
        "format_version": FORMAT_VERSION,
    }
    meta.update(changes)
    return meta


def tiny_config(**changes) -> TrainConfig:
    """A cnn1d on MNIST-1D, random 80% mask, 2 cycles of 2 epochs: about a second of training."""
    cfg = TrainConfig(
        data=DataConfig(name="mnist1d", batch_size=256),
        model=ModelConfig(name="cnn1d", width=8),
        mask=MaskConfig(method="random", sparsity=0.8),
        schedule=ScheduleConfig(name="cyclic", cycles=2, epochs=2),
        optim=OptimConfig(lr=0.1),
        seed=3,
        device="cpu",
    )
    return dataclasses.replace(cfg, **changes)


class Interrupt(Exception):
    """A simulated crash."""


def interrupted_run(cfg: TrainConfig, out, stop_after: int, monkeypatch, resume_file: str = "resume.pt"):
    """Train ``cfg`` under ``out`` until ``stop_after`` epochs have been saved, 'crash', check that
    ``resume_file`` (relative to the run folder) was left behind, then run again to completion."""
    import pytest

    from training.run import train
    from training.trainer import Trainer

    original = Trainer._end_of_epoch
    count = {"n": 0}

    def hooked(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == stop_after:
            raise Interrupt
        return result

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_end_of_epoch", hooked)
        with pytest.raises(Interrupt):
            train(cfg, out, quiet=True)
    assert (out / cfg.run_name / resume_file).exists()
    return train(cfg, out, quiet=True)
