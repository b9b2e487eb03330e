"""What every analysis command does with ``--model``, ``--model-arg``, ``--mask``, ``--prefix``,
``--data``, ``--data-arg`` and ``--loss``: load the checkpoints through the loading layer
(:mod:`landscape.sources`) and build the splits the analysis reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.sources import as_source, data_from_spec, load, parse_args
from training.checkpoint import Checkpoint, checkpoint_bundle
from training.errors import DataError, UserError


@dataclass(frozen=True)
class SourceOptions:
    """The loading options of one command line."""

    model: str | None = None
    model_args: tuple[str, ...] = ()
    mask: str = "auto"
    prefix: str | None = None
    data: str | None = None
    data_args: tuple[str, ...] = ()
    data_root: str | None = None
    loss: str = "cross-entropy"
    samples: int | None = None
    samples_seed: int = 0

    def load(self, path: Path) -> Checkpoint:
        """The checkpoint at ``path``, loaded with these options and checked as analyses need it."""
        ckpt = load(
            path, model=self.model, model_args=parse_args(list(self.model_args)), mask=self.mask, prefix=self.prefix
        )
        return as_source(ckpt)

    def data_splits(self, batch_size: int) -> dict[str, Iterable]:
        """Every split of ``--data`` (no checkpoint to fall back on): the callable's, or a registry
        dataset's unshuffled, unaugmented ``train`` and ``test``."""
        if self.data is None:
            raise UserError("checkpoints from elsewhere need --data: a registry name or package.module:callable")
        if ":" in self.data:
            return data_from_spec(self.data, parse_args(list(self.data_args), "--data-arg"), batch_size)
        bundle = self._registry_bundle()
        return {s: bundle.eval_loader(s, batch_size) for s in ("train", "test")}

    def check_bn_data(self, train: Any, bn: str, ckpt: Checkpoint) -> None:
        """Refuse BatchNorm recalibration without a training split (never on the evaluation split)."""
        from landscape.connectivity.interpolate import has_batchnorm

        if train is None and bn == "recalibrate" and has_batchnorm(ckpt.model):
            raise DataError(
                f"data {self.data!r} has no train split to recalibrate BatchNorm on; return "
                "{'train': ..., 'test': ...} or pass --bn none"
            )

    def loss_fn(self) -> str | None:
        """The ``loss_fn`` the library functions take (``None`` for cross-entropy)."""
        return None if self.loss == "cross-entropy" else self.loss

    def splits(self, ckpt: Checkpoint, names: Sequence[str], batch_size: int) -> tuple[dict[str, Iterable], Any]:
        """``({split: batches} for ``names``, training batches or None)``: from ``--data
        package.module:callable``, else from the registry dataset named by ``--data`` or recorded in
        the checkpoint (a file from elsewhere records none)."""
        if self.data is not None and ":" in self.data:
            if self.samples is not None:
                raise UserError("--samples works with registry datasets; subsample in your data callable instead")
            given = data_from_spec(self.data, parse_args(list(self.data_args), "--data-arg"), batch_size)
            if set(given) == {"data"}:
                return {"data": given["data"]}, None
            missing = [n for n in names if n not in given]
            if missing:
                raise DataError(
                    f"data {self.data!r} has no split {missing[0]} (it returned {', '.join(given)}); "
                    "return a mapping with train and test splits, or choose --split"
                )
            return {n: given[n] for n in names}, given.get("train")
        if self.data_args:
            raise UserError("--data-arg is for --data package.module:callable")
        if ckpt.meta.get("dataset") is None:  # a file from elsewhere records no data
            if self.data is None:
                raise DataError(
                    f"{ckpt.path} records no dataset: pass --data with a registry name or package.module:callable"
                )
            bundle = self._registry_bundle()
        else:
            bundle = checkpoint_bundle(
                ckpt, dataset=self.data, root=self.data_root, samples=self.samples, samples_seed=self.samples_seed
            )
        return {s: bundle.eval_loader(s, batch_size) for s in names}, bundle.eval_loader("train", batch_size)

    def _registry_bundle(self) -> Any:
        """The registry dataset ``--data`` names (``--samples``: its class-balanced subset)."""
        from training.checkpoint import sample_bundle
        from training.config import DataConfig
        from training.data import load_data

        bundle = load_data(DataConfig(name=self.data, root=self.data_root))
        return bundle if self.samples is None else sample_bundle(bundle, self.samples, seed=self.samples_seed)
