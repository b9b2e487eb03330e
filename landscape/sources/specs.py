"""Naming code from the command line: models, data and losses.

A **model spec** is one of

* a registry name (``resnet20``, ``cnn1d``, ...; :data:`training.models.MODELS`);
* ``torchvision:NAME``: ``torchvision.models.get_model(NAME, weights=None, **args)``;
* ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, **args)`` (when timm is installed);
* ``package.module:callable``: the user's own code, imported from the current directory and
  ``PYTHONPATH`` and resolved with :func:`pkgutil.resolve_name`; it is called with ``args``.

``args`` are keyword arguments (``--model-arg KEY=VALUE``, values parsed as YAML). Names are resolved
only from what the user typed, never from anything stored in a checkpoint: resolving a name imports
and runs code. Nothing is downloaded (torchvision and timm build untrained models; the weights come
from the file).

A **data spec** is a registry dataset name or ``package.module:callable`` returning a Dataset, a
DataLoader (any re-iterable of ``(inputs, targets)`` batches) or a mapping ``{split: either}``. A
**loss spec** is ``cross-entropy`` (the default), ``mse`` or ``package.module:callable`` taking
``(output, target)`` and returning the mean loss of the batch.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import ConfigError, DataError, UserError
from training.yamlio import load_yaml_text

CALLABLE_SPEC = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
LOSSES = ("cross-entropy", "mse")


def parse_args(pairs: list[str] | None, flag: str = "--model-arg") -> dict[str, Any]:
    """``["k=v", ...]`` → ``{k: YAML value of v}`` (e.g. ``num_classes=10``, ``input_shape=[3, 32, 32]``)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"{flag} takes KEY=VALUE with KEY a Python name, got {pair!r}")
        out[key] = load_yaml_text(value, f"{flag} {key}")
    return out


def resolve_callable(spec: str, what: str) -> Callable[..., Any]:
    """The object ``package.module:attr`` names, imported from the current directory and ``PYTHONPATH``.

    Only names of the form ``a.b:c.d`` are accepted. Import failures and missing attributes are a
    one-line :class:`UserError`."""
    if not CALLABLE_SPEC.match(spec):
        raise UserError(f"{what} {spec!r} is not a name of the form package.module:callable")
    module = spec.partition(":")[0]
    # the current folder is searched first while importing, as `python -m` does (./mymodels.py imports);
    # sys.path is restored afterwards
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or anything the module raises while it is imported
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{what} {spec!r}: cannot import {module} ({type(exc).__name__}: {reason})") from exc
    finally:
        if added:
            sys.path.remove(os.getcwd())
    try:
        obj = pkgutil.resolve_name(spec)
    except (AttributeError, ValueError) as exc:
        raise UserError(f"{what} {spec!r}: {module} has no attribute {spec.partition(':')[2]}") from exc
    if not callable(obj):
        raise UserError(f"{what} {spec!r} is a {type(obj).__name__}, not a callable")
    return obj


def call_user(fn: Callable[..., Any], args: Mapping[str, Any], spec: str, what: str) -> Any:
    """``fn(**args)``: anything it raises other than the toolkit's own errors is one :class:`UserError`
    line naming the ``what`` spec (``model 'x:y' raised TypeError: ...``)."""
    try:
        return fn(**args)
    except UserError:
        raise
    except Exception as exc:  # the user's code, or a library's builder, refused its arguments
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise UserError(f"{what} {spec!r} raised {type(exc).__name__}: {reason}") from exc


def build_model(spec: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """The untrained model ``spec`` names (see the module doc), built under a fixed seed so buffers
    a file does not hold are the same every time; the caller's RNG is untouched."""
    args = dict(args or {})
    if not isinstance(spec, str) or not spec:
        raise UserError("model must be a spec string (a registry name, torchvision:NAME, timm:NAME or module:callable)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _build(spec, args)
    if not isinstance(model, nn.Module):
        raise UserError(f"model {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _build(spec: str, args: dict[str, Any]) -> Any:
    from training.models import MODELS, build

    if "weights" in args or "pretrained" in args or "checkpoint_path" in args:
        raise UserError(f"model {spec!r}: the weights come from the file; leave out weights/pretrained arguments")
    if spec in MODELS:
        if "num_classes" not in args:
            raise UserError(f"model {spec!r} needs its number of classes: --model-arg num_classes=N")
        num_classes = args.pop("num_classes")
        return call_user(lambda **kw: build(spec, num_classes, **kw), args, spec, "model")
    kind, sep, name = spec.partition(":")
    if sep and kind == "torchvision":
        import torchvision

        if name not in torchvision.models.list_models():
            raise UserError(f"unknown torchvision model {name!r} (torchvision.models.list_models() lists them)")
        return call_user(lambda **kw: torchvision.models.get_model(name, weights=None, **kw), args, spec, "model")
    if sep and kind == "timm":
        try:
            import timm
        except ImportError as exc:
            raise UserError(f"model {spec!r} needs timm, which is not installed (pip install timm)") from exc
        if not timm.is_model(name):
            raise UserError(f"unknown timm model {name!r} (timm.list_models() lists them)")
        return call_user(lambda **kw: timm.create_model(name, pretrained=False, **kw), args, spec, "model")
    if sep:
        return call_user(resolve_callable(spec, "model"), args, spec, "model")
    raise UserError(
        f"unknown model {spec!r}: give a registry name ({', '.join(sorted(MODELS))}), torchvision:NAME, "
        "timm:NAME or package.module:callable"
    )


def describe(obj: Any) -> str:
    """``module.qualname`` of a resolved callable, for the provenance attributes."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (``F.mse_loss``), targets cast to the output's dtype; targets
    of another shape are a :class:`DataError` (broadcasting them would give a wrong number silently)."""
    if output.shape != target.shape:
        raise DataError(
            f"loss mse needs targets of the outputs' shape: outputs {tuple(output.shape)}, "
            f"targets {tuple(target.shape)}"
        )
    return F.mse_loss(output, target.to(output.dtype))


def resolve_loss(spec: str | Callable | None) -> tuple[Callable | None, str]:
    """``(loss_fn, name)``: ``None`` for cross-entropy (the classification path, with error),
    :func:`mse`, a callable passed through, or the callable a ``module:callable`` string names."""
    if spec is None or spec == "cross-entropy":
        return None, "cross-entropy"
    if spec == "mse":
        return mse, "mse"
    if callable(spec):
        return spec, describe(spec)
    if isinstance(spec, str) and ":" in spec:
        fn = resolve_callable(spec, "loss")
        return fn, spec
    raise UserError(f"unknown loss {spec!r}; choose from: {', '.join(LOSSES)}, or package.module:callable")
