"""The device-resident loader: batched crop and flip equal torchvision's exactly, offsets and flips are
uniform, order and augmentation depend only on the seed, both loaders agree where they must, and
resumed training with augmentation is bitwise identical on CPU."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from tests.training.test_data import _write_cifar
from training.config import DataConfig
from training.data import ImageTransform, TensorLoader, corrupt, load_data
from training.data.arrays import ImageArrayDataset
from training.data.images import cifar_bundle

CIFAR = ImageTransform((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), padding=4, flip=True)


def _images(n: int, h: int = 32, w: int = 32, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8))


def _torchvision(image: torch.Tensor, transform: ImageTransform, top: int, left: int, flip: bool, monkeypatch):
    """torchvision's RandomCrop(size, padding), RandomHorizontalFlip, ToTensor, Normalize on one image,
    with the crop offsets and the flip decision forced to the given ones."""
    from PIL import Image
    from torchvision import transforms as T

    h, w = image.shape[:2]
    monkeypatch.setattr(T.RandomCrop, "get_params", staticmethod(lambda img, size: (top, left, h, w)))
    pipeline = T.Compose(
        [
            T.RandomCrop((h, w), padding=transform.padding),
            T.RandomHorizontalFlip(p=1.0 if flip else 0.0),
            T.ToTensor(),
            T.Normalize(transform.mean, transform.std),
        ]
    )
    array = image.numpy()
    return pipeline(Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array))


@pytest.mark.parametrize(
    "shape, transform",
    [((32, 32, 3), CIFAR), ((28, 28, 1), ImageTransform((0.2860,), (0.3530,), padding=4, flip=True))],
    ids=["cifar", "fashion-mnist"],
)
def test_crop_and_flip_equal_torchvision_exactly_for_every_offset_and_flip(shape, transform, monkeypatch):
    cases = list(itertools.product(range(2 * transform.padding + 1), repeat=2))
    cases = [(t, left, f) for (t, left) in cases for f in (False, True)]  # all 81 offsets x both flips
    images = _images(len(cases), *shape)
    offsets = torch.tensor([[t, left] for t, left, _ in cases])
    flips = torch.tensor([f for _, _, f in cases])
    ours = transform.apply(images, offsets, flips)
    assert ours.shape == (len(cases), shape[2], shape[0], shape[1]) and ours.is_contiguous()
    for b, (top, left, flip) in enumerate(cases):
        expected = _torchvision(images[b], transform, top, left, flip, monkeypatch)
        assert torch.equal(ours[b], expected), (top, left, flip)
    # without augmentation: ToTensor + Normalize, bit for bit
    from torchvision import transforms as T

    plain = T.Compose([T.ToTensor(), T.Normalize(transform.mean, transform.std)])
    from PIL import Image

    first = images[0].numpy()
    expected = plain(Image.fromarray(first[..., 0] if shape[2] == 1 else first))
    assert torch.equal(transform.plain().apply(images[:1])[0], expected)


def test_offsets_and_flips_are_uniform_chi_square():
    loader = TensorLoader(_images(8, 4, 4), torch.zeros(8, dtype=torch.int64), 4, True, seed=0, transform=CIFAR)
    offsets, flips = [], []
    for seed in range(400):  # 400 epochs of 90 draws = 36,000 draws over 162 cells (about 222 per cell)
        loader.seed = seed
        loader.y = torch.zeros(90, dtype=torch.int64)
        _, o, f = loader.plan()
        offsets.append(o)
        flips.append(f)
    o, f = torch.cat(offsets), torch.cat(flips)
    assert o.min() == 0 and o.max() == 8
    cells = (o[:, 0] * 9 + o[:, 1]) * 2 + f.long()  # joint (top, left, flip): also checks independence
    counts = torch.bincount(cells, minlength=162).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.chisquare(torch.bincount(o[:, 0], minlength=9).numpy()).pvalue > 1e-3
    assert stats.chisquare(torch.bincount(f.long(), minlength=2).numpy()).pvalue > 1e-3
    # and the test can fail: a biased draw (offsets 0..7 only) is rejected
    biased = torch.bincount((o[:, 0] % 8) * 9 + o[:, 1], minlength=81).numpy()
    assert stats.chisquare(biased).pvalue < 1e-6


def test_loader_batches_are_the_planned_gather_and_depend_only_on_the_seed():
    images, labels = _images(50), torch.arange(50) % 10
    loader = TensorLoader(images, labels, 16, shuffle=True, seed=5, transform=CIFAR)
    order, offsets, flips = loader.plan()
    batches = list(loader)
    assert len(batches) == len(loader) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(x, CIFAR.apply(images[order], offsets, flips))
    assert torch.equal(torch.cat([b[1] for b in batches]), labels[order])
    again = torch.cat([b[0] for b in TensorLoader(images, labels, 16, shuffle=True, seed=5, transform=CIFAR)])
    other = torch.cat([b[0] for b in TensorLoader(images, labels, 16, shuffle=True, seed=6, transform=CIFAR)])
    assert torch.equal(x, again) and not torch.equal(x, other)
    # batch size does not change what each position of the epoch gets
    wide = torch.cat([b[0] for b in TensorLoader(images, labels, 50, shuffle=True, seed=5, transform=CIFAR)])
    assert torch.equal(x, wide)


def test_tensor_splits_give_the_same_batches_with_either_loader():
    device = load_data(DataConfig(name="mnist1d"))
    torch_ = load_data(DataConfig(name="mnist1d", loader="torch"))
    a, b = list(device.train_loader(128, seed=3)), list(torch_.train_loader(128, seed=3))
    assert len(a) == len(b) and all(
        torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b, strict=True)
    )
    order = torch.randperm(4000, generator=torch.Generator().manual_seed(3))  # the order before this loader
    assert torch.equal(a[0][0], device.train[0][order[:128]])


def test_cifar_eval_batches_and_scoring_sample_equal_the_dataloader_path(tmp_path):
    _write_cifar(tmp_path)
    device = load_data(DataConfig(name="cifar10", root=str(tmp_path)))
    torch_ = load_data(DataConfig(name="cifar10", root=str(tmp_path), loader="torch"))
    assert device.loader == "device" and torch_.loader == "torch"
    for split in ("train", "test"):
        got, ref = list(device.eval_loader(split, 7)), list(torch_.eval_loader(split, 7))
        assert isinstance(torch_.eval_loader(split, 7), torch.utils.data.DataLoader)
        assert all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(got, ref, strict=True))
    g = torch.Generator
    (xs, ys), (xr, yr) = (
        device.labelled_sample(2, g().manual_seed(0))[0],
        torch_.labelled_sample(2, g().manual_seed(0))[0],
    )
    assert torch.equal(xs, xr) and torch.equal(ys, yr)
    # training batches: augmented (differ from the plain ones), within the normalised pixel range
    x, _ = next(iter(device.train_loader(30, seed=0)))
    plain = device.train_eval.transform.apply(device.train_eval.images)
    assert x.shape == plain.shape and not torch.equal(x.sort(0).values, plain.sort(0).values)
    lo = (0 - torch.tensor(CIFAR.mean)) / torch.tensor(CIFAR.std)
    hi = (1 - torch.tensor(CIFAR.mean)) / torch.tensor(CIFAR.std)
    assert (x.amin((0, 2, 3)) >= lo - 1e-6).all() and (x.amax((0, 2, 3)) <= hi + 1e-6).all()


def _bundle(n=40, loader="device"):
    g = np.random.default_rng(1)
    train = (g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10)
    test = (g.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), np.arange(10))
    return dataclasses.replace(cifar_bundle("cifar10", train, test), loader=loader)


def test_to_moves_in_memory_splits_once_and_keeps_shared_images_shared():
    bundle = _bundle()
    assert bundle.train_eval.images is bundle.train.images
    assert bundle.to("cpu") is bundle
    moved = bundle.to("meta")  # a device without data: shows where tensors go, and that nothing is copied twice
    assert moved.train.images.device.type == "meta" and moved.test.labels.device.type == "meta"
    assert moved.train_eval.images is moved.train.images and moved.train.transform == CIFAR
    assert bundle.train.images.device.type == "cpu"  # the original is untouched
    assert _bundle(loader="torch").to("meta").train.images.device.type == "cpu"  # the torch loader stays put


def test_train_subset_and_corruptions_of_image_arrays():
    bundle = _bundle(60)
    sub = bundle.train_subset(20)
    assert len(sub.train) == 20 and sub.train_eval.images is sub.train.images
    assert torch.bincount(sub.train.labels, minlength=10).tolist() == [2] * 10

    pixels = corrupt(bundle, "random-pixels")
    a, b = pixels.train.images, bundle.train.images
    assert pixels.train_eval.images is a and pixels.train.transform == CIFAR  # raw pixels, before augmentation
    assert torch.equal(a.flatten(1).sort(1).values, b.flatten(1).sort(1).values)  # each image: same values
    assert not torch.equal(a[0], b[0]) and not torch.equal(pixels.train.labels, bundle.train.labels)
    # both loaders read the same corrupted images: the per-sample path returns the device path's batch
    x, _ = next(iter(pixels.eval_loader("train", 60)))
    assert torch.equal(dataclasses.replace(pixels, loader="torch").train_eval[3][0], x[3])

    labels = corrupt(bundle, "random-labels")
    assert labels.train.images is bundle.train.images and labels.train_eval.labels is labels.train.labels
    assert (labels.train.labels == bundle.train.labels).float().mean() < 0.5
    half = corrupt(bundle, "half-data")
    assert len(half.train) == 30 and torch.equal(half.train_eval.images, bundle.train.images[:30])
    assert len(half.test) == 10


def test_image_arrays_refuse_wrong_inputs():
    from training.errors import DataError

    with pytest.raises(DataError, match="uint8 \\(N, H, W, C\\)"):
        ImageArrayDataset(np.zeros((4, 3, 32, 32), dtype=np.float32), np.zeros(4), CIFAR)
    with pytest.raises(DataError, match="unknown loader 'gpu'; choose from: device, torch"):
        load_data(DataConfig(loader="gpu"))


@pytest.mark.slow
def test_resumed_augmented_cifar_run_is_bitwise_identical(tmp_path, monkeypatch):
    from tests.helpers import interrupted_run, tiny_config
    from training.checkpoint import read_checkpoint
    from training.config import MaskConfig, ModelConfig
    from training.run import train

    _write_cifar(tmp_path / "data", per_batch=8)
    cfg = tiny_config(
        data=DataConfig(name="cifar10", root=str(tmp_path / "data"), batch_size=16),
        model=ModelConfig(name="resnet20", width=4),
        mask=MaskConfig(method="random", sparsity=0.5),
    )
    ref = train(cfg, tmp_path / "ref", quiet=True)
    resumed = interrupted_run(cfg, tmp_path / "cut", 3, monkeypatch)
    a, b = read_checkpoint(ref.checkpoint())["model"], read_checkpoint(resumed.checkpoint())["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ref.metrics["train_loss"].identical(resumed.metrics["train_loss"])
