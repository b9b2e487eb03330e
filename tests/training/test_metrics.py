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


def test_data_seed_changes_the_order_and_nothing_else(tmp_path):
    import dataclasses

    import torch

    from tests.helpers import tiny_config
    from training.checkpoint import read_checkpoint
    from training.run import train

    base = tiny_config(schedule=dataclasses.replace(tiny_config().schedule, cycles=1, epochs=1))
    a = train(base, tmp_path, quiet=True)
    b = train(dataclasses.replace(base, data_seed=base.seed), tmp_path, quiet=True)
    c = train(dataclasses.replace(base, data_seed=base.seed + 1), tmp_path, quiet=True)
    assert b.run_dir != a.run_dir  # a semantic field: it enters the hash when set
    ia, ic = read_checkpoint(a.checkpoint(0)), read_checkpoint(c.checkpoint(0))
    assert all(torch.equal(ia["model"][k], ic["model"][k]) for k in ia["model"])  # same init and mask
    fa, fb, fc = (read_checkpoint(r.checkpoint())["model"] for r in (a, b, c))
    assert all(torch.equal(fa[k], fb[k]) for k in fa)  # data_seed = seed is the default order
    assert any(not torch.equal(fa[k], fc[k]) for k in fa)  # another order, another solution
