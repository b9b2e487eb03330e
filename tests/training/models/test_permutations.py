"""Permutation declarations: every registry model has one, it is complete, and bad ones are refused."""

import pytest

from training.errors import ConfigError
from training.models import MODELS, PERMUTATIONS, build, permutation_groups
from training.models.permutations import PermutationGroup, check_groups

SMALL = {
    "mlp": {"width": 16},
    "cnn1d": {"width": 8},
    "resnet20_1d": {"width": 4},
    "resnet20": {"width": 4, "input_shape": (3, 8, 8)},
    "resnet32": {"width": 4, "input_shape": (3, 8, 8)},
    "resnet56": {"width": 4, "input_shape": (3, 8, 8)},
    "resnet18": {"input_shape": (3, 8, 8)},
    "vgg16": {"width": 8},
    "vgg19": {"width": 8},
    "resnet50": {"input_shape": (3, 32, 32)},
}


def test_every_registry_model_declares_its_permutations():
    """Or is refused in one line with the reason (the ViT's attention heads, MobileNetV2's depthwise convolutions)."""
    from training.models.modern import NOT_ALIGNABLE

    assert set(PERMUTATIONS) == set(SMALL) and not set(PERMUTATIONS) & set(NOT_ALIGNABLE)
    assert set(PERMUTATIONS) | set(NOT_ALIGNABLE) == set(MODELS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_declaration_covers_every_hidden_axis(name):
    """Every axis of every float tensor is moved by exactly one group, except the network's input
    channels (first layer, axis 1) and its output classes (classifier, axis 0)."""
    model = build(name, 10, **SMALL[name])
    groups = permutation_groups(name, model)
    moved = {(key, axis) for g in groups for key, axis, _ in g.entries}
    first = next(n for n, p in model.named_parameters() if p.dim() > 1)
    expected = set()
    for key, tensor in model.state_dict().items():
        if not tensor.is_floating_point() or key.startswith("fc."):
            continue
        expected.add((key, 0))
        if tensor.dim() > 1 and key != first:
            expected.add((key, 1))
    expected.add(("fc.weight", 1))
    assert moved == expected
    names = [g.name for g in groups]
    assert len(names) == len(set(names))


def test_residual_stages_share_one_permutation():
    groups = {g.name: g for g in permutation_groups("resnet20", build("resnet20", 10, width=4))}
    assert [n for n in groups if n.startswith("stream:")] == [
        "stream:conv",
        "stream:blocks.3.shortcut.0",
        "stream:blocks.6.shortcut.0",
    ]
    stage2 = {key for key, _, _ in groups["stream:blocks.3.shortcut.0"].entries}
    # the shortcut, its BatchNorm and every block's conv2/bn2 of the stage add into one stream
    assert {"blocks.3.shortcut.0.weight", "blocks.3.shortcut.1.running_var", "blocks.5.conv2.weight"} <= stage2
    assert groups["stream:blocks.6.shortcut.0"].entries[-1] == ("fc.weight", 1, 1)
    # cnn1d: the flatten maps each channel of the last block to `length` classifier inputs
    cnn = {g.name: g for g in permutation_groups("cnn1d", build("cnn1d", 10, width=8))}
    assert cnn["features.9"].entries[-1] == ("fc.weight", 1, 5)


def test_missing_or_wrong_declarations_are_clear_errors(monkeypatch):
    model = build("mlp", 10, width=16)
    monkeypatch.delitem(PERMUTATIONS, "mlp")
    with pytest.raises(ConfigError, match="model 'mlp' declares no permutation structure"):
        permutation_groups("mlp", model)
    with pytest.raises(ConfigError, match="expected 17 along axis 0"):
        check_groups(model, [PermutationGroup("g", 17, (("features.1.weight", 0, 1),))])
    with pytest.raises(ConfigError, match="moved by both"):
        check_groups(model, [PermutationGroup(n, 16, (("features.1.weight", 0, 1),)) for n in "ab"])
    with pytest.raises(ConfigError, match="no module"):
        check_groups(model, [PermutationGroup("g", 16, (("features.1.weight", 0, 1),), ("nope",))])
