import pytest
import torch

from training.errors import ConfigError
from training.models import MODELS, build


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("mlp", (1, 40), 10),
        ("cnn1d", (1, 40), 10),
        ("resnet20", (3, 32, 32), 10),
        ("resnet32", (3, 32, 32), 100),
        ("resnet56", (3, 32, 32), 10),
        ("resnet18", (3, 32, 32), 10),
        ("vgg16", (3, 32, 32), 10),
        ("vgg19", (3, 32, 32), 100),
    ],
)
def test_forward_shapes(name, shape, classes):
    torch.manual_seed(0)
    model = build(name, classes, input_shape=shape).eval()
    assert model(torch.randn(2, *shape)).shape == (2, classes)


def test_registry_is_complete():
    assert set(MODELS) == {"mlp", "cnn1d", "resnet20", "resnet32", "resnet56", "resnet18", "vgg16", "vgg19", "resnet50"}


def test_known_parameter_counts():
    # CIFAR ResNet-18 (3x3 stem, no max-pool): the widely quoted 11,173,962 parameters.
    assert _count(build("resnet18", 10)) == 11_173_962
    # torchvision ResNet-50: 25,557,032 parameters.
    assert _count(build("resnet50", 1000)) == 25_557_032
    # VGG-16-BN for CIFAR with one linear layer: 14,728,266 with conv biases; ours has none (BN follows).
    assert _count(build("vgg16", 10)) == 14_728_266 - (64 * 2 + 128 * 2 + 256 * 3 + 512 * 6)


def test_cifar_resnet_depth_and_width():
    for depth, name in ((20, "resnet20"), (32, "resnet32"), (56, "resnet56")):
        model = build(name, 10)
        convs = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and "shortcut" not in n]
        assert len(convs) + 1 == depth  # weighted layers on the main path, plus fc
    wide = build("resnet32", 10, width=32)
    assert wide.conv.out_channels == 32 and wide.fc.in_features == 128


def test_init_is_kaiming_normal_fan_out():
    torch.manual_seed(0)
    model = build("vgg19", 10)
    w = next(m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 128)
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert w.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.05)


def test_seeded_build_is_reproducible():
    torch.manual_seed(5)
    a = build("cnn1d", 10, input_shape=(1, 40))
    torch.manual_seed(5)
    b = build("cnn1d", 10, input_shape=(1, 40))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_unknown_model_and_bad_option():
    with pytest.raises(ConfigError, match="unknown model 'lenet'; choose from"):
        build("lenet", 10)
    with pytest.raises(ConfigError, match="does not accept"):
        build("resnet18", 10, width=32)
