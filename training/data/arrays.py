"""In-memory image splits: uint8 image tensors with labels and the transform that makes them inputs."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from training.data.device import ImageTransform
from training.errors import DataError


class ImageArrayDataset(Dataset):
    """uint8 images ``(N, H, W, C)`` and int64 labels ``(N,)`` held as tensors, plus the
    :class:`~training.data.device.ImageTransform` that turns them into inputs.

    Both loaders read it: the device loader (:class:`~training.data.device.TensorLoader`) gathers and
    transforms whole batches of :attr:`images`; the ``torch`` loader indexes it sample by sample, and
    ``dataset[i]`` returns ``(transform(PIL image), label)`` through the equivalent torchvision pipeline.
    Views that share the images (augmented training, plain training, corrupted copies) share the tensor.
    """

    def __init__(self, images: Any, labels: Any, transform: ImageTransform):
        self.images = torch.as_tensor(images)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or len(self.images) != len(self.labels):
            raise DataError(
                f"image arrays must be uint8 (N, H, W, C) with N labels, got {tuple(self.images.shape)} "
                f"{self.images.dtype} and {len(self.labels)} labels"
            )
        self.transform = transform
        self._pipeline: Any = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        if self._pipeline is None:
            self._pipeline = self.transform.torchvision(tuple(self.images.shape[1:3]))
        array = self.images[i].cpu().numpy()
        img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        return self._pipeline(img), int(self.labels[i])

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: rebuild the torchvision pipeline there
        return {**self.__dict__, "_pipeline": None}

    def replace(self, **changes: Any) -> ImageArrayDataset:
        """A copy with some of ``images``, ``labels``, ``transform`` replaced (the rest shared)."""
        fields = {"images": self.images, "labels": self.labels, "transform": self.transform, **changes}
        return ImageArrayDataset(**fields)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``idx`` as one batch ``(inputs, labels)``, unaugmented."""
        idx = idx.to(self.images.device)
        return self.transform.plain().apply(self.images.index_select(0, idx)), self.labels.index_select(0, idx)
