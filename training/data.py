"""Dataset registry and seeded loaders.

Datasets (``DATASETS``):

* ``mnist1d``: the embedded default, generated offline by the ``mnist1d`` package (4,000 train /
  1,000 test signals of length 40, 10 classes) and cached as ``.npz`` in the user cache folder
  (``$LANDSCAPE_CACHE``, else ``$XDG_CACHE_HOME/landscape``, else ``~/.cache/landscape``).
* ``cifar10`` / ``cifar100``: the python-pickle release under ``<root>/cifar-10-batches-py`` or
  ``<root>/cifar-100-python``; standard normalisation, and for training a random 32x32 crop with
  4-pixel padding and a horizontal flip. The test split is never augmented.
* ``imagenet``: torchvision ``ImageFolder`` trees ``<root>/train/<class>/*`` and ``<root>/val/<class>/*``.
* ``synthetic``: deterministic class-conditional Gaussian tensors of any shape and class count.

Nothing is ever downloaded: a missing dataset raises :class:`DataError` naming the expected files.

Data order and augmentation are functions of ``(seed, epoch key)`` only (see :meth:`DataBundle.train_loader`),
which makes resumed runs identical to uninterrupted ones.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from training.config import DataConfig
from training.errors import DataError
from training.fileio import atomic_path, derive_seed


def cache_dir() -> Path:
    """The user cache folder for generated data."""
    if os.environ.get("LANDSCAPE_CACHE"):
        return Path(os.environ["LANDSCAPE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landscape"


class TensorLoader:
    """Batches of in-memory tensors in a seeded order.

    Written by hand rather than using ``DataLoader(TensorDataset)`` because for 40-float signals the
    DataLoader's per-sample indexing and collation cost more than the model's forward pass; here a
    batch is one fancy-indexing call. Iterating yields ``(inputs, targets)``; with ``shuffle`` the
    order is ``randperm(n, generator=Generator(seed))``, so it depends only on ``seed``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        n = len(y)
        # A final batch of one sample would break BatchNorm in train mode; drop it when shuffling.
        self.drop_last = shuffle and n % batch_size == 1 and n > 1

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)) if self.shuffle else None
        for b in range(len(self)):
            if order is None:
                sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
                yield self.x[sl], self.y[sl]
            else:
                idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                yield self.x[idx], self.y[idx]


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class DataBundle:
    """A dataset's splits plus what a model needs to know about it.

    ``train`` is the training split with training augmentation; ``train_eval`` the same samples
    without augmentation (for evaluation and BatchNorm recalibration); ``test`` the test split.
    Each is either a pair of tensors ``(x, y)`` or a torch ``Dataset``.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train: Any
    train_eval: Any
    test: Any
    num_workers: int = 0

    def _loader(self, split: Any, batch_size: int, shuffle: bool, seed: int, pin: bool) -> Any:
        if isinstance(split, tuple):
            return TensorLoader(split[0], split[1], batch_size, shuffle, seed)
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            split,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            worker_init_fn=_worker_init if self.num_workers else None,
            pin_memory=pin,
            drop_last=shuffle and len(split) % batch_size == 1 and len(split) > 1,
        )

    def train_loader(self, batch_size: int, seed: int, pin: bool = False) -> Any:
        """Shuffled, augmented training batches; order and worker seeds fixed by ``seed``."""
        return self._loader(self.train, batch_size, True, seed, pin)

    def labelled_sample(self, per_class: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One batch ``[(inputs, targets)]`` of ``per_class`` unaugmented training samples per class,
        drawn with ``generator`` (the data SNIP and GraSP score on)."""
        split = self.train_eval
        labels = split[1] if isinstance(split, tuple) else torch.as_tensor(_labels_of(split))
        idx = class_balanced_indices(labels, per_class, generator)
        if isinstance(split, tuple):
            return [(split[0][idx], split[1][idx])]
        items = [split[int(i)] for i in idx]
        return [(torch.stack([torch.as_tensor(x) for x, _ in items]), torch.tensor([int(y) for _, y in items]))]

    def eval_loader(self, split: str, batch_size: int, pin: bool = False) -> Any:
        """Unshuffled, unaugmented batches of ``split`` (``train`` or ``test``)."""
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r}; choose from: train, test")
        return self._loader(self.train_eval if split == "train" else self.test, batch_size, False, 0, pin)


