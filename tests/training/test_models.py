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
#
# vit (3×32×32, 4×4 patches, 7 layers, hidden and MLP 384), 10 classes: patch embedding 3·16·384 + 384 =
#   18,816; class token 384; position embedding 65·384 = 24,960; per layer two LayerNorms 2·768, input
#   projection 3·384² + 3·384 = 443,520, output projection and the two MLP layers 3·(384² + 384) = 443,520:
#   888,576, so 7 layers 6,220,032; final LayerNorm 768; head 384·10 + 10 = 3,850. Total 6,268,810 (the
#   figure ViT-CIFAR's recipe gives). At 1×28×28: the embedding 16·384 + 384 = 6,528 and 50 positions
#   19,200: 6,250,762. The small ViT of the architectures tier (1×28×28, 7×7 patches, width 32, 4 heads,
#   2 layers): embedding 49·32 + 32 = 1,600, class token 32, positions 17·32 = 544, per layer 2·64 +
#   (3·32² + 3·32) + 3·(32² + 32) = 6,464 (two layers 12,928), final LayerNorm 64, head 330: 15,498.
# mobilenetv2 (CIFAR strides do not change the count): torchvision's published 3,504,872 for 1000 classes,
#   less its head 1280·1000 + 1000, plus 1280·10 + 10: 2,236,682. One input channel: the first conv has
#   32·9 weights instead of 32·27: 2,236,106.
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
    ("vit", {}, 10, 6_268_810),
    ("vit", {"input_shape": (1, 28, 28)}, 10, 6_250_762),
    ("vit", {"input_shape": (1, 28, 28), "width": 32, "layers": 2, "heads": 4, "patch": 7}, 10, 15_498),
    ("mobilenetv2", {}, 10, 2_236_682),
    ("mobilenetv2", {"input_shape": (1, 28, 28)}, 10, 2_236_106),
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


def test_vit_and_mobilenetv2_prunable_sets_and_flags():
    """ViT: the packed attention projection is prunable (half of a block's weights when the MLP is as wide),
    LayerNorm, biases, class token and position embedding never; the patch embedding and head only with the
    flag. MobileNetV2: the first and the depthwise convolutions dense with --dense-depthwise."""
    from training.config import MaskConfig
    from training.masks import config_prunable_names, prunable_names

    vit = build("vit", 10, input_shape=(3, 32, 32), width=48)
    names = prunable_names(vit)
    block = "encoder.layers.encoder_layer_0"
    assert [n for n in names if n.startswith(block)] == [
        f"{block}.self_attention.in_proj_weight", f"{block}.self_attention.out_proj.weight",
        f"{block}.mlp.0.weight", f"{block}.mlp.3.weight",
    ]  # fmt: skip
    params = dict(vit.named_parameters())
    in_block = [n for n in names if n.startswith(block)]
    share = params[f"{block}.self_attention.in_proj_weight"].numel() / sum(params[n].numel() for n in in_block)
    assert share == pytest.approx(0.5)
    assert not any(("ln" in n) or n.endswith("bias") or "token" in n or "pos_embedding" in n for n in names)
    assert "conv_proj.weight" not in names and "heads.head.weight" not in names
    flagged = config_prunable_names(vit, MaskConfig(prune_patch_and_head=True))
    assert set(flagged) - set(names) == {"conv_proj.weight", "heads.head.weight"}

    mobile = build("mobilenetv2", 10, input_shape=(3, 32, 32), width=8)
    every = prunable_names(mobile)
    dense = set(every) - set(config_prunable_names(mobile, MaskConfig(dense_depthwise=True)))
    modules = dict(mobile.named_modules())
    depthwise = {f"{n}.weight" for n, m in modules.items() if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert dense == depthwise | {"features.0.0.weight"} and len(depthwise) == 17
    assert modules["features.0.0"].stride == (1, 1)  # CIFAR strides: a 4×4 final map at 32×32
    with torch.no_grad():
        assert mobile.features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)


def test_vit_and_mobilenetv2_refuse_alignment_and_bad_shapes():
    from training.models import permutation_groups

    for name in ("vit", "mobilenetv2"):
        with pytest.raises(ConfigError, match=f"model '{name}' cannot be aligned: ") as exc:
            permutation_groups(name, build(name, 10, input_shape=(3, 32, 32), width=48 if name == "vit" else 8))
        assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="vit: the image side 30 is not a multiple of the patch size 4"):
        build("vit", 10, input_shape=(3, 30, 30))
    with pytest.raises(ConfigError, match="vit: width 50 is not a multiple of the 12 heads"):
        build("vit", 10, input_shape=(3, 32, 32), width=50)
    with pytest.raises(ConfigError, match="needs square images"):
        build("mobilenetv2", 10, input_shape=(1, 40))


def test_scores_that_all_tie_are_refused_not_turned_into_an_empty_mask():
    """torchvision's ViT zero-initialises its head: SNIP then scores every weight 0, and pruning ties would
    empty the mask. The registry's ViT re-initialises the head; any model that still ties is refused."""
    from training.pruning import prune

    torch.manual_seed(0)
    model = build("mlp", 10, input_shape=(40,), width=16)
    nn.init.zeros_(model.fc.weight)  # no gradient reaches the hidden layers, and |w·g| of the head is 0
    data = [(torch.randn(20, 40), torch.randint(0, 10, (20,)))]
    with pytest.raises(ConfigError, match="the pruning scores are all tied, so the mask would keep no weight"):
        prune(model, "snip", 0.9, data=data)
    vit = build("vit", 10, input_shape=(3, 32, 32), width=48)
    assert vit.heads.head.weight.abs().sum() > 0
