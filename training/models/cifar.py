"""CIFAR architectures: He et al.'s ResNet-20/32/56, a CIFAR ResNet-18, and VGG-16/19 with BatchNorm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from training.errors import ConfigError
from training.models.init import kaiming_init
from training.models.permutations import PermutationGroup, ResidualBlock, chain_groups, residual_groups


class BasicBlock(nn.Module):
    """3x3-3x3 residual block; a 1x1 conv + BN ``shortcut`` when the shape changes (option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: a 3x3 stem, three stages of n blocks with widths w, 2w, 4w,
    global average pooling and a linear ``fc`` layer."""

    def __init__(self, depth: int, num_classes: int, width: int = 16, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate([width, 2 * width, 4 * width]):
            for i in range(n):
                blocks.append(BasicBlock(c_in, c_out, stride=2 if (stage > 0 and i == 0) else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
        return self.fc(out)


def basic_resnet_permutations(model: nn.Module) -> list[PermutationGroup]:
    """Permutations of a ResNet built from :class:`BasicBlock`-shaped blocks (``conv``/``bn`` stem,
    ``blocks.<i>.conv1/bn1/conv2/bn2``, optional ``shortcut.0/1``, ``fc``): one per stage's stream
    (stem or shortcut projection, every ``conv2``/``bn2`` adding into it, every layer reading it) and
    one per block's inner ``conv1``/``bn1``. Also used by the 1-D ResNet."""
    blocks = []
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        shortcut = (f"{p}.shortcut.0", f"{p}.shortcut.1") if len(block.shortcut) else None
        blocks.append(ResidualBlock(p, ((f"{p}.conv1", f"{p}.bn1"), (f"{p}.conv2", f"{p}.bn2")), shortcut))
    return residual_groups(model, ("conv", "bn"), blocks, "fc")


def torchvision_resnet_permutations(model: torchvision.models.ResNet) -> list[PermutationGroup]:
    """Permutations of a torchvision ResNet (basic or bottleneck blocks in ``layer1``..``layer4``, 1x1
    ``downsample`` projections): one per stream (the stem's, then one started by each ``downsample``)
    and one per hidden conv inside each block. Used by ``resnet18`` here and ``resnet50``."""
    blocks = []
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for i, block in enumerate(getattr(model, stage)):
            p = f"{stage}.{i}"
            convs = sorted(n for n, m in block.named_children() if n.startswith("conv"))
            branch = tuple((f"{p}.{c}", f"{p}.bn{c[4:]}") for c in convs)
            shortcut = (f"{p}.downsample.0", f"{p}.downsample.1") if block.downsample is not None else None
            blocks.append(ResidualBlock(p, branch, shortcut))
    return residual_groups(model, ("conv1", "bn1"), blocks, "fc")


def _cifar_resnet(depth: int, num_classes: int, input_shape: Sequence[int], width: int) -> nn.Module:
    return kaiming_init(CifarResNet(depth, num_classes, width, in_channels=int(input_shape[0])))


def resnet20(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: int = 16) -> nn.Module:
    """ResNet-20 (He et al. 2016; 3 blocks per stage); ``width`` is the first stage's channel count.
    Init: Kaiming normal (fan_out, ReLU) for convs, Kaiming normal (fan_in) for ``fc``, BN 1/0."""
    return _cifar_resnet(20, num_classes, input_shape, width)


def resnet32(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: int = 16) -> nn.Module:
    """ResNet-32 (5 blocks per stage); the double-width variant of GraSP and Su et al. 2020 is ``width=32``.
    Init as :func:`resnet20`."""
    return _cifar_resnet(32, num_classes, input_shape, width)


def resnet56(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: int = 16) -> nn.Module:
    """ResNet-56 (9 blocks per stage). Init as :func:`resnet20`."""
    return _cifar_resnet(56, num_classes, input_shape, width)


def resnet18(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: int = 64) -> nn.Module:
    """torchvision's ResNet-18 adapted to CIFAR: a 3x3 stride-1 stem and no max-pool.

    Only ``width=64`` (torchvision's) is supported. Init: torchvision's, i.e. Kaiming normal (fan_out,
    ReLU) for convs, BN 1/0, and PyTorch's default uniform init for ``fc``; the stem is re-initialised
    Kaiming normal (fan_out).
    """
    if width != 64:
        raise ConfigError(f"model 'resnet18' supports only width 64 (torchvision's), got {width}", param="model.width")
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(int(input_shape[0]), 64, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


_VGG_PLANS = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


class CifarVGG(nn.Module):
    """VGG with BatchNorm for 32x32 inputs and a single linear ``fc`` classifier (as open_lth and Su et al.'s code)."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in _VGG_PLANS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                c_out = int(item) * width // 64
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(torch.flatten(out, 1))


def vgg_permutations(model: CifarVGG) -> list[PermutationGroup]:
    """One permutation per conv layer (filters, BatchNorm, next conv's or ``fc``'s inputs; the global
    average pool leaves one input of ``fc`` per channel)."""
    convs = [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
    return chain_groups(model, [(f"features.{i}", f"features.{i + 1}") for i in convs], "fc")


def vgg16(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: int = 64) -> nn.Module:
    """VGG-16 with BatchNorm for CIFAR. Init: Kaiming normal (fan_out, ReLU) for convs, Kaiming normal
    (fan_in) for ``fc``, BN 1/0."""
    return kaiming_init(CifarVGG(16, num_classes, int(input_shape[0]), width))


def vgg19(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: int = 64) -> nn.Module:
    """VGG-19 with BatchNorm for CIFAR. Init as :func:`vgg16`."""
    return kaiming_init(CifarVGG(19, num_classes, int(input_shape[0]), width))
