"""Permutation alignment of two checkpoints (Ainsworth et al. 2023, "Git Re-Basin"), mask-aware.

:func:`align` returns checkpoint B with its hidden units permuted to match A. Masks, biases, BatchNorm
parameters and running statistics move with their units (:mod:`landscape.connectivity.permutation`), so B's
function and its sparsity pattern are unchanged. The permutation structure comes from the model's
declaration (:data:`training.models.PERMUTATIONS`).

Methods:

* ``"weight-matching"``: maximise ``Σ_k ⟨θ_A[k], P(θ_B)[k]⟩`` over the parameters the groups move
  (stored weights are masked, so pruned weights count as zeros) by coordinate descent: for one group
  at a time, with every other permutation fixed, the best permutation is a linear assignment
  (``scipy.optimize.linear_sum_assignment`` on a float64 cost matrix). It starts from one forward
  pass that matches each group on the entries whose other axes are already matched (a layer given
  its inputs; kept only if it beats the identity), then sweeps over the groups in a seeded random
  order until a sweep changes nothing (or ``max_sweeps``). A group's permutation changes only when
  the objective rises by more than a relative 1e-12, so the objective never decreases below the
  identity's. A group whose neighbours did not change since it was last solved is skipped.
* ``"activation-matching"``: for each group, the correlation between A's and B's activations on
  ``data`` (every declared activation module of the group, channels on dimension 1, statistics over
  samples and positions, summed over the modules), then one linear assignment maximising it.

The *permutation cost* reported is ``‖θ_A − P(θ_B)‖²`` over the parameters the groups move, before
(P = identity) and after alignment; it is the weight-matching objective up to constants.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from landscape.connectivity.permutation import (
    Permutation,
    example_inputs,
    expand,
    groups_of,
    identity,
    permute,
    permute_tensors,
    units_moved,
)
from landscape.sources import as_source
from training.checkpoint import Checkpoint, check_compatible
from training.errors import UserError
from training.evaluate import resolve_device
from training.models import PermutationGroup

ALIGN_METHODS = ("none", "weight-matching", "activation-matching")


@dataclass
class Alignment:
    """A permutation of B's units (``perms``, see :mod:`landscape.connectivity.permutation`) and its statistics:
    ``cost_before``/``cost_after`` (squared parameter distance to A), ``units_moved`` (fraction) and
    ``sweeps`` (coordinate-descent sweeps; 1 for activation matching, 0 for none)."""

    method: str
    perms: Permutation
    cost_before: float
    cost_after: float
    units_moved: float
    sweeps: int
    groups: list = dataclasses.field(default_factory=list, repr=False)  # the PermutationGroups permuted

    def summary(self) -> dict[str, float | int | str]:
        """The statistics as a JSON- and netCDF-friendly dict (keys prefixed ``align_``)."""
        return {
            "align_method": self.method,
            "align_cost_before": self.cost_before,
            "align_cost_after": self.cost_after,
            "align_units_moved": self.units_moved,
            "align_sweeps": self.sweeps,
        }


def _parameter_keys(ckpt: Checkpoint, groups: list[PermutationGroup]) -> list[str]:
    params = {n for n, _ in ckpt.model.named_parameters()}
    return sorted({key for g in groups for key, _, _ in g.entries if key in params})


def permutation_cost(
    a: Checkpoint, b: Checkpoint, groups: list[PermutationGroup] | None = None, perms: Permutation | None = None
) -> float:
    """``‖θ_A − P(θ_B)‖²`` over the parameters the groups move (P = identity when ``perms`` is None)."""
    groups = groups_of(a) if groups is None else groups
    keys = _parameter_keys(a, groups)
    state_b = b.state if perms is None else permute_tensors({k: b.state[k] for k in keys}, groups, perms)
    return float(sum(((a.state[k].double() - state_b[k].double()) ** 2).sum() for k in keys))


def _lap(cost: np.ndarray) -> np.ndarray:
    rows, cols = linear_sum_assignment(cost, maximize=True)
    return cols[np.argsort(rows)]


def _objective(wa: dict, wb: dict, groups: list[PermutationGroup], perms: Permutation, keys: set[str]) -> float:
    permuted = permute_tensors(wb, groups, perms)
    return float(sum((wa[k] * permuted[k]).sum() for k in keys))


def weight_matching(
    a: Checkpoint,
    b: Checkpoint,
    groups: list[PermutationGroup] | None = None,
    *,
    max_sweeps: int = 100,
    seed: int = 0,
) -> tuple[Permutation, int]:
    """Permutations of B's units maximising ``Σ_k ⟨θ_A[k], P(θ_B)[k]⟩`` (see the module doc).
    Returns ``(perms, sweeps)``."""
    groups = groups_of(a) if groups is None else groups
    keys = set(_parameter_keys(a, groups))
    wa = {k: a.state[k].detach().double().cpu() for k in keys}
    wb = {k: b.state[k].detach().double().cpu() for k in keys}
    axes: dict[str, dict[int, tuple[str, int]]] = {}
    for g in groups:
        for key, axis, block in g.entries:
            if key in keys:
                axes.setdefault(key, {})[axis] = (g.name, block)
    perms = identity(groups)
    flat_a = {  # θ_A with the group's axis first, one row per unit, computed once
        (g.name, key): wa[key].movedim(axis, 0).reshape(g.size, -1)
        for g in groups
        for key, axis, _ in g.entries
        if key in keys
    }
    deps = {
        g.name: sorted({n for k, ax, _ in g.entries if k in keys for a2, (n, _) in axes[k].items() if a2 != ax})
        for g in groups
    }
    version = dict.fromkeys(perms, 0)
    seen: dict[str, tuple[int, ...]] = {}
    rng = np.random.default_rng(seed)

    def cost_of(g: PermutationGroup, settled: set[str] | None) -> np.ndarray:
        cost = torch.zeros(g.size, g.size, dtype=torch.float64)
        for key, axis, _ in g.entries:
            others = {a2: nb for a2, nb in axes.get(key, {}).items() if a2 != axis}
            if key not in keys or (settled is not None and any(n not in settled for n, _ in others.values())):
                continue
            other = wb[key]
            for ax2, (name2, block2) in others.items():
                other = other.index_select(ax2, expand(perms[name2], block2))
            cost += flat_a[g.name, key] @ other.movedim(axis, 0).reshape(g.size, -1).T
        return cost.numpy()

    # Sweep 0, in forward order: match each group on the entries whose other axes are already matched
    # (a layer given its inputs). It can lower the objective, so it is kept only if it beats identity.
    settled: set[str] = set()
    for g in groups:
        perms[g.name] = torch.from_numpy(_lap(cost_of(g, settled))).long()
        settled.add(g.name)
    if _objective(wa, wb, groups, perms, keys) < _objective(wa, wb, groups, identity(groups), keys):
        perms = identity(groups)
    sweeps = 0
    for sweep in range(max_sweeps):
        sweeps = sweep + 1
        changed = False
        for gi in rng.permutation(len(groups)):
            g = groups[gi]
            state = tuple(version[n] for n in deps[g.name])
            if seen.get(g.name) == state:  # same cost matrix as last time: the same optimum
                continue
            seen[g.name] = state
            c = cost_of(g, None)
            new = _lap(c)
            old = perms[g.name].numpy()
            rows = np.arange(g.size)
            gain = c[rows, new].sum() - c[rows, old].sum()
            if gain > 1e-12 * max(1.0, abs(c[rows, old].sum())):
                perms[g.name] = torch.from_numpy(new).long()
                version[g.name] += 1
                changed = True
        if not changed:
            break
    return perms, sweeps


class _Recorder:
    """Forward hooks that hand each named module's output (channels on dim 1) to a callback."""

    def __init__(self, model: nn.Module, names: Iterable[str]):
        modules = dict(model.named_modules())
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if name in self.outputs:
                raise UserError(f"module {name} runs twice in one forward pass; it cannot mark a permutation group")
            self.outputs[name] = output

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1).reshape(-1, x.shape[1]).double()


