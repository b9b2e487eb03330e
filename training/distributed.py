"""Distributed data-parallel training (torchrun), and the performance options of the training step.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank builds the same model and mask from the seed; the
mask is then broadcast from rank 0 and a checksum of it is compared across ranks (a mismatch is an
error). Each global batch of the seeded loader is split across ranks (rank r takes samples
r, r + W, …), gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel`, so the
update equals single-process training on the same global batch (exactly so without BatchNorm,
whose statistics are per rank). Metrics are all-reduced; only rank 0 writes files. Backend: NCCL
on GPUs, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn

from training.errors import ConfigError


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0, the only writer."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun describes in the environment (no-op for one process)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not tdist.is_initialized():
            tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            torch.cuda.set_device(local)
        return cls(tdist.get_rank(), tdist.get_world_size(), local)

    def device(self, device: torch.device) -> torch.device:
        """The rank's own GPU when training on CUDA."""
        return torch.device("cuda", self.local_rank) if (self.enabled and device.type == "cuda") else device

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.enabled:
            tdist.barrier()

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a global batch."""
        if not self.enabled:
            return x, y
        return x[self.rank :: self.world], y[self.rank :: self.world]

    def all_reduce(self, *tensors: torch.Tensor) -> None:
        """Sum ``tensors`` over ranks, in place."""
        if self.enabled:
            for t in tensors:
                tdist.all_reduce(t)

    def sync_mask(self, mask: Mapping[str, torch.Tensor], device: torch.device) -> str:
        """Broadcast ``mask`` from rank 0 in place, then check that every rank holds the same one.
        Returns its checksum (sha256 prefix)."""
        if self.enabled:
            for m in mask.values():
                buf = m.to(device=device, dtype=torch.uint8)
                tdist.broadcast(buf, src=0)
                m.copy_(buf.bool().cpu())
        return self.check_same_mask(mask, device, "after broadcast")

    def check_same_mask(self, mask: Mapping[str, torch.Tensor], device: torch.device, when: str = "") -> str:
        """The checksum (sha256 prefix) of ``mask``; distributed, every rank must hold the same one (a mask
        that changes during training is computed on every rank from the same all-reduced gradients)."""
        digest = hashlib.sha256()
        for name in sorted(mask):
            digest.update(name.encode())
            digest.update(mask[name].cpu().numpy().tobytes())
        checksum = digest.hexdigest()[:16]
        if self.enabled:
            mine = torch.tensor([int(checksum, 16) >> 1], dtype=torch.int64, device=device)
            everyone = [torch.zeros_like(mine) for _ in range(self.world)]
            tdist.all_gather(everyone, mine)
            if len({int(t) for t in everyone}) != 1:
                raise ConfigError(f"masks differ across ranks {when}".strip())
        return checksum

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``DistributedDataParallel(model)`` when distributed, else ``model``."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def prepare_for_speed(model: nn.Module, channels_last: bool, compile_model: bool) -> nn.Module:
    """Optionally switch 4-D conv models to channels_last memory format and ``torch.compile`` the
    forward. Returns the module to call in the training loop (parameters are shared with ``model``)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile_model else model


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def autocast(device: torch.device, amp: str) -> Iterator[None]:
    """Mixed precision for the training forward pass (``none``, ``bf16`` or ``fp16``)."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f"unknown --amp {amp!r}; choose from: {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
