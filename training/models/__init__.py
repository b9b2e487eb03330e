"""Model registry: ``build(name, num_classes=..., **kwargs)``.

Every builder takes ``num_classes`` and ``input_shape`` (the shape of one input, without the batch
dimension) and model-specific keyword arguments such as ``width``. The returned module's
``named_parameters()`` names are the names used everywhere else (masks, Datasets, plots).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from training.errors import ConfigError
from training.models.cifar import resnet18, resnet20, resnet32, resnet56, vgg16, vgg19
from training.models.imagenet import resnet50
from training.models.resnet1d import resnet20_1d
from training.models.small import cnn1d, mlp

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
}


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


__all__ = ["MODELS", "build"]