def class_balanced_indices(labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``per_class`` samples of each class (fewer if a class is smaller), drawn with ``generator``."""
    order = torch.randperm(len(labels), generator=generator)
    return torch.cat([order[labels[order] == c][:per_class] for c in torch.unique(labels).tolist()])


def _split_size(split: Any) -> int:
    return len(split[1]) if isinstance(split, tuple) else len(split)


def _labels_of(dataset: Any) -> Any:
    for attr in ("labels", "targets"):
        if hasattr(dataset, attr):
            return getattr(dataset, attr)
    return [int(dataset[i][1]) for i in range(len(dataset))]


# ------------------------------------------------------------------------------------------ corruptions


class CorruptedDataset(Dataset):
    """A view of ``base`` with replaced labels, a per-sample permutation of all input values (applied
    after the base transform) and/or a subset of indices."""

    def __init__(self, base: Any, labels: Any = None, pixel_seed: int | None = None, indices: Any = None):
        self.base, self.labels, self.pixel_seed = base, labels, pixel_seed
        self.indices = list(range(len(base))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        j = self.indices[i]
        x, y = self.base[j]
        if self.pixel_seed is not None:
            x = torch.as_tensor(x)
            perm = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(self.pixel_seed + j))
            x = x.flatten()[perm].view(x.shape)
        return x, int(self.labels[j]) if self.labels is not None else y


def _random_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed))


def _corrupt_split(split: Any, kind: str, num_classes: int, seed: int) -> Any:
    n = _split_size(split)
    if isinstance(split, tuple):
        x, y = split
        if kind == "half-data":
            return x[: n // 2], y[: n // 2]
        labels = _random_labels(n, num_classes, seed)
        if kind == "random-pixels":
            g = torch.Generator().manual_seed(seed + 1)
            flat = x.reshape(n, -1)
            perms = torch.stack([torch.randperm(flat.shape[1], generator=g) for _ in range(n)])
            x = torch.gather(flat, 1, perms).view_as(x)
        return x, labels
    if kind == "half-data":
        return CorruptedDataset(split, indices=range(n // 2))
    labels = _random_labels(n, num_classes, seed)
    return CorruptedDataset(split, labels=labels, pixel_seed=seed + 1 if kind == "random-pixels" else None)


CORRUPTIONS = {
    "none": "the true training data",
    "random-labels": "every training label drawn uniformly at random (seed 12345, as SC)",
    "random-pixels": "random labels plus a fresh permutation of all input values of each sample",
    "half-data": "the first half of the training samples, in dataset order",
}


def corrupt(bundle: DataBundle, kind: str, seed: int = 12345) -> DataBundle:
    """A copy of ``bundle`` whose training split (augmented and not) is corrupted by ``kind`` (see
    :data:`CORRUPTIONS`); the test split is untouched. The same corruption is applied to both
    training views, so pruning scores and pretraining see the same samples."""
    if kind not in CORRUPTIONS:
        raise DataError(f"unknown corruption {kind!r}; choose from: {', '.join(CORRUPTIONS)}")
    if kind == "none":
        return bundle
    train = _corrupt_split(bundle.train, kind, bundle.num_classes, seed)
    train_eval = (
        train
        if bundle.train_eval is bundle.train
        else _corrupt_split(bundle.train_eval, kind, bundle.num_classes, seed)
    )
    return dataclasses.replace(bundle, train=train, train_eval=train_eval)


# --------------------------------------------------------------------------------------------- mnist1d


def mnist1d_arrays(cache: Path | None = None) -> dict[str, np.ndarray]:
    """MNIST-1D with the package's default arguments, as float32/int64 arrays (cached)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    path = (cache or cache_dir()) / f"mnist1d-n{args.num_samples}-s{args.seed}-v1.npz"
    keys = ("x", "y", "x_test", "y_test")
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in keys}
        except (OSError, ValueError, KeyError):
            pass  # a corrupted cache file is regenerated below
    # make_dataset reseeds Python's and NumPy's global RNGs; restore them so nothing else is disturbed.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = {
        "x": raw["x"].astype(np.float32),
        "y": raw["y"].astype(np.int64),
        "x_test": raw["x_test"].astype(np.float32),
        "y_test": raw["y_test"].astype(np.int64),
    }
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except Exception:  # an unwritable cache only costs regeneration next time
        pass
    return arrays


