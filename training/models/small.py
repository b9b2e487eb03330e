"""Models for MNIST-1D (inputs of shape ``(1, 40)`` or ``(40,)``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from training.models.init import kaiming_init
from training.models.permutations import PermutationGroup, chain_groups


class MLP(nn.Module):
    """Fully connected ReLU network: ``in -> width -> width -> num_classes``."""

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (40,), width: int = 100, depth: int = 2):
        super().__init__()
        in_features = math.prod(input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def mlp(num_classes: int, input_shape: Sequence[int] = (40,), width: int = 100) -> nn.Module:
    """Two hidden ReLU layers of ``width`` units. Init: Kaiming normal (fan_in) for linear weights, zero biases."""
    return kaiming_init(MLP(num_classes, input_shape, width))


def mlp_permutations(model: MLP) -> list[PermutationGroup]:
    """One permutation per hidden layer (weight rows, bias, next layer's columns)."""
    linears = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.Linear)]
    return chain_groups(model, [(name, None) for name in linears], "fc")


class CNN1d(nn.Module):
    """Four Conv1d-BN-ReLU blocks (kernel 5 then three stride-2 kernel-3 convs) and a linear classifier.

    Channels ``width, width, 2*width, 2*width``. The classifier sees the flattened feature map, so
    positional information (which MNIST-1D needs) is kept.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (1, 40), width: int = 32):
        super().__init__()
        if len(input_shape) == 1:
            input_shape = (1, *input_shape)
        channels, length = int(input_shape[0]), int(input_shape[-1])
        widths = [width, width, 2 * width, 2 * width]
        blocks: list[nn.Module] = []
        c_in = channels
        for i, c_out in enumerate(widths):
            kernel, stride, pad = (5, 1, 2) if i == 0 else (3, 2, 1)
            blocks += [
                nn.Conv1d(c_in, c_out, kernel, stride, pad, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
            ]
            length = (length + 2 * pad - kernel) // stride + 1
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in * length, num_classes)
        self._channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.fc(torch.flatten(self.features(x), 1))


def cnn1d(num_classes: int, input_shape: Sequence[int] = (1, 40), width: int = 32) -> nn.Module:
    """1D CNN with BatchNorm for MNIST-1D. Init: Kaiming normal (fan_out, ReLU) for convs, Kaiming
    normal (fan_in) for the linear layer, BN weight 1 and bias 0."""
    return kaiming_init(CNN1d(num_classes, input_shape, width))


def cnn1d_permutations(model: CNN1d) -> list[PermutationGroup]:
    """One permutation per conv block (conv filters, BatchNorm, next conv's input channels); the last
    block's channels map to runs of ``length`` inputs of the classifier (the flatten is channel-major)."""
    convs = [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv1d)]
    length = model.fc.in_features // model.features[convs[-1]].out_channels
    layers = [(f"features.{i}", f"features.{i + 1}") for i in convs]
    return chain_groups(model, layers, "fc", head_block=length)
