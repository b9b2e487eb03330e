"""Models: parameter counts worked out by hand (or the published ones), output shapes, initialisation
statistics, and which build errors are bad input."""

import math

import pytest
import torch
from torch import nn

from training.errors import ConfigError
from training.models import MODELS, build


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _input_shape(name):
    if name in ("mlp", "cnn1d") or name.endswith("_1d"):  # the MNIST-1D models
        return (1, 40)
    return (3, 64, 64) if name == "resnet50" else (3, 32, 32)


# Hand counts (weights + biases + BN affine parameters); BN running statistics are buffers, not parameters.
#
# mlp, width 100, 40 inputs, 10 classes: (40·100 + 100) + (100·100 + 100) + (100·10 + 10) = 15,210.
#
# cnn1d, width 32, input (1, 40): convs 1·32·5 + 32·32·3 + 32·64·3 + 64·64·3 = 160 + 3,072 + 6,144 + 12,288
#   = 21,664 (no biases); BN 2·(32 + 32 + 64 + 64) = 384; the length goes 40 -> 40 -> 20 -> 10 -> 5, so
#   fc = 64·5·10 + 10 = 3,210. Total 25,258. Width 8: 40 + 192 + 384 + 768 + 96 (BN) + 16·5·10 + 10 = 2,290.
#
# resnet20 (He et al., widths 16/32/64, 1x1 conv + BN shortcuts where the shape changes), 10 classes:
#   stem 3·16·9 + 2·16 = 464;
#   a block c->c: 2·9c² + 4c, so 4,672 (c=16), 18,560 (32), 73,984 (64);
#   a downsampling block c->2c: 9·2c² + 9·4c² + 8c + (2c² + 4c) (shortcut), so 14,528 (16->32), 57,728 (32->64);
#   stages: 3·4,672 = 14,016; 14,528 + 2·18,560 = 51,648; 57,728 + 2·73,984 = 205,696; fc 64·10 + 10 = 650.
#   Total 464 + 14,016 + 51,648 + 205,696 + 650 = 272,474.
#   resnet32 adds 2 blocks per stage: + 2·(4,672 + 18,560 + 73,984) = + 194,432 -> 466,906;
#   resnet56 adds 6 per stage: + 3·194,432 -> 855,770.
#
# vgg16 (BN, no conv biases, one linear layer), 10 classes: convs 9·(3·64 + 64·64 + 64·128 + 128·128 +
#   128·256 + 2·256·256 + 256·512 + 5·512·512) = 14,710,464; BN 2·(2·64 + 2·128 + 3·256 + 6·512) = 8,448;
#   fc 512·10 + 10 = 5,130. Total 14,724,042 (the usual 14,728,266 with conv biases, less 4,224 biases).
# vgg19, 100 classes: one more 256·256 conv and two more 512·512 convs: convs 20,018,880; BN 11,008;
#   fc 51,300. Total 20,081,188.
#
# resnet18 for CIFAR (3x3 stem, no max-pool) and torchvision's resnet50: the published 11,173,962 and 25,557,032.
COUNTS = [
    ("mlp", {"input_shape": (40,)}, 10, 15_210),
    ("cnn1d", {"input_shape": (1, 40)}, 10, 25_258),
    ("cnn1d", {"input_shape": (1, 40), "width": 8}, 10, 2_290),
    ("resnet20", {}, 10, 272_474),
    ("resnet32", {}, 10, 466_906),
    ("resnet56", {}, 10, 855_770),
    ("vgg16", {}, 10, 14_724_042),
    ("vgg19", {}, 100, 20_081_188),
    ("resnet18", {}, 10, 11_173_962),
    ("resnet50", {}, 1000, 25_557_032),
]


@pytest.mark.parametrize("name, kwargs, classes, expected", COUNTS)
def test_parameter_counts(name, kwargs, classes, expected):
    assert _count(build(name, classes, **kwargs)) == expected


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_maps_a_batch_to_logits(name):
    torch.manual_seed(0)
    shape = _input_shape(name)
    model = build(name, 7, input_shape=shape).eval()
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_cifar_resnet_depth_and_width():
    for depth, name in ((20, "resnet20"), (32, "resnet32"), (56, "resnet56")):
        model = build(name, 10)
        convs = [m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "shortcut" not in n]
        assert len(convs) + 1 == depth  # weighted layers on the main path, plus fc
    wide = build("resnet32", 10, width=32)
    assert wide.conv.out_channels == 32 and wide.fc.in_features == 128


def _assert_normal(w, std, what):
    """Sample mean and std of ``w`` match N(0, std²) within 5 standard errors."""
    n = w.numel()
    assert abs(w.mean().item()) < 5 * std / math.sqrt(n), what
    assert w.std().item() == pytest.approx(std, rel=5 / math.sqrt(2 * n)), what


@pytest.mark.parametrize("name", ["mlp", "cnn1d", "resnet20", "vgg16"])
def test_kaiming_init_statistics(name):
    """Convs: Kaiming normal with fan_out and the ReLU gain, std √(2/fan_out); linear weights: √(2/fan_in);
    zero biases; BatchNorm weight 1, bias 0, running mean 0 and variance 1."""
    torch.manual_seed(0)
    model = build(name, 10, input_shape=_input_shape(name))
    checked = 0
    for module_name, m in model.named_modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            fan_out = m.weight.shape[0] * math.prod(m.weight.shape[2:])
            _assert_normal(m.weight.detach(), math.sqrt(2 / fan_out), module_name)
            checked += 1
        elif isinstance(m, nn.Linear):
            _assert_normal(m.weight.detach(), math.sqrt(2 / m.weight.shape[1]), module_name)
            assert torch.all(m.bias == 0)
            checked += 1
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), module_name
            assert torch.all(m.running_mean == 0) and torch.all(m.running_var == 1), module_name
    assert checked >= 3


def test_resnet18_init_is_torchvisions_with_a_kaiming_stem():
    torch.manual_seed(0)
    model = build("resnet18", 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and isinstance(model.maxpool, nn.Identity)
    w = model.conv1.weight.detach()
    _assert_normal(w, math.sqrt(2 / (64 * 9)), "conv1")
    # PyTorch's default Linear init is U(−1/√fan_in, 1/√fan_in), std 1/√(3·fan_in)
    fc = model.fc.weight.detach()
    bound = 1 / math.sqrt(512)
    assert fc.abs().max().item() <= bound and fc.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_seeded_build_is_reproducible():
    torch.manual_seed(5)
    a = build("cnn1d", 10, input_shape=(1, 40))
    torch.manual_seed(5)
    b = build("cnn1d", 10, input_shape=(1, 40))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'lenet'; choose from"):
        build("lenet", 10)
    with pytest.raises(ConfigError, match="does not accept the option 'depth'") as exc:
        build("cnn1d", 10, depth=3)
    assert exc.value.param == "model.depth"
    with pytest.raises(ConfigError, match="supports only width 64") as exc:
        build("resnet18", 10, width=32)
    assert exc.value.param == "model.width"


def test_a_bug_inside_a_builder_is_not_reported_as_bad_input(monkeypatch):
    def broken(num_classes, input_shape=(40,), width=8):
        return nn.Linear(width, num_classes, bogus_argument=True)  # a TypeError: a bug, not a bad option

    monkeypatch.setitem(MODELS, "broken", broken)
    with pytest.raises(TypeError, match="bogus_argument"):
        build("broken", 10, width=4)
