"""Where batch analysis gets a run's checkpoints and data: this toolkit's run folders (the data named in
their config) or checkpoints from elsewhere (a model spec and data the user gives).

A :class:`RunSource` loads a checkpoint by path (the last few are kept in memory: consecutive pieces
share one) and hands out the evaluation splits, the training batches for BatchNorm recalibration and
the unaugmented training batches for curvature. ``key`` holds what identifies a foreign source in the
cache keys (empty for run folders, so their caches stay valid).
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.sources import as_source, check_batches, load, resolve_loss
from training.checkpoint import Checkpoint
from training.config import TrainConfig
from training.data import DataBundle, load_data
from training.errors import DataError

KEEP = 3  # checkpoints kept loaded: a consecutive LMC piece and the signs against init share them


@dataclass
class RunSource:
    """One run's loader and data (see the module doc)."""

    loader: Callable[[Path], Checkpoint]
    splits: Callable[[tuple[str, ...]], dict[str, Iterable]]
    bn_data: Callable[[], Iterable | None]
    train: Callable[[int], Iterable]
    loss_fn: Any = None
    key: dict[str, Any] = field(default_factory=dict)
    _loaded: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def load(self, path: Path) -> Checkpoint:
        if path not in self._loaded:
            self._loaded[path] = self.loader(path)
            while len(self._loaded) > KEEP:
                self._loaded.popitem(last=False)
        return self._loaded[path]


def native_source(cfg: TrainConfig, data_root: str | None, bundles: dict[str, DataBundle]) -> RunSource:
    """A run folder of this toolkit: checkpoints in its format, data from its config (loaded once per
    data config across runs, in ``bundles``)."""

    def bundle() -> DataBundle:
        data_cfg = dataclasses.replace(cfg.data, root=data_root) if data_root else cfg.data
        key = json.dumps(dataclasses.asdict(data_cfg), sort_keys=True, default=str)
        if key not in bundles:
            bundles[key] = load_data(data_cfg)
        return bundles[key]

    size = cfg.data.eval_batch_size
    return RunSource(
        loader=as_source,
        splits=lambda names: {s: bundle().eval_loader(s, size) for s in names},
        bn_data=lambda: bundle().eval_loader("train", size),
        train=lambda batch_size: bundle().eval_loader("train", batch_size),
    )


def foreign_source(
    model: str,
    model_args: Mapping[str, Any] | None,
    mask: str,
    data: Mapping[str, Iterable] | None,
    loss_fn: Any = None,
    data_name: str = "",
) -> RunSource:
    """Checkpoints from elsewhere, loaded with ``model``/``model_args``/``mask``
    (:func:`landscape.sources.load`); ``data`` is ``{split: batches}`` (``train`` for BatchNorm
    recalibration and curvature). ``data_name`` identifies the data in the cache keys."""
    splits = dict(data or {})
    for name, split in splits.items():
        check_batches(split, f"data split {name}")
    _, loss_name = resolve_loss(loss_fn)

    def chosen(names: tuple[str, ...]) -> dict[str, Iterable]:
        missing = [n for n in names if n not in splits]
        if missing:
            given = ", ".join(splits) or "none"
            raise DataError(f"the data has no split {missing[0]} (given: {given})", param="data")
        return {n: splits[n] for n in names}

    def train(batch_size: int) -> Iterable:
        return chosen(("train",))["train"]

    key = {"model": model, "model_args": dict(model_args or {}), "mask": str(mask), "loss": loss_name,
           "data": data_name}  # fmt: skip
    return RunSource(
        loader=lambda path: as_source(load(path, model=model, model_args=model_args, mask=mask)),
        splits=chosen,
        bn_data=lambda: splits.get("train"),
        train=train,
        loss_fn=loss_fn,
        key=key,
    )
