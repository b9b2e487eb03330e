"""The 1-D residual network for MNIST-1D."""

import torch

from training.masks import prunable_names
from training.models import build


def test_resnet20_1d_shape_and_prunable_weights():
    model = build("resnet20_1d", 10, input_shape=(1, 40))
    params = dict(model.named_parameters())
    counts = {n: params[n].numel() for n in prunable_names(model)}
    # stem 1*16*3 = 48; stage 1: six 16*16*3 = 768; stage 2: 16*32*3 + five 32*32*3 + shortcut 16*32;
    # stage 3: 32*64*3 + five 64*64*3 + shortcut 32*64; fc 64*10
    expected = 48 + 6 * 768 + (1536 + 5 * 3072 + 512) + (6144 + 5 * 12288 + 2048) + 640
    assert sum(counts.values()) == expected == 92_336
    assert counts["fc.weight"] / expected < 0.01
    assert len([n for n in counts if "shortcut" in n]) == 2
    assert model(torch.randn(3, 1, 40)).shape == (3, 10)
    assert model(torch.randn(3, 40)).shape == (3, 10)  # a flat signal is one channel


def test_resnet20_1d_trains_from_the_api(tmp_path):
    import dataclasses

    from tests.helpers import tiny_config
    from training.config import ModelConfig
    from training.run import train

    cfg = tiny_config(model=ModelConfig(name="resnet20_1d", width=8))
    cfg = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, cycles=1, epochs=2))
    run = train(cfg, tmp_path, quiet=True)
    losses = run.metrics["train_loss"].values.ravel()
    assert losses[-1] < losses[0] < 2.5  # it learns (chance level is ln 10 = 2.30)
