"""Dataset registry and seeded loaders.

Datasets (``DATASETS``):

* ``mnist1d``: the embedded default, generated offline by the ``mnist1d`` package (4,000 train /
  1,000 test signals of length 40, 10 classes) and cached as ``.npz`` in the user cache folder
  (``$LANDSCAPE_CACHE``, else ``$XDG_CACHE_HOME/landscape``, else ``~/.cache/landscape``).
* ``cifar10`` / ``cifar100``: the python-pickle release under ``<root>/cifar-10-batches-py`` or
  ``<root>/cifar-100-python``; standard normalisation, and for training a random 32x32 crop with
  4-pixel padding and a horizontal flip. The test split is never augmented.
* ``fashion-mnist``: the four IDX files (see :mod:`training.data.fashion_mnist`); the same crop and flip.
* ``imagenet``: torchvision ``ImageFolder`` trees ``<root>/train/<class>/*`` and ``<root>/val/<class>/*``.
* ``synthetic``: deterministic class-conditional Gaussian tensors of any shape and class count.

Nothing is ever downloaded: a missing dataset raises :class:`DataError` naming the expected files.

Loaders (``LOADERS``, config ``data.loader``, flag ``--loader``):

* ``device`` (default): every in-memory split (MNIST-1D, Fashion-MNIST, CIFAR, synthetic) is one tensor on
  the training device (uint8 images for the image datasets); each batch is gathered, randomly cropped,
  flipped and normalised there with batched tensor operations (:mod:`training.data.device`).
* ``torch``: a ``DataLoader`` with per-sample torchvision transforms for image datasets (``--workers``
  processes), tensor batches on the CPU for MNIST-1D and synthetic. ImageNet folders always load this way.

For MNIST-1D and synthetic data both loaders give identical batches. For image datasets the
augmentations are equally distributed but drawn differently, so CIFAR and Fashion-MNIST results depend
on the loader (it is part of the config hash when not the default).

Data order and augmentation are functions of ``(seed, epoch key)`` only (see :meth:`DataBundle.train_loader`),
which makes resumed runs identical to uninterrupted ones.
"""

from training.data.bundle import LOADERS, DataBundle, class_balanced_indices, epoch_samples
from training.data.corrupt import CORRUPTIONS, corrupt
from training.data.device import ImageTransform, TensorLoader
from training.data.mnist1d import cache_dir, mnist1d_arrays
from training.data.registry import DATASETS, load_data
from training.data.synthetic import synthetic_tensors

__all__ = [
    "CORRUPTIONS",
    "DATASETS",
    "LOADERS",
    "DataBundle",
    "ImageTransform",
    "TensorLoader",
    "cache_dir",
    "class_balanced_indices",
    "corrupt",
    "epoch_samples",
    "load_data",
    "mnist1d_arrays",
    "synthetic_tensors",
]
