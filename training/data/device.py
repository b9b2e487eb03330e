"""The device-resident loader: batches gathered, augmented and normalised with batched tensor operations.

A split lives as one tensor on the training device (uint8 images where the source is uint8); each batch
is one ``index_select`` of that tensor, then, for images, one gather that applies every sample's random
crop and horizontal flip at once, then the normalisation in place. Nothing runs per sample in Python,
which is what lets a GPU be fed at the rate of a few-millisecond ResNet-20 step (the approach of the
fast CIFAR trainers airbench and hlb-CIFAR10; TurboPrune gets there with FFCV).

Randomness: the order of an epoch is ``randperm(n)`` of a CPU generator seeded with the loader's seed,
and the crop offsets and flips are drawn from the same generator right after it, one per position in
that order. The trainer passes ``derive_seed(run seed, "order", global epoch)``, so an epoch's data
are a function of (seed, global epoch) only: a resumed run sees the same batches, and a run sees the
same batches on CPU and on CUDA (the draws are made on the CPU and copied to the device once per epoch).

Exactness: for the same offsets and flip decisions, :meth:`ImageTransform.apply` returns bit for bit what
torchvision's ``RandomCrop(size, padding)``, ``RandomHorizontalFlip``, ``ToTensor`` and ``Normalize``
return for each image (the same float32 operations in the same order; tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ImageTransform:
    """How uint8 images become model inputs: an optional random crop after ``padding`` pixels of zero
    padding on each side (crop size = image size; 0: no crop), an optional horizontal flip with
    probability 1/2, then ``ToTensor`` (divide by 255) and ``Normalize(mean, std)`` per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    padding: int = 0
    flip: bool = False

    @property
    def augments(self) -> bool:
        """Whether the transform is random."""
        return self.padding > 0 or self.flip

    def plain(self) -> ImageTransform:
        """The same normalisation without augmentation."""
        return ImageTransform(self.mean, self.std)

    def torchvision(self, size: tuple[int, int]) -> Any:
        """The equivalent torchvision pipeline for PIL images of ``size`` (height, width): the ``torch``
        loader's per-sample path."""
        from torchvision import transforms as T

        steps: list[Any] = []
        if self.padding:
            steps.append(T.RandomCrop(size, padding=self.padding))
        if self.flip:
            steps.append(T.RandomHorizontalFlip())
        return T.Compose([*steps, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Random ``(offsets, flips)`` for ``n`` images: offsets ``(n, 2)`` int64 (top, left) uniform in
        ``[0, 2 * padding]`` (``None`` without a crop), flips ``(n,)`` bool with probability 1/2
        (``None`` without flipping). Drawn on ``generator`` (a CPU generator)."""
        offsets = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=generator) if self.padding else None
        flips = torch.randint(0, 2, (n,), generator=generator).bool() if self.flip else None
        return offsets, flips

    def apply(
        self, images: torch.Tensor, offsets: torch.Tensor | None = None, flips: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalised float32 ``(B, C, H, W)`` inputs from uint8 ``(B, H, W, C)`` images, each cropped at
        ``offsets[b]`` from its zero-padded copy and flipped where ``flips[b]`` (both optional)."""
        b, h, w, c = images.shape
        device = images.device
        if offsets is not None and self.padding:
            p = self.padding
            hp, wp = h + 2 * p, w + 2 * p
            padded = images.new_zeros((b, hp, wp, c))
            padded[:, p : p + h, p : p + w] = images
            offsets = offsets.to(device)
            rows = offsets[:, :1] + torch.arange(h, device=device)  # (B, H) rows of the padded image
            cols = offsets[:, 1:] + torch.arange(w, device=device)  # (B, W)
            if flips is not None:  # the flip of the crop reads its columns right to left
                cols = torch.where(flips.to(device)[:, None], cols.flip(1), cols)
            base = torch.arange(b, device=device)[:, None, None] * (hp * wp)
            flat = (base + rows[:, :, None] * wp + cols[:, None, :]).reshape(-1)
            images = padded.view(b * hp * wp, c).index_select(0, flat).view(b, h, w, c)
        elif flips is not None:
            images = torch.where(flips.to(device)[:, None, None, None], images.flip(2), images)
        out = torch.empty((b, c, h, w), dtype=torch.float32, device=device)
        out.copy_(images.permute(0, 3, 1, 2))  # uint8 -> float32 is exact
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=device).view(1, c, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=device).view(1, c, 1, 1)
        # ToTensor, then Normalize: the same ops in the same order. 255 is a tensor on the device, not a
        # Python number: CUDA divides by a CPU scalar as a multiplication by its reciprocal (1 ulp off).
        scale = torch.full((), 255.0, dtype=torch.float32, device=device)
        return out.div_(scale).sub_(mean).div_(std)


class TensorLoader:
    """Batches of in-memory tensors in a seeded order, gathered where the tensors live.

    ``x`` is either model inputs (``transform`` None: batches are ``x[idx]`` as they are) or uint8
    ``(N, H, W, C)`` images that ``transform`` (an :class:`ImageTransform`) augments and normalises per
    batch. Iterating yields ``(inputs, targets)`` on the tensors' device. With ``shuffle`` the order is
    ``randperm(n, generator=Generator().manual_seed(seed))``; the augmentation draws follow on the same
    generator (see the module docstring). Written by hand rather than using ``DataLoader(TensorDataset)``
    because there a batch costs a Python call per sample; here it is one fancy-indexing call.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        transform: ImageTransform | None = None,
    ):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.transform = transform
        n = len(y)
        # A final batch of one sample would break BatchNorm in train mode; drop it when shuffling.
        self.drop_last = shuffle and n % batch_size == 1 and n > 1

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def plan(self) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The epoch's ``(order, offsets, flips)`` on the CPU (each ``None`` where not random)."""
        generator = torch.Generator().manual_seed(self.seed)
        n = len(self.y)
        order = torch.randperm(n, generator=generator) if self.shuffle else None
        offsets = flips = None
        if self.transform is not None and self.transform.augments:
            offsets, flips = self.transform.draw(n, generator)
        return order, offsets, flips

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.y.device
        order, offsets, flips = (None if t is None else t.to(device) for t in self.plan())
        bs = self.batch_size
        for b in range(len(self)):
            sl = slice(b * bs, (b + 1) * bs)
            if order is None:
                x, y = self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                x, y = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self.transform is not None:
                x = self.transform.apply(
                    x, None if offsets is None else offsets[sl], None if flips is None else flips[sl]
                )
            yield x, y
