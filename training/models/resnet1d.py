"""A residual network with 1-D convolutions for MNIST-1D: ResNet-20's shape (He et al. 2016) in 1-D.

Three stages of three basic blocks with widths ``w, 2w, 4w`` (``w = 16``), kernel 3, BatchNorm, option-B
1x1 shortcut convolutions where the shape changes, global average pooling and one linear layer. With
``w = 16`` it has 92,336 prunable weights (convolutions and the linear layer), so the last layer holds
under 1% of the pruning budget (cnn1d's flattened classifier holds about a third of its weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from training.models.cifar import basic_resnet_permutations
from training.models.init import kaiming_init
from training.models.permutations import PermutationGroup


class BasicBlock1d(nn.Module):
    """3-3 residual block in 1-D; a 1x1 conv + BN ``shortcut`` when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet1d(nn.Module):
    """ResNet-(6n+2) with 1-D convolutions: a kernel-3 stem, three stages of n blocks (widths w, 2w, 4w;
    stride 2 at the start of stages 2 and 3), global average pooling and a linear ``fc`` layer."""

    def __init__(self, depth: int, num_classes: int, width: int = 16, in_channels: int = 1):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv1d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm1d(width)
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate([width, 2 * width, 4 * width]):
            for i in range(n):
                blocks.append(BasicBlock1d(c_in, c_out, stride=2 if (stage > 0 and i == 0) else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        out = torch.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        return self.fc(out.mean(dim=2))


def resnet20_1d(num_classes: int = 10, input_shape: Sequence[int] = (1, 40), width: int = 16) -> nn.Module:
    """ResNet-20 with 1-D convolutions for MNIST-1D (``input_shape`` (channels, length)); ``width`` is
    the first stage's channel count. Init: Kaiming normal (fan_out, ReLU) for convs, Kaiming normal
    (fan_in) for ``fc``, BN weight 1 and bias 0, as the 2-D :func:`training.models.cifar.resnet20`."""
    channels = int(input_shape[0]) if len(input_shape) > 1 else 1
    return kaiming_init(ResNet1d(20, num_classes, width, in_channels=channels))


def resnet20_1d_permutations(model: ResNet1d) -> list[PermutationGroup]:
    """As the 2-D CIFAR ResNets (same module names): one permutation per stage's stream and one per
    block's inner layer."""
    return basic_resnet_permutations(model)
