"""BatchNorm recalibration: which data, in batches of which size, and the recalibration itself.

Recalibration resets every BatchNorm layer's running statistics and recomputes them in train mode
as a cumulative average over batches (``torch.optim.swa_utils.update_bn``, as dnn-mode-connectivity's
``update_bn``). That average weights every *batch* equally and each batch contributes its own
(unbiased) variance, so the result depends on how the samples are cut into batches. The batch size
is therefore fixed by the checkpoint, never by the loader that happens to carry the data: the
samples of ``bn_data`` are streamed in their order and re-cut into batches of the **training batch
size recorded in the checkpoint** (``meta["data_config"]["batch_size"]``), or of an explicit
``bn_batch_size``. A checkpoint from elsewhere records none; then :data:`DEFAULT_BN_BATCH_SIZE`
is used and the attrs say so. The same samples in the same order thus give bitwise-identical
statistics whatever the evaluation batch size. The last batch holds the remainder.

Which data: ``bn_data``, else a ``train`` split of the data being analysed; never the data being
evaluated (a split named ``test``), so a model with BatchNorm and neither is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from landscape.sources import check_batches
from training.checks import AT_LEAST_ONE, check_number
from training.errors import DataError, UserError

DEFAULT_BN_BATCH_SIZE = 128  # the toolkit's default training batch size (DataConfig.batch_size)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has any BatchNorm layer with running statistics."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules())


def rebatched(data: Iterable, batch_size: int) -> Iterator[torch.Tensor]:
    """The inputs of ``data`` (batches, or ``(inputs, ...)`` tuples) re-cut into consecutive batches of
    ``batch_size`` samples (the last one holds the remainder); targets are dropped. Written here
    because no library re-batches an arbitrary iterable of tensors without materialising it."""
    check_number(batch_size, "bn_batch_size", AT_LEAST_ONE)
    pending: list[torch.Tensor] = []
    held = 0
    for batch in data:
        inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
        if not isinstance(inputs, torch.Tensor) or inputs.dim() == 0:
            raise DataError(f"BatchNorm recalibration needs batches of input tensors, got {type(inputs).__name__}")
        pending.append(inputs)
        held += len(inputs)
        if held >= batch_size:
            joined = torch.cat(pending)
            cut = held - held % batch_size
            yield from joined[:cut].split(batch_size)
            pending, held = ([joined[cut:]] if held > cut else []), held - cut
    if held:
        yield torch.cat(pending)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    data: Iterable,
    device: torch.device,
    batches: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> int:
    """Reset BatchNorm running statistics and recompute them as a cumulative average over ``data``
    (re-cut into batches of ``batch_size`` samples when given; at most ``batches`` batches) in train
    mode; the model's mode is restored. RNG draws made while iterating ``data`` (augmentation) use a
    fixed ``seed`` and leave the caller's RNG untouched. Returns the number of samples used."""
    check_number(batches, "bn_batches", AT_LEAST_ONE)
    check_number(batch_size, "bn_batch_size", AT_LEAST_ONE)
    seen = [0, 0]  # batches, samples

    def counted(source: Iterable) -> Iterable:
        for batch in source:
            seen[0] += 1
            inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
            seen[1] += len(inputs)
            yield batch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        source = data if batch_size is None else rebatched(data, batch_size)
        source = source if batches is None else itertools.islice(source, batches)
        torch.optim.swa_utils.update_bn(counted(source), model, device=device)
    if not seen[0] and has_batchnorm(model):  # update_bn would have reset the statistics to mean 0, variance 1
        raise DataError("BatchNorm recalibration got no batches; give it training data")
    return seen[1]


def recalibration_data(
    splits: Mapping[str, Iterable], bn_data: Iterable | None, needed: bool
) -> tuple[Iterable | None, str]:
    """``(batches, where from)``: the data that recalibrates BatchNorm (and measures REPAIR's statistics):
    ``bn_data``, else the ``train`` split of ``splits``. Never the data being evaluated: when neither is
    given and the analysis ``needed`` them, a :class:`UserError` says what to pass."""
    if bn_data is not None:
        check_batches(bn_data, "bn_data")
        return bn_data, "bn_data"
    if "train" in splits:
        return splits["train"], "train"
    if needed:
        raise UserError(
            "recalibrating BatchNorm needs training data: pass bn_data (training batches) or a 'train' split "
            "in data, or bn='none'; the data being evaluated is never used for it",
            param="bn_data",
        )
    return None, "none"


def training_batch_size(meta: Mapping[str, Any]) -> int | None:
    """The training batch size a checkpoint's meta records (``None`` for a file from elsewhere)."""
    size = (meta.get("data_config") or {}).get("batch_size")
    return int(size) if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


@dataclass(frozen=True)
class Recalibration:
    """How an analysis recalibrates BatchNorm: ``data`` (``None``: it does not), where it came from,
    the batch size and where that came from (``given``, ``checkpoint`` or ``default``), and the cap
    on batches. :meth:`run` recalibrates a model; :meth:`attrs` records all of it."""

    data: Iterable | None
    data_from: str
    batch_size: int
    batch_size_from: str
    batches: int | None = None

    def run(self, model: nn.Module, device: torch.device) -> int:
        """Recalibrate ``model`` in place; the number of samples used."""
        return recalibrate_bn(model, self.data, device, self.batches, batch_size=self.batch_size)

    def attrs(self, used: bool, samples: int = 0) -> dict[str, Any]:
        """Result attrs: ``bn_data``, ``bn_samples``, ``bn_batch_size``, ``bn_batch_size_from``, ``bn_batches``."""
        return {
            "bn_data": self.data_from if used else "none",
            "bn_samples": int(samples) if used else 0,
            "bn_batch_size": self.batch_size if used else 0,
            "bn_batch_size_from": self.batch_size_from if used else "none",
            "bn_batches": -1 if self.batches is None else int(self.batches),
        }


def plan_recalibration(
    splits: Mapping[str, Iterable],
    bn_data: Iterable | None,
    needed: bool,
    meta: Mapping[str, Any],
    batch_size: int | None = None,
    batches: int | None = None,
) -> Recalibration:
    """The :class:`Recalibration` for a checkpoint with ``meta``: data as :func:`recalibration_data`,
    batches of ``batch_size`` if given, else the checkpoint's training batch size, else the default."""
    check_number(batch_size, "bn_batch_size", AT_LEAST_ONE)
    check_number(batches, "bn_batches", AT_LEAST_ONE)
    data, data_from = recalibration_data(splits, bn_data, needed)
    recorded = training_batch_size(meta)
    if batch_size is not None:
        size, size_from = int(batch_size), "given"
    elif recorded is not None:
        size, size_from = recorded, "checkpoint"
    else:
        size, size_from = DEFAULT_BN_BATCH_SIZE, "default"
    return Recalibration(data, data_from, size, size_from, batches)