@torch.no_grad()
def activation_matching(
    a: Checkpoint,
    b: Checkpoint,
    data: Iterable,
    groups: list[PermutationGroup] | None = None,
    *,
    batches: int | None = None,
    device: str | torch.device = "cpu",
) -> Permutation:
    """Permutations of B's units maximising the summed correlation of A's and B's activations on
    ``data`` (batches of ``(inputs, targets)``; at most ``batches`` of them), per group."""
    groups = groups_of(a) if groups is None else groups
    device = resolve_device(device)
    names = sorted({n for g in groups for n in g.activations})
    missing = [g.name for g in groups if not g.activations]
    if missing:
        raise UserError(
            f"permutation group {missing[0]} declares no activation, so activation matching cannot align it"
        )
    models = [copy.deepcopy(c.model).to(device).eval() for c in (a, b)]  # the callers' models stay as they are
    stats: dict[str, dict[str, torch.Tensor]] = {}
    for i, (x, _) in enumerate(data):
        if batches is not None and i >= batches:
            break
        outs = []
        for model in models:
            rec = _Recorder(model, names)
            try:
                model(x.to(device))
            finally:
                rec.close()
            outs.append(rec.outputs)
        for n in names:
            xa, xb = _channels_last(outs[0][n]), _channels_last(outs[1][n])
            new = {"n": xa.shape[0], "a": xa.sum(0), "b": xb.sum(0), "aa": (xa * xa).sum(0), "bb": (xb * xb).sum(0)}
            new["ab"] = xa.T @ xb
            stats[n] = new if n not in stats else {k: stats[n][k] + v for k, v in new.items()}
    if not stats:
        raise UserError("activation matching needs data: the data iterable is empty")
    perms: Permutation = {}
    for g in groups:
        corr = torch.zeros(g.size, g.size, dtype=torch.float64)
        for n in g.activations:
            s = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in stats[n].items()}
            mean_a, mean_b = s["a"] / s["n"], s["b"] / s["n"]
            std_a = (s["aa"] / s["n"] - mean_a**2).clamp_min(0).sqrt()
            std_b = (s["bb"] / s["n"] - mean_b**2).clamp_min(0).sqrt()
            cov = s["ab"] / s["n"] - torch.outer(mean_a, mean_b)
            corr += cov / (torch.outer(std_a, std_b) + 1e-12)
        perms[g.name] = torch.from_numpy(_lap(corr.numpy())).long()
    return perms


