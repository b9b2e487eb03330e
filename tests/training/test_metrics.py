"""Training metrics: the loss over the training set at the end of each cycle, in eval mode."""

from __future__ import annotations

import numpy as np

from training.checkpoint import load_checkpoint
from training.data import load_data
from training.evaluate import evaluate


def test_train_set_loss_is_the_eval_mode_loss_of_each_cycle_checkpoint(tiny_run):
    m = tiny_run.metrics
    bundle = load_data(tiny_run.config.data)
    for cycle in m["cycle"].values:
        ckpt = load_checkpoint(tiny_run.checkpoint(int(cycle)))
        loss, error = evaluate(ckpt.model, bundle.eval_loader("train", 1000), "cpu")
        np.testing.assert_allclose(float(m["train_set_loss"].sel(cycle=cycle)), loss, rtol=1e-6)
        np.testing.assert_allclose(float(m["train_set_error"].sel(cycle=cycle)), error, rtol=1e-9)
    running = m["train_loss"].isel(epoch=-1).values
    assert not np.allclose(running, m["train_set_loss"].values)  # not the running mean of the epoch's batches
    assert m["train_set_loss"].dims == ("cycle",) and m["train_set_loss"].attrs["units"] == "nats"