def load_mnist1d(cfg: DataConfig) -> DataBundle:
    """MNIST-1D; inputs of shape ``(1, 40)``."""
    a = mnist1d_arrays()
    train = (torch.from_numpy(a["x"]).unsqueeze(1), torch.from_numpy(a["y"]))
    test = (torch.from_numpy(a["x_test"]).unsqueeze(1), torch.from_numpy(a["y_test"]))
    return DataBundle("mnist1d", 10, (1, 40), train, train, test, cfg.num_workers)


# ------------------------------------------------------------------------------------------- synthetic


def synthetic_tensors(shape: tuple[int, ...], num_classes: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples: class means drawn from N(0, 1), plus N(0, 1) noise; labels cycle through classes."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn((num_classes, *shape), generator=g)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    x = means[labels] + torch.randn((n, *shape), generator=g)
    return x, labels


def load_synthetic(cfg: DataConfig) -> DataBundle:
    """Deterministic synthetic data: train and test share class means, with independent noise."""
    shape = tuple(cfg.synthetic_shape)
    if cfg.synthetic_classes < 2 or any(s <= 0 for s in shape):
        raise DataError("synthetic data needs at least 2 classes and a positive shape")
    if cfg.synthetic_train <= 0 or cfg.synthetic_test <= 0:
        raise DataError("synthetic dataset is empty: synthetic_train and synthetic_test must be positive")
    g_means = derive_seed(0, "synthetic", shape, cfg.synthetic_classes)
    x, y = synthetic_tensors(shape, cfg.synthetic_classes, cfg.synthetic_train + cfg.synthetic_test, g_means)
    train = (x[: cfg.synthetic_train], y[: cfg.synthetic_train])
    test = (x[cfg.synthetic_train :], y[cfg.synthetic_train :])
    return DataBundle("synthetic", cfg.synthetic_classes, shape, train, train, test, cfg.num_workers)


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


class ImageArrayDataset(Dataset):
    """HWC uint8 images plus labels, returned as ``(transform(PIL image), label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), int(self.labels[i])


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
    from torchvision import transforms as T

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
    normalize = T.Normalize(spec["mean"], spec["std"])
    plain = T.Compose([T.ToTensor(), normalize])
    augmented = (
        T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
        if cfg.augment
        else plain
    )
    return DataBundle(
        cfg.name,
        spec["classes"],
        (3, 32, 32),
        ImageArrayDataset(x_train, y_train, augmented),
        ImageArrayDataset(x_train, y_train, plain),
        ImageArrayDataset(x_test, y_test, plain),
        cfg.num_workers,
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


DATASETS: dict[str, Callable[[DataConfig], DataBundle]] = {
    "mnist1d": load_mnist1d,
    "cifar10": load_cifar,
    "cifar100": load_cifar,
    "imagenet": load_imagenet,
    "synthetic": load_synthetic,
}


def load_data(cfg: DataConfig) -> DataBundle:
    """Load dataset ``cfg.name``; raises :class:`DataError` if it is unknown, missing or empty."""
    if cfg.name not in DATASETS:
        raise DataError(f"unknown dataset {cfg.name!r}; choose from: {', '.join(sorted(DATASETS))}")
    bundle = DATASETS[cfg.name](cfg)
    for split in ("train", "test"):
        if _split_size(getattr(bundle, split)) == 0:
            raise DataError(f"dataset {cfg.name} has an empty {split} split")
    return bundle
