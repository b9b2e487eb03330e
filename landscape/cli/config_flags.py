"""Command-line options generated from the config dataclasses.

Every leaf field of :class:`training.config.TrainConfig` becomes an option of ``landscape train``:
its flag is the field's ``flag`` metadata or ``--<field-name>``, its type the field's annotation
(tuples are given comma-separated), and its help the field's ``help`` metadata plus the valid
choices (:data:`training.validate.CHOICES`) and the default. A flag left out does not override the
config file. ``--set key.path=value`` reaches any field by its dotted key.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import typer

from landscape.cli.app import param_name
from training.config import TrainConfig, leaf_fields
from training.errors import ConfigError
from training.validate import CHOICES


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; other annotations unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _flag(key: str, f: dataclasses.Field, tp: Any) -> str:
    flag = f.metadata.get("flag") or "--" + key.rsplit(".", 1)[-1].replace("_", "-")
    if tp is bool and "/" not in flag:
        flag = f"{flag}/--no-{flag[2:]}"
    return flag


def _help(key: str, f: dataclasses.Field, tp: Any) -> str:
    text = f.metadata.get("help", "")
    if key in CHOICES:
        text += f" One of: {', '.join(CHOICES[key][1])}."
    if typing.get_origin(tp) is tuple:
        text += " Comma-separated."
    default = f.default
    if isinstance(default, tuple):
        default = ",".join(str(v) for v in default)
    elif isinstance(default, bool):
        default = _flag(key, f, bool).split("/")[0 if default else 1]
    shown = "none" if default is None or default == "" else default
    return f"{text} [default: {shown}]"


def config_parameters(keys: Iterable[str] | None = None) -> list[inspect.Parameter]:
    """Keyword-only typer parameters for the config leaves ``keys`` (default: all of TrainConfig)."""
    wanted = None if keys is None else set(keys)
    params = []
    for key, f, tp in leaf_fields(TrainConfig):
        if wanted is not None and key not in wanted:
            continue
        base = _base_type(tp)
        annotation = str if typing.get_origin(base) is tuple else base
        option = typer.Option(None, *_flag(key, f, base).split(" "), help=_help(key, f, base), show_default=False)
        params.append(
            inspect.Parameter(
                param_name(key), inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation | None
            )
        )
    return params


def _parse_tuple(key: str, text: str, tp: Any) -> list[Any]:
    (item_tp, _) = typing.get_args(tp)
    try:
        return [item_tp(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        kind = "integers" if item_tp is int else "numbers"
        raise ConfigError(f"{key} must be comma-separated {kind}, got {text!r}", param=key) from exc


def config_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{dotted key: value}`` for the generated parameters in ``values`` that were given (not None)."""
    out: dict[str, Any] = {}
    for key, _f, tp in leaf_fields(TrainConfig):
        value = values.get(param_name(key))
        if value is None:
            continue
        base = _base_type(tp)
        out[key] = _parse_tuple(key, value, base) if typing.get_origin(base) is tuple else value
    return out


def with_parameters(fn: Any, params: list[inspect.Parameter]) -> Any:
    """``fn`` (taking ``**kwargs``) with a signature typer can read: its own parameters plus ``params``."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    fn.__signature__ = inspect.Signature([*own, *params])
    fn.__annotations__ = {p.name: p.annotation for p in [*own, *params] if p.annotation is not inspect.Parameter.empty}
    return fn
