"""Permutation structure of a network: which hidden units one permutation moves together.

Permuting the hidden units of a layer (and, consistently, the inputs of the layers that read them)
leaves the network's function unchanged. A :class:`PermutationGroup` lists every state-dict entry
(parameters and buffers) that such a permutation touches, as ``(key, axis, block)``: unit ``i`` of
the group is the slice ``[i * block, (i + 1) * block)`` of ``key`` along ``axis``. ``block`` is 1
except where a flatten maps each channel to a run of inputs of a linear layer (cnn1d's classifier sees
``channels × length`` features, channel-major, so ``block = length``).

Units tied by a residual connection (the stream a residual stage adds into, including the stem or the
1x1 shortcut convolution and its BatchNorm that start the stage) share one permutation, as in
Ainsworth et al.'s (Git Re-Basin) ResNet specification. ``activations`` names the modules whose
outputs carry the group's units along dimension 1 (activation matching correlates them; REPAIR
corrects them).

Each model module declares its groups next to the model (e.g. :func:`training.models.small.mlp_permutations`)
with the builders here; :data:`training.models.PERMUTATIONS` maps registry names to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from training.errors import ConfigError

Entry = tuple[str, int, int]


@dataclass(frozen=True)
class PermutationGroup:
    """One permutation: its ``name``, number of units ``size``, the ``(key, axis, block)`` entries it
    moves and the ``activations`` (module names) whose dimension 1 carries its units."""

    name: str
    size: int
    entries: tuple[Entry, ...]
    activations: tuple[str, ...] = ()


def _has(model: nn.Module, key: str) -> bool:
    return key in model.state_dict()


def unit_entries(model: nn.Module, layer: str, bn: str | None = None) -> list[Entry]:
    """Entries of the output units of ``layer`` (a conv or linear module): its weight's axis 0, its
    bias if any, and the weight, bias and running statistics of the BatchNorm ``bn`` after it."""
    entries = [(f"{layer}.weight", 0, 1)]
    if _has(model, f"{layer}.bias"):
        entries.append((f"{layer}.bias", 0, 1))
    if bn is not None:
        entries += [
            (f"{bn}.{k}", 0, 1) for k in ("weight", "bias", "running_mean", "running_var") if _has(model, f"{bn}.{k}")
        ]
    return entries


def input_entry(layer: str, block: int = 1) -> Entry:
    """The entry of the input units of ``layer`` (axis 1 of its weight), ``block`` inputs per unit."""
    return (f"{layer}.weight", 1, block)


def chain_groups(
    model: nn.Module, layers: Sequence[tuple[str, str | None]], head: str, head_block: int = 1
) -> list[PermutationGroup]:
    """Groups of a feed-forward chain: ``layers`` is ``[(layer, bn or None), ...]`` in order, each
    read only by the next layer, the last read by ``head`` (``head_block`` inputs per unit). A
    group's activation is its BatchNorm when there is one, else the layer (its pre-activation)."""
    state = model.state_dict()
    groups = []
    for i, (layer, bn) in enumerate(layers):
        reader = layers[i + 1][0] if i + 1 < len(layers) else head
        block = 1 if i + 1 < len(layers) else head_block
        entries = [*unit_entries(model, layer, bn), input_entry(reader, block)]
        groups.append(PermutationGroup(layer, state[f"{layer}.weight"].shape[0], tuple(entries), (bn or layer,)))
    return groups


@dataclass(frozen=True)
class ResidualBlock:
    """A residual block: its module name, the ``(conv, bn)`` pairs of its branch in order, and the
    ``(conv, bn)`` of its shortcut projection (``None`` for the identity)."""

    name: str
    branch: tuple[tuple[str, str], ...]
    shortcut: tuple[str, str] | None = None


def residual_groups(
    model: nn.Module, stem: tuple[str, str], blocks: Sequence[ResidualBlock], head: str
) -> list[PermutationGroup]:
    """Groups of a residual network ``stem → blocks → head``: one group per stream (started by the stem
    or by a block's shortcut projection, shared by every branch that adds into it and every layer that
    reads it) and one per hidden layer inside each branch."""
    state = model.state_dict()
    groups: list[PermutationGroup] = []
    stream = {"name": stem[0], "entries": unit_entries(model, *stem), "activations": [stem[1]], "at": 0}

    def close(stream: dict) -> None:  # listed where the stream starts, so groups stay in forward order
        size = state[stream["entries"][0][0]].shape[0]
        group = PermutationGroup(
            f"stream:{stream['name']}", size, tuple(stream["entries"]), tuple(stream["activations"])
        )
        groups.insert(stream["at"], group)

    for block in blocks:
        stream["entries"].append(input_entry(block.branch[0][0]))
        if block.shortcut is not None:
            stream["entries"].append(input_entry(block.shortcut[0]))
            close(stream)
            stream = {
                "name": block.shortcut[0],
                "entries": unit_entries(model, *block.shortcut),
                "activations": [],
                "at": len(groups),
            }
        for (conv, bn), (reader, _) in zip(block.branch[:-1], block.branch[1:], strict=True):
            entries = (*unit_entries(model, conv, bn), input_entry(reader))
            groups.append(PermutationGroup(conv, state[f"{conv}.weight"].shape[0], entries, (bn,)))
        stream["entries"] += unit_entries(model, *block.branch[-1])
        stream["activations"].append(block.name)
    stream["entries"].append(input_entry(head))
    close(stream)
    return groups


def check_groups(model: nn.Module, groups: Sequence[PermutationGroup]) -> None:
    """Raise :class:`ConfigError` unless every entry names a state-dict tensor whose ``axis`` has
    ``size × block`` elements, no (key, axis) is moved by two groups, and every activation is a module."""
    state = model.state_dict()
    modules = dict(model.named_modules())
    seen: dict[tuple[str, int], str] = {}
    for g in groups:
        for key, axis, block in g.entries:
            if key not in state:
                raise ConfigError(f"permutation group {g.name}: no state-dict entry {key}")
            if state[key].dim() <= axis or state[key].shape[axis] != g.size * block:
                raise ConfigError(
                    f"permutation group {g.name}: {key} has shape {tuple(state[key].shape)}, "
                    f"expected {g.size * block} along axis {axis}"
                )
            if (key, axis) in seen:
                raise ConfigError(f"{key} axis {axis} is moved by both {seen[key, axis]} and {g.name}")
            seen[key, axis] = g.name
        for name in g.activations:
            if name not in modules:
                raise ConfigError(f"permutation group {g.name}: no module {name}")
