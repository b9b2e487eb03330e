"""The pruning registry: every method, the options it declares, and the three ways to call it.

* :func:`prune` works on a model and returns a mask (the library primitive);
* :func:`prune_from_config` reads the method and its options from a :class:`MaskConfig` (what the
  recipes call when they prune at initialisation);
* :func:`prune_checkpoint` prunes a saved checkpoint and returns a new in-memory checkpoint (what
  ``landscape prune`` calls).

Each :class:`PruningMethod` declares the keyword options its function accepts and the
:class:`MaskConfig` fields those options come from, so an option that does not belong to a method
is an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from training.checkpoint import Checkpoint, as_checkpoint, checkpoint_data
from training.config import MaskConfig
from training.data import DataBundle
from training.errors import ConfigError
from training.fields import check_ranges
from training.masks import Mask, apply_mask, check_mask_fits, config_prunable_names, density, full_mask, prunable_names
from training.pruning.densities import random_mask, smart_ratio_l2_scaling
from training.pruning.scorers import grasp_scores, magnitude_scores, snip_scores, synflow_prune
from training.pruning.thresholds import SCOPES, check_sparsity, threshold_mask


def _scored(score: Callable[..., dict]) -> Callable[..., Mask]:
    """A masking function from a keep-score function: score, then threshold."""

    def run(model, names, mask, sparsity, *, scope, data, **options):
        return threshold_mask(score(model, names, mask, data, **options), mask, sparsity, scope)

    return run


def _random(model, names, mask, sparsity, *, scope, data, **options):
    return random_mask(model, names, mask, sparsity, **options)


def _synflow(model, names, mask, sparsity, *, scope, data, **options):
    return synflow_prune(model, names, mask, sparsity, scope, data=data, **options)


@dataclass(frozen=True)
class PruningMethod:
    """One pruning method.

    ``run(model, names, mask, sparsity, *, scope, data, **options) -> Mask``. ``accepts``: the
    keyword options of ``run``. ``config``: maps those options to the :class:`MaskConfig` fields
    they are read from (``seed`` and ``input_shape`` come from the run, not from the mask config).
    ``needs_data``: scores on a labelled, class-balanced sample of ``mask.samples_per_class`` per class.
    """

    summary: str
    run: Callable[..., Mask]
    accepts: tuple[str, ...] = ()
    config: Mapping[str, str] = dataclasses.field(default_factory=dict)
    needs_data: bool = False

    @property
    def config_fields(self) -> tuple[str, ...]:
        """The :class:`MaskConfig` fields this method reads (besides method, sparsity and the prunable set)."""
        extra = ("scope",) if self.run is not _random else ("smart_ratio_scaling",)
        return (*extra, *self.config.values(), *(("samples_per_class",) if self.needs_data else ()))


METHODS: dict[str, PruningMethod] = {
    "random": PruningMethod(
        "exact counts per layer, densities from a distribution (uniform, erk, er-balanced, smart-ratio)",
        _random,
        accepts=("distribution", "variant", "erk", "generator", "l2_scaling", "linear_keep_ratio"),
        config={"distribution": "distribution", "variant": "smart_ratio_variant", "erk": "erk"},
        # l2_scaling comes from mask.smart_ratio_scaling and the model (see prune_from_config)
    ),
    "magnitude": PruningMethod("|w|", _scored(magnitude_scores)),
    "snip": PruningMethod(
        "|w * dL/dw| on a labelled sample (Lee et al. 2019)", _scored(snip_scores), ("bn_mode",), {}, True
    ),
    "grasp": PruningMethod(
        "removes the largest -w * Hg (Wang et al. 2020)",
        _scored(grasp_scores),
        accepts=("temperature", "reinit_last", "bn_mode", "seed"),
        config={"temperature": "grasp_temperature"},
        needs_data=True,
    ),
    "synflow": PruningMethod(
        "iterative synaptic flow on an all-ones input (Tanaka et al. 2020)",
        _synflow,
        accepts=("rounds", "float64", "input_shape"),
        config={"rounds": "synflow_rounds", "float64": "synflow_float64"},
    ),
}


def _method(name: str) -> PruningMethod:
    if name not in METHODS:
        raise ConfigError(f"unknown pruning method {name!r}; choose from: {', '.join(METHODS)}")
    return METHODS[name]


def prune(
    model: nn.Module,
    method: str,
    sparsity: float,
    data: Iterable | None = None,
    mask: Mapping[str, torch.Tensor] | None = None,
    scope: str = "global",
    names: Sequence[str] | None = None,
    **options: Any,
) -> Mask:
    """Mask over the prunable parameters of ``model`` at ``sparsity`` (fraction of all prunable
    weights that are zero), by ``method`` in :data:`METHODS`.

    Conventions: an existing ``mask`` is respected (its pruned weights stay pruned, and ``sparsity``
    counts them); ``scope`` is ``global`` or ``layerwise`` thresholding (``random`` ignores it: its
    layer densities come from ``distribution``). ``options`` are the method's declared options
    (e.g. ``distribution`` and ``generator`` for random, ``rounds``/``float64``/``input_shape`` for
    synflow, ``temperature`` for grasp); any other keyword is an error. ``model`` is never modified;
    a parameter holding NaN or infinite values is refused (:class:`ConfigError`).
    """
    entry = _method(method)
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; choose from: {', '.join(SCOPES)}")
    unknown = sorted(set(options) - set(entry.accepts))
    if unknown:
        takes = ", ".join(entry.accepts) or "no options"
        raise ConfigError(f"pruning method {method} has no option {unknown[0]!r}; it takes: {takes}")
    if entry.needs_data and data is None:
        raise ConfigError(f"pruning method {method} needs labelled data")
    params = dict(model.named_parameters())
    if mask is not None:
        check_mask_fits(mask, params)
    for name, p in params.items():  # a NaN would rank arbitrarily and survive pruning as a kept weight
        if not bool(torch.isfinite(p).all()):
            raise ConfigError(f"model parameter {name} has NaN or infinite values; refusing to prune it", param="model")
    if names is None:
        names = list(mask) if mask is not None else prunable_names(model)
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ConfigError(f"names includes a parameter the model does not have: {unknown[0]}", param="names")
    current = {n: m.clone().cpu() for n, m in mask.items()} if mask is not None else full_mask(model, list(names))
    return entry.run(model, names, current, sparsity, scope=scope, data=data, **options)


def prune_from_config(
    model: nn.Module,
    cfg: MaskConfig,
    sparsity: float,
    *,
    seed: int,
    data: DataBundle | None = None,
    input_shape: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    mask: Mapping[str, torch.Tensor] | None = None,
    device: torch.device | str | None = None,
) -> Mask:
    """Prune ``model`` with ``cfg.method`` and the options ``cfg`` holds, at ``sparsity``.

    ``seed`` seeds every random draw: the random mask, the labelled sample SNIP and GraSP score on
    (``cfg.samples_per_class`` per class from ``data``'s unaugmented training split) and GraSP's
    re-initialised last layer. ``input_shape`` (SynFlow's all-ones input) defaults to ``data``'s.
    ``cfg.method == "none"`` returns the full mask.
    """
    if names is None:
        names = config_prunable_names(model, cfg)
    if cfg.method == "none":
        return full_mask(model, list(names))
    entry = _method(cfg.method)
    options: dict[str, Any] = {opt: getattr(cfg, field) for opt, field in entry.config.items()}
    if "generator" in entry.accepts:
        options["generator"] = torch.Generator().manual_seed(seed)
    if "l2_scaling" in entry.accepts:
        options["l2_scaling"] = smart_ratio_l2_scaling(model, cfg.smart_ratio_scaling)
    if "seed" in entry.accepts:
        options["seed"] = seed
    if "input_shape" in entry.accepts:
        if input_shape is None and data is None:
            raise ConfigError(f"pruning method {cfg.method} needs the input shape (or the data)")
        options["input_shape"] = tuple(input_shape if input_shape is not None else data.input_shape)
    scoring = None
    if entry.needs_data:
        if data is None:
            raise ConfigError(f"pruning method {cfg.method} needs labelled data")
        dev = device if device is not None else next(model.parameters()).device
        sample = data.labelled_sample(cfg.samples_per_class, torch.Generator().manual_seed(seed))
        scoring = [(x.to(dev), y.to(dev)) for x, y in sample]
    return prune(model, cfg.method, sparsity, data=scoring, mask=mask, scope=cfg.scope, names=names, **options)


def prune_options(method: str, sparsity: float, **options: Any) -> MaskConfig:
    """The :class:`MaskConfig` of pruning with ``method`` to ``sparsity`` with ``options``, checked
    without touching a checkpoint or data: unknown methods and options the method does not declare are
    errors, and so are values out of range (``samples_per_class`` 0 would score on no data)."""
    allowed = set(_method(method).config_fields)
    unknown = sorted(set(options) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "no options"
        raise ConfigError(f"pruning method {method} has no option {unknown[0]!r}; it takes: {takes}")
    cfg = MaskConfig(method=method, sparsity=sparsity, **options)
    check_ranges(cfg, "mask.")
    return cfg


def prune_checkpoint(
    source: Checkpoint | str | os.PathLike,
    method: str,
    sparsity: float,
    *,
    seed: int = 0,
    data: DataBundle | None = None,
    **options: Any,
) -> Checkpoint:
    """Prune a checkpoint's weights with ``method`` to ``sparsity``; its existing mask is respected.

    ``options`` are :class:`MaskConfig` fields the method declares (``scope``, ``distribution``,
    ``samples_per_class``, ``synflow_rounds``, ...; see :attr:`PruningMethod.config_fields`).
    ``data`` (SNIP and GraSP) defaults to the data the checkpoint was trained on. Returns a new
    in-memory :class:`Checkpoint` whose pruned weights are exact zeros and whose meta records the
    new sparsity and where it was pruned from; the source is not changed.
    """
    entry = _method(method)
    cfg = prune_options(method, sparsity, **options)
    ckpt = as_checkpoint(source)
    if entry.needs_data and data is None:
        data = checkpoint_data(ckpt)
    model = ckpt.model
    shape = ckpt.meta.get("model_kwargs", {}).get("input_shape")
    mask = prune_from_config(
        model, cfg, sparsity, seed=seed, data=data, input_shape=shape, mask=ckpt.mask, names=list(ckpt.mask)
    )
    pruned = ckpt.clone()
    apply_mask(pruned.model, mask)
    pruned.mask = mask
    pruned.state = {k: v.detach().clone() for k, v in pruned.model.state_dict().items()}
    pruned.meta.update(
        sparsity=1.0 - density(mask),
        pruned_from={
            "path": str(ckpt.path) if ckpt.path else None,
            "sha256": ckpt.sha256,
            "method": method,
            "scope": cfg.scope,
        },
    )
    pruned.path = pruned.sha256 = None
    return pruned
