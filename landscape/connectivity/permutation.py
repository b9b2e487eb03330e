"""Applying permutations of hidden units to a checkpoint: weights, biases, BatchNorm parameters and
running statistics, and the mask move together, so the network's function and its sparsity pattern
are unchanged.

Convention. A permutation of a group (see :mod:`training.models.permutations`) is a 1-D long tensor
``perm`` of the group's size; permuting puts the old unit ``perm[i]`` at position ``i`` along every
entry's axis (``new = old.index_select(axis, perm)``, expanded to blocks). If ``B = permute(A, π)``,
the alignment of ``B`` to ``A`` is ``π⁻¹`` (:func:`inverse`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from training.checkpoint import Checkpoint
from training.errors import UserError
from training.models import PERMUTATIONS, PermutationGroup, permutation_groups
from training.models.permutations import check_groups

Permutation = dict[str, torch.Tensor]


def groups_of(ckpt: Checkpoint, example: torch.Tensor | None = None) -> list[PermutationGroup]:
    """The permutation groups of ``ckpt``'s model: those declared for a registry model, else derived by
    tracing the model with ``torch.fx`` on the ``example`` inputs
    (:func:`landscape.connectivity.structure.derive_groups`;
    a one-line :class:`UserError` for an operation it cannot handle, or without ``example``)."""
    if ckpt.meta.get("model") in PERMUTATIONS:
        return permutation_groups(ckpt.meta["model"], ckpt.model)
    if example is None:
        raise UserError(
            f"model {ckpt.meta.get('model')} declares no permutation structure; deriving it needs example inputs "
            "(pass data to the alignment)",
            param="data",
        )
    from landscape.connectivity.structure import derive_groups

    groups = derive_groups(ckpt.model, example)
    check_groups(ckpt.model, groups)
    return groups


def example_inputs(data: Iterable | None) -> torch.Tensor | None:
    """The inputs of the first batch of ``data`` (the example :func:`groups_of` traces with), or ``None``."""
    if data is None:
        return None
    for batch in data:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return inputs[:2].cpu() if isinstance(inputs, torch.Tensor) else None
    return None


def expand(perm: torch.Tensor, block: int) -> torch.Tensor:
    """Index along an axis whose units are runs of ``block`` consecutive entries."""
    if block == 1:
        return perm
    return (perm[:, None] * block + torch.arange(block, device=perm.device)).reshape(-1)


def identity(groups: list[PermutationGroup]) -> Permutation:
    """The identity permutation of every group."""
    return {g.name: torch.arange(g.size) for g in groups}


def inverse(perms: Mapping[str, torch.Tensor]) -> Permutation:
    """The inverse of each permutation: ``inverse(p)[p[i]] = i``."""
    return {k: torch.argsort(p) for k, p in perms.items()}


def random_permutation(groups: list[PermutationGroup], generator: torch.Generator) -> Permutation:
    """A uniformly random permutation of every group, drawn with ``generator``."""
    return {g.name: torch.randperm(g.size, generator=generator) for g in groups}


def units_moved(perms: Mapping[str, torch.Tensor]) -> float:
    """Fraction of all units (over every group) that a permutation moves."""
    total = sum(len(p) for p in perms.values())
    moved = sum(int((p != torch.arange(len(p))).sum()) for p in perms.values())
    return moved / total if total else 0.0


def _check(groups: list[PermutationGroup], perms: Mapping[str, torch.Tensor]) -> None:
    for g in groups:
        if g.name not in perms:
            raise UserError(f"no permutation given for group {g.name}")
        p = perms[g.name]
        if p.shape != (g.size,) or not torch.equal(torch.sort(p).values, torch.arange(g.size)):
            raise UserError(f"the permutation of group {g.name} is not a permutation of {g.size} units")


def permute_tensors(
    tensors: Mapping[str, torch.Tensor], groups: list[PermutationGroup], perms: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Permute every tensor of ``tensors`` (a state dict or a mask; keys absent from it are skipped)
    that a group moves; other tensors are returned as they are (not copied)."""
    _check(groups, perms)
    out = dict(tensors)
    for g in groups:
        for key, axis, block in g.entries:
            if key in out:
                out[key] = out[key].index_select(axis, expand(perms[g.name], block).to(out[key].device))
    return out


def permute(
    ckpt: Checkpoint, perms: Mapping[str, torch.Tensor], groups: list[PermutationGroup] | None = None
) -> Checkpoint:
    """A new :class:`Checkpoint` with ``ckpt``'s hidden units permuted by ``perms`` (state, mask and the
    model's weights); meta, path and sha256 are kept. ``ckpt`` is not modified."""
    groups = groups_of(ckpt) if groups is None else groups
    state = permute_tensors(ckpt.state, groups, perms)
    mask = permute_tensors(ckpt.mask, groups, perms)
    out = ckpt.clone()
    out.state = {k: v.clone() for k, v in state.items()}
    out.mask = {k: v.clone() for k, v in mask.items()}
    out.model.load_state_dict(out.state)
    return out
