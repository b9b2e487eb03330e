"""Model registry: ``build(name, num_classes=..., **kwargs)``.

Every builder takes ``num_classes`` and ``input_shape`` (the shape of one input, without the batch
dimension) and model-specific keyword arguments such as ``width``. The returned module's
``named_parameters()`` names are the names used everywhere else (masks, Datasets, plots).

Every model also declares its permutation structure next to its builder (``PERMUTATIONS``; see
:mod:`training.models.permutations`), which permutation alignment of two checkpoints needs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from training.errors import ConfigError
from training.models.cifar import (
    basic_resnet_permutations,
    resnet18,
    resnet20,
    resnet32,
    resnet56,
    torchvision_resnet_permutations,
    vgg16,
    vgg19,
    vgg_permutations,
)
from training.models.imagenet import resnet50, resnet50_permutations
from training.models.modern import NOT_ALIGNABLE, mobilenetv2, vit
from training.models.permutations import PermutationGroup, check_groups
from training.models.resnet1d import resnet20_1d, resnet20_1d_permutations
from training.models.small import cnn1d, cnn1d_permutations, mlp, mlp_permutations

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "cnn1d": cnn1d,
    "resnet20_1d": resnet20_1d,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "resnet18": resnet18,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "resnet50": resnet50,
    "vit": vit,
    "mobilenetv2": mobilenetv2,
}

PERMUTATIONS: dict[str, Callable[[nn.Module], list[PermutationGroup]]] = {
    "mlp": mlp_permutations,
    "cnn1d": cnn1d_permutations,
    "resnet20_1d": resnet20_1d_permutations,
    "resnet20": basic_resnet_permutations,
    "resnet32": basic_resnet_permutations,
    "resnet56": basic_resnet_permutations,
    "resnet18": torchvision_resnet_permutations,
    "vgg16": vgg_permutations,
    "vgg19": vgg_permutations,
    "resnet50": resnet50_permutations,
}


def permutation_groups(name: str, model: nn.Module) -> list[PermutationGroup]:
    """The declared permutation groups of ``model`` (built as registry model ``name``), checked
    against its state dict. A model without a declaration raises :class:`ConfigError`."""
    if name in NOT_ALIGNABLE:
        raise ConfigError(f"model {name!r} cannot be aligned: {NOT_ALIGNABLE[name]}")
    if name not in PERMUTATIONS:
        raise ConfigError(
            f"model {name!r} declares no permutation structure, so it cannot be aligned; declare one next "
            "to the model and add it to training.models.PERMUTATIONS"
        )
    groups = PERMUTATIONS[name](model)
    check_groups(model, groups)
    return groups


def build(name: str, num_classes: int, input_shape: Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``. Initialisation uses the current global torch RNG.

    An option the builder does not take, or a value it does not support (e.g. ``width`` for
    ``resnet18``), raises :class:`ConfigError`; any other error of the builder is a bug and propagates.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from: {', '.join(sorted(MODELS))}")
    if input_shape is not None:
        kwargs["input_shape"] = tuple(int(s) for s in input_shape)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    builder = MODELS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p != "num_classes"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model {name!r} does not accept the option {unknown[0]!r}; it takes: {', '.join(accepted)}",
            param=f"model.{unknown[0]}",
        )
    return builder(num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "PERMUTATIONS", "PermutationGroup", "build", "permutation_groups"]
