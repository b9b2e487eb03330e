"""Typed trees of frozen dataclasses as configs: field metadata (help, flag, semantic), conversion from
and to plain dicts with type checks, dotted overrides, and the canonical hash of the non-default fields.

Nothing here knows the toolkit's own config classes (:mod:`training.config`); it works on any tree of
frozen dataclasses whose leaves are ``bool``, ``int``, ``float``, ``str``, optional values of those, or
tuples of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from training.checks import Range, check_config_number
from training.errors import ConfigError
from training.yamlio import load_yaml_text

HASH_LENGTH = 12


def opt(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    semantic: bool = True,
    valid: Range | None = None,
) -> Any:
    """A config field with its help text (shown by ``landscape train --help``).

    ``flag`` overrides the command-line spelling (default ``--<field-name>``; for booleans
    ``--<name>/--no-<name>``, or e.g. ``--prune-last/--keep-last-dense``). Non-``semantic`` fields
    cannot change the numbers a run produces and never enter the config hash. ``valid`` is the range
    of a numeric field (of each item of a tuple), checked by :func:`check_ranges`.
    """
    metadata: dict[str, Any] = {"help": help, "semantic": semantic}
    if flag is not None:
        metadata["flag"] = flag
    if valid is not None:
        metadata["valid"] = valid
    return field(default=default, metadata=metadata)


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Check every numeric leaf of a config tree against its declared range (and that floats are finite);
    raises :class:`ConfigError` naming the dotted key."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, key + ".")
        elif "valid" in f.metadata:
            check_config_number(value, key, f.metadata["valid"])
        elif isinstance(value, float):
            check_config_number(value, key, Range())


def section(cls: type, help: str) -> Any:
    """A nested config section (a dataclass field with a default instance)."""
    return field(default_factory=cls, metadata={"help": help, "semantic": True})


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists) suitable for YAML or JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return plain(cfg)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists to tuples, int to float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # a float literal YAML 1.1 left as text, e.g. "5e-4" or "1_000.5"
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {where}")  # pragma: no cover


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, refusing unknown keys and wrong types."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; valid keys: {', '.join(prefix + k for k in known)}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        path = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a mapping, got {value!r}")
            kwargs[name] = from_dict(tp, value, path)
        else:
            kwargs[name] = _coerce(value, tp, path)
    return cls(**kwargs)


def flat_items(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, Any, bool]]:
    """``{dotted.name: (value, default, semantic)}`` over every leaf of a config dataclass."""
    out: dict[str, tuple[Any, Any, bool]] = {}
    default_obj = type(cfg)()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = prefix + f.name
        semantic = f.metadata.get("semantic", True)
        if dataclasses.is_dataclass(value):
            for k, (v, d, s) in flat_items(value, key + ".").items():
                out[k] = (v, d, s and semantic)
        else:
            out[key] = (value, getattr(default_obj, f.name), semantic)
    return out


def canonical_string(cfg: Any) -> str:
    """Sorted JSON of the semantic leaves that differ from their defaults."""
    items = {k: v for k, (v, d, semantic) in flat_items(cfg).items() if semantic and v != d}
    return json.dumps(to_dict(items), sort_keys=True, separators=(",", ":"))


def config_hash(cfg: Any) -> str:
    """First 12 hex digits of the sha256 of :func:`canonical_string`."""
    return hashlib.sha256(canonical_string(cfg).encode()).hexdigest()[:HASH_LENGTH]


def replace_dotted(cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """Return ``cfg`` with ``{"schedule.cycles": 4, "seed": 1}``-style overrides applied and type-checked.

    An unknown key raises :class:`ConfigError` naming it and the valid keys of its section.
    """
    data = to_dict(cfg)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        path = ""
        for p in [*parents, leaf]:
            if not isinstance(node, dict) or p not in node:
                valid = ", ".join(f"{path}{k}" for k in node) if isinstance(node, dict) else "none"
                raise ConfigError(f"unknown config key {dotted!r}; valid keys here: {valid}", param=dotted)
            if p != leaf:
                node, path = node[p], f"{path}{p}."
        if isinstance(node[leaf], dict):
            raise ConfigError(f"config key {dotted!r} is a section; set one of its fields, e.g. {dotted}.<field>")
        node[leaf] = value
    return from_dict(type(cfg), data)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["schedule.cycles=4", "data.name=cifar10"]`` -> ``{"schedule.cycles": 4, "data.name": "cifar10"}``.

    Each value is parsed as YAML (so ``4`` is an integer, ``[0.5, 0.75]`` a list, ``null`` None).
    Shared by ``landscape train --set`` and ``python -m training --set``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, e.g. schedule.cycles=4; got {item!r}")
        out[key.strip()] = load_yaml_text(value, f"--set {key}") if value.strip() else value
    return out


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """``(dotted key, field, type)`` of every leaf field of a config dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, dataclasses.Field, Any]] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += leaf_fields(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f, tp))
    return out
