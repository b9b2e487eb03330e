"""Image datasets on disk: CIFAR-10/100 (python release, read without running pickled code) and
ImageNet (``ImageFolder`` trees). Nothing is ever downloaded."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from training.config import DataConfig
from training.data.arrays import ImageArrayDataset
from training.data.bundle import DataBundle
from training.data.device import ImageTransform
from training.errors import DataError

# ----------------------------------------------------------------------------------------------- CIFAR


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR python release that only rebuilds NumPy arrays.

    torchvision's CIFAR classes call plain ``pickle.load``, which runs any code a hostile file
    names; this allows nothing but the NumPy reconstruction functions the real files use.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 protocol-2 pickles store bytes; a pure function
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            entry = _ArrayUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path} is not a readable CIFAR batch file ({exc})") from exc
    if not isinstance(entry, dict) or "data" not in entry:
        raise DataError(f"{path} is not a CIFAR batch file (no 'data' entry)")
    return entry


_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": "labels",
        "classes": 10,
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": "fine_labels",
        "classes": 100,
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    },
}


def _require_root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise DataError(f"dataset {cfg.name} needs --data-root DIR (nothing is downloaded)")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder")
    return root


def load_cifar(cfg: DataConfig) -> DataBundle:
    """CIFAR-10/100 from the python-pickle release, read without executing pickled code."""
    spec = _CIFAR[cfg.name]
    root = _require_root(cfg)
    folder = root / spec["folder"]
    expected = spec["train"] + spec["test"]
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"{cfg.name} not found: expected {folder}/{{{','.join(expected)}}} "
            f"(extract {spec['url'].rsplit('/', 1)[-1]} into {root})"
        )

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            entry = _read_cifar_batch(folder / f)
            data = np.asarray(entry["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072 or spec["label_key"] not in entry:
                raise DataError(f"{folder / f} has unexpected contents for {cfg.name}")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(entry[spec["label_key"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = read(spec["train"])
    x_test, y_test = read(spec["test"])
    return cifar_bundle(cfg.name, (x_train, y_train), (x_test, y_test), augment=cfg.augment, workers=cfg.num_workers)


def cifar_bundle(
    name: str, train: tuple[Any, Any], test: tuple[Any, Any], *, augment: bool = True, workers: int = 0
) -> DataBundle:
    """A CIFAR-10/100 bundle from in-memory uint8 ``(N, 32, 32, 3)`` images and their labels: the
    dataset's normalisation, and for training (with ``augment``) a random 32x32 crop after 4-pixel
    zero padding and a horizontal flip. Used by :func:`load_cifar`, and by benchmarks and tests on
    CIFAR-shaped arrays."""
    spec = _CIFAR[name]
    plain = ImageTransform(spec["mean"], spec["std"])
    augmented = ImageTransform(spec["mean"], spec["std"], padding=4, flip=True) if augment else plain
    train_set = ImageArrayDataset(*train, augmented)
    return DataBundle(
        name,
        spec["classes"],
        (3, 32, 32),
        train_set,
        train_set.replace(transform=plain),
        ImageArrayDataset(*test, plain),
        workers,
    )


# -------------------------------------------------------------------------------------------- ImageNet


def load_imagenet(cfg: DataConfig) -> DataBundle:
    """ImageNet as torchvision ``ImageFolder`` trees under ``<root>/train`` and ``<root>/val``."""
    from torchvision import datasets
    from torchvision import transforms as T

    root = _require_root(cfg)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DataError(f"imagenet not found: expected {root}/{split}/<class>/<image>.JPEG folders")
    normalize = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    plain = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), normalize])
    augmented = (
        T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
        if cfg.augment
        else plain
    )
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=augmented)
        train_eval = datasets.ImageFolder(str(root / "train"), transform=plain)
        val = datasets.ImageFolder(str(root / "val"), transform=plain)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"imagenet under {root} is empty or malformed: {exc}") from exc
    if train.classes != val.classes:
        raise DataError(f"imagenet train and val under {root} have different class folders")
    return DataBundle("imagenet", len(train.classes), (3, 224, 224), train, train_eval, val, cfg.num_workers)
