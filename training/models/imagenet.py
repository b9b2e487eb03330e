"""ImageNet architectures from torchvision."""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import nn

from training.errors import ConfigError
from training.models.cifar import torchvision_resnet_permutations
from training.models.permutations import PermutationGroup


def resnet50(num_classes: int = 1000, input_shape: Sequence[int] = (3, 224, 224), width: int = 64) -> nn.Module:
    """torchvision's ResNet-50, randomly initialised (no download). ``downsample`` convs are the 1x1
    shortcuts. Init: torchvision's, i.e. Kaiming normal (fan_out, ReLU) for convs, BN 1/0, default
    uniform for ``fc``."""
    if width != 64:
        raise ConfigError(f"model 'resnet50' supports only width 64 (torchvision's), got {width}", param="model.width")
    if int(input_shape[0]) != 3:
        raise ConfigError(f"model 'resnet50' needs 3 input channels, got {int(input_shape[0])}")
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


def resnet50_permutations(model: torchvision.models.ResNet) -> list[PermutationGroup]:
    """One permutation per stream (the stem's and one per stage, started by its ``downsample``) and two
    per bottleneck (after ``conv1`` and ``conv2``)."""
    return torchvision_resnet_permutations(model)
