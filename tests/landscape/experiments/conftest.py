"""Hidden tiers for the claim-group tests: the quick tier on MNIST-1D with a narrow ``cnn1d`` and batches
of 256 (16 steps per epoch), registered in :data:`landscape.experiments.settings.TIERS` for one test only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from landscape.experiments import settings
from training.config import DataConfig, ModelConfig


@pytest.fixture
def hidden_tier(monkeypatch):
    """``make(name, width, **groups)``: the quick tier renamed ``name``, with ``cnn1d`` of ``width`` and the
    given group settings replaced, registered under ``name`` until the test ends."""

    def make(name: str, width: int, **groups) -> settings.Tier:
        quick = settings.get_tier("quick")
        base = replace(
            quick.base, data=DataConfig(name="mnist1d", batch_size=256), model=ModelConfig(name="cnn1d", width=width)
        )
        tier = replace(quick, name=name, base=base, **groups)
        monkeypatch.setitem(settings.TIERS, name, tier)
        return tier

    return make
