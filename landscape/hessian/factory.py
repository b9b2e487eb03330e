"""Building the curvature operator the API functions work on, and its parameter groups.

``operator`` names the curvature matrix of the mean cross-entropy over all of the data (eval mode):
``"hessian"`` (:class:`~landscape.hessian.operators.HessianOperator`), ``"ggn"``
(:class:`~landscape.hessian.ggn.GGNOperator`), ``"fisher"`` (the empirical Fisher) and ``"fisher-mc"``
(the Monte-Carlo Fisher, ``mc_samples`` labels per sample drawn with ``seed``;
:class:`~landscape.hessian.fisher.FisherOperator`). All share the subspace, data weighting and
parameter selection of :class:`~landscape.hessian.subspace.ModelOperator`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from landscape.hessian.fisher import FisherOperator
from landscape.hessian.ggn import GGNOperator
from landscape.hessian.groups import Params, parameter_groups
from landscape.hessian.operators import HessianOperator
from landscape.hessian.subspace import ModelOperator
from landscape.results import provenance
from landscape.sources import as_source, resolve_loss
from training.checkpoint import Checkpoint
from training.errors import UserError
from training.evaluate import resolve_device

OPERATORS = ("hessian", "ggn", "fisher", "fisher-mc")
LOSS = "mean cross-entropy over all of data, eval mode"
UNITS = "curvature of the mean loss (nats per squared parameter unit)"


def make_operator(
    model: Any,
    data: Iterable,
    *,
    operator: str = "hessian",
    mask: Mapping[str, torch.Tensor] | None = None,
    subspace: str | None = None,
    device: Any = None,
    seed: int = 0,
    mc_samples: int = 1,
    loss_fn: Any = None,
    **options: Any,
) -> tuple[ModelOperator, nn.Module, str, dict[str, Any]]:
    """The operator for a module, checkpoint or path (``mask`` defaults to the checkpoint's; ``subspace`` to
    ``mask`` when there is a mask, else ``dense``), the module, the subspace and provenance attrs."""
    if operator not in OPERATORS:
        raise UserError(f"unknown operator {operator!r}; choose from: {', '.join(OPERATORS)}", param="operator")
    fn, loss_name = resolve_loss(loss_fn)
    if fn is not None and operator != "hessian":
        raise UserError(
            f"the {operator} is implemented for cross-entropy; with loss {loss_name} use operator hessian",
            param="operator",
        )
    attrs: dict[str, Any] = {"operator": operator}
    if fn is not None:
        attrs["loss"] = f"mean {loss_name} over all of data, eval mode"
        options["loss_fn"] = fn
    if isinstance(model, Checkpoint | str | os.PathLike):
        ckpt = as_source(model, param="model")
        attrs.update(provenance(checkpoint=ckpt))
        model = ckpt.model
        mask = ckpt.mask if mask is None else mask
    if subspace is None:
        subspace = "mask" if mask else "dense"
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    kwargs = {"mask": mask if subspace == "mask" else None, "subspace": subspace, "device": dev, **options}
    if operator == "hessian":
        op: ModelOperator = HessianOperator(model, data, **kwargs)
    elif operator == "ggn":
        op = GGNOperator(model, data, **kwargs)
    else:
        fisher = "empirical" if operator == "fisher" else "mc"
        op = FisherOperator(model, data, fisher=fisher, mc_samples=mc_samples, seed=seed, **kwargs)
        if fisher == "mc":
            attrs["mc_samples"] = int(mc_samples)
    return op, model, subspace, attrs


def operator_groups(
    op: ModelOperator, *, per_layer: bool = False, params: Params | None = None
) -> tuple[list[tuple[str, ModelOperator]], bool]:
    """``[(label, sub-block operator)]`` and whether the result has a ``group`` dimension (False: the one
    entry is the whole operator, labelled ``"all"``)."""
    groups = parameter_groups(op.names, per_layer=per_layer, params=params)
    if groups is None:
        return [("all", op)], False
    return [(label, op.restrict(names)) for label, names in groups], True


def group_attrs(groups: list[tuple[str, ModelOperator]]) -> dict[str, str]:
    """``group_parameters``: JSON ``{label: [parameter names]}``."""
    return {"group_parameters": json.dumps({label: g.names for label, g in groups})}


def stack_groups(parts: list[xr.Dataset], labels: list[str], grouped: bool) -> xr.Dataset:
    """One Dataset from per-group Datasets: along a new ``group`` dimension, or the single one as it is."""
    if not grouped:
        return parts[0]
    ds = xr.concat(parts, dim="group", join="outer", combine_attrs="drop_conflicts")
    return ds.assign_coords(group=np.array(labels, dtype=object))
