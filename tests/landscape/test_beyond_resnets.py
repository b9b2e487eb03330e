"""The ViT and MobileNetV2 of the reviewers' experiments work with every pruning method, a mask that
changes during training, and the analyses (interpolation with BatchNorm or LayerNorm, the masked Hessian)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import landscape
from training.config import DataConfig, MaskConfig, ModelConfig, RecipeConfig, ScheduleConfig, TrainConfig
from training.pruning import METHODS
from training.run import train


def config(model: str, width: int, **changes) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(
            name="synthetic", synthetic_shape=(3, 32, 32), synthetic_train=128, synthetic_test=64, batch_size=64
        ),
        model=ModelConfig(name=model, width=width),
        schedule=ScheduleConfig(name="one-cycle", epochs=2),
        device="cpu",
        **changes,
    )


@pytest.mark.slow
@pytest.mark.parametrize("model, width", [("vit", 48), ("mobilenetv2", 8)])
def test_every_method_a_dynamic_recipe_and_the_analyses(tmp_path, model, width):
    finals = []
    for method in sorted(METHODS):
        run = train(config(model, width, mask=MaskConfig(method=method, sparsity=0.9)), tmp_path, quiet=True)
        manifest = json.loads((run.run_dir / "manifest.json").read_text())
        sparsity = manifest["checkpoints"][-1]["sparsity"]
        if method == "synflow":  # scores tied at the threshold are pruned (Synaptic-Flow's rule): never fewer
            assert 0.9 - 0.005 <= sparsity < 0.96, method
        else:
            assert sparsity == pytest.approx(0.9, abs=0.005), method
        assert np.isfinite(run.metrics["train_flops"].values).all()
        finals.append(run.checkpoint())
    rigl = config(model, width, mask=MaskConfig(method="random", sparsity=0.9, distribution="erk"),
                  recipe=RecipeConfig(name="rigl", dst_interval=1))  # fmt: skip
    run = train(rigl, tmp_path, quiet=True)
    assert json.loads((run.run_dir / "mask_history.json").read_text())["updates"]
    a, b = finals[:2]
    bundle = landscape.load_checkpoint(a)
    from training.checkpoint import checkpoint_bundle

    data = checkpoint_bundle(bundle)
    curve = landscape.interpolate(a, b, {"test": data.eval_loader("test", 64)}, points=3,
                                  bn_data=data.eval_loader("train", 64))  # fmt: skip
    assert np.isfinite(curve["loss"].values).all()
    assert curve.attrs["bn"] == ("recalibrate" if model == "mobilenetv2" else "none")  # ViT: LayerNorm only
    spectrum = landscape.hessian_eigenvalues(a, data.eval_loader("train", 32), k=1, max_iter=20)
    assert np.isfinite(spectrum["eigenvalue"].values).all()


def test_vit_shape_options_reach_the_model_and_its_checkpoint_and_are_refused_elsewhere(tmp_path):
    """``--layers``, ``--heads`` and ``--patch`` build the ViT they name (15,498 parameters, counted by hand in
    tests/training/test_models.py), are recorded in the checkpoint, which rebuilds the same model, and change
    the run's hash; the other models refuse them in one line."""
    from dataclasses import replace

    from training.errors import ConfigError
    from training.fields import config_hash

    small = ModelConfig(name="vit", width=32, layers=2, heads=4, patch=7)
    cfg = replace(config("vit", 32), model=small)
    cfg = replace(cfg, data=replace(cfg.data, synthetic_shape=(1, 28, 28)))
    run = train(cfg, tmp_path, quiet=True)
    loaded = landscape.load_checkpoint(run.checkpoint())
    meta = loaded.meta
    assert {k: meta["model_kwargs"][k] for k in ("width", "layers", "heads", "patch")} == {
        "width": 32,
        "layers": 2,
        "heads": 4,
        "patch": 7,
    }
    model = loaded.model
    assert sum(p.numel() for p in model.parameters()) == 15_498
    assert len(model.encoder.layers) == 2 and model.encoder.layers[0].self_attention.num_heads == 4
    assert config_hash(cfg) != config_hash(replace(cfg, model=replace(small, layers=3)))
    with pytest.raises(ConfigError, match="model 'cnn1d' does not accept the option 'layers'"):
        train(replace(cfg, model=ModelConfig(name="cnn1d", layers=2)), tmp_path / "refused", quiet=True)
