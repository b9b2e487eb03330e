"""Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test 28x28 grey images of 10 clothing classes.

The four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz``) are read from ``--data-root``, from its
``FashionMNIST/raw`` subfolder (torchvision's layout), or, when no root is given, from where the
Debian package ``dataset-fashion-mnist`` installs them (``/usr/share/datasets/fashion-mnist``).
Nothing is downloaded. The files are parsed by torchvision's IDX readers.

Normalisation: mean 0.2860, std 0.3530 (the training set's pixel statistics). Training augmentation
(``data.augment``): a random 28x28 crop after 4-pixel zero padding and a horizontal flip, as for CIFAR.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np

from training.config import DataConfig
from training.data.arrays import ImageArrayDataset
from training.data.bundle import DataBundle
from training.data.device import ImageTransform
from training.errors import DataError

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MEAN, STD = (0.2860,), (0.3530,)
HINT = "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or give --data-root"


def _root(cfg: DataConfig) -> Path:
    if cfg.root:
        root = Path(cfg.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist or is not a folder; {HINT}")
        return root
    if DEBIAN_ROOT.is_dir():
        return DEBIAN_ROOT
    raise DataError(f"fashion-mnist not found: no --data-root given and {DEBIAN_ROOT} does not exist; {HINT}")


def find_file(root: Path, name: str) -> Path:
    """``name`` or ``name.gz`` under ``root`` or ``root/FashionMNIST/raw``."""
    for folder in (root, root / "FashionMNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    names = ", ".join(n for pair in FILES.values() for n in pair)
    raise DataError(f"fashion-mnist not found: expected {names} (optionally .gz) in {root}; {HINT}")


def read_idx(path: Path, images: bool) -> np.ndarray:
    """An IDX file as a uint8 array: images (N, 28, 28) or labels (N,). Gzipped files are decompressed
    to a temporary file first, since torchvision's readers take a plain path."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if images else read_label_file
    try:
        if path.suffix == ".gz":
            with tempfile.TemporaryDirectory() as tmp:
                plain = Path(tmp) / path.stem
                plain.write_bytes(gzip.decompress(path.read_bytes()))
                tensor = reader(str(plain))
        else:
            tensor = reader(str(path))
    except (AssertionError, ValueError, TypeError, RuntimeError, OSError, EOFError, IndexError) as exc:
        raise DataError(f"{path} is not a readable IDX {'image' if images else 'label'} file ({exc})") from exc
    array = tensor.numpy().astype(np.uint8 if images else np.int64)
    if images and array.shape[1:] != (28, 28):
        raise DataError(f"{path}: expected 28x28 images, found shape {array.shape[1:]}")
    return array


def load_fashion_mnist(cfg: DataConfig) -> DataBundle:
    """Fashion-MNIST; inputs of shape ``(1, 28, 28)``, normalised; see the module docstring."""
    root = _root(cfg)
    arrays = {}
    for split, (images, labels) in FILES.items():
        x = read_idx(find_file(root, images), images=True)
        y = read_idx(find_file(root, labels), images=False)
        if len(x) != len(y):
            raise DataError(f"fashion-mnist {split}: {len(x)} images but {len(y)} labels under {root}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"fashion-mnist {split}: labels outside 0..9 under {root}")
        arrays[split] = (x, y)
    plain = ImageTransform(MEAN, STD)
    augmented = ImageTransform(MEAN, STD, padding=4, flip=True) if cfg.augment else plain
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    train = ImageArrayDataset(x_train[..., None], y_train, augmented)  # (N, 28, 28, 1): one channel
    return DataBundle(
        "fashion-mnist",
        10,
        (1, 28, 28),
        train,
        train.replace(transform=plain),
        ImageArrayDataset(x_test[..., None], y_test, plain),
        cfg.num_workers,
    )