def find_alignment(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    method: str = "weight-matching",
    data: Iterable | None = None,
    *,
    max_sweeps: int = 100,
    seed: int = 0,
    batches: int | None = None,
    device: str | torch.device = "cpu",
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str = "auto",
) -> Alignment:
    """The permutation of B's units that aligns it to A, with its statistics (see :func:`align`)."""
    if method not in ALIGN_METHODS:
        raise UserError(f"align must be one of {', '.join(ALIGN_METHODS)}; got {method!r}", param="align")
    source = {"model": model, "model_args": model_args, "mask": mask}
    a, b = as_source(ckpt_a, param="ckpt_a", **source), as_source(ckpt_b, param="ckpt_b", **source)
    check_compatible(a, b)
    groups = groups_of(a, example_inputs(data))
    sweeps = 0
    if method == "weight-matching":
        perms, sweeps = weight_matching(a, b, groups, max_sweeps=max_sweeps, seed=seed)
    elif method == "activation-matching":
        if data is None:
            raise UserError("activation matching needs data (batches of inputs and targets)", param="data")
        perms, sweeps = activation_matching(a, b, data, groups, batches=batches, device=device), 1
    else:
        perms = identity(groups)
    before = permutation_cost(a, b, groups)
    after = permutation_cost(a, b, groups, perms)
    return Alignment(method, perms, before, after, units_moved(perms), sweeps, groups)


def align(
    ckpt_a: Checkpoint | str,
    ckpt_b: Checkpoint | str,
    method: str = "weight-matching",
    data: Iterable | None = None,
    *,
    max_sweeps: int = 100,
    seed: int = 0,
    batches: int | None = None,
    device: str | torch.device = "cpu",
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str = "auto",
) -> Checkpoint:
    """Checkpoint B with its hidden units permuted to match A (``method``: ``"weight-matching"``,
    ``"activation-matching"`` on ``data``, or ``"none"``); see the module doc.

    Masks, biases, BatchNorm parameters and running statistics move with the units, so the returned
    network computes the same function as B and keeps B's sparsity pattern. Its ``meta["alignment"]``
    holds :meth:`Alignment.summary`; path and sha256 are B's (the file it came from). Neither
    checkpoint is modified.
    """
    source = {"model": model, "model_args": model_args, "mask": mask}
    b = as_source(ckpt_b, param="ckpt_b", **source)
    result = find_alignment(
        ckpt_a, b, method, data, max_sweeps=max_sweeps, seed=seed, batches=batches, device=device, **source
    )
    out = permute(b, result.perms, result.groups)
    out.meta = {**out.meta, "alignment": result.summary()}
    return out
