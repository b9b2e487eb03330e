"""Fashion-MNIST: the four IDX files (plain or gzipped), fabricated here in the real format; the real
files when the Debian package is installed."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from training.config import DataConfig
from training.data import load_data
from training.data.fashion_mnist import DEBIAN_ROOT, FILES, MEAN, STD
from training.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fabricate(root, n_train=30, n_test=20, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        arrays[split] = (images, labels)
        for name, array in zip(FILES[split], (images, labels), strict=True):
            data = idx_bytes(array)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_reads_fabricated_idx_files_exactly(tmp_path, gz):
    arrays = fabricate(tmp_path, gz=gz)
    bundle = load_data(DataConfig(name="fashion-mnist", root=str(tmp_path), augment=False))
    assert (bundle.num_classes, bundle.input_shape) == (10, (1, 28, 28))
    assert len(bundle.train) == 30 and len(bundle.test) == 20
    x, y = next(iter(bundle.eval_loader("test", 20)))
    images, labels = arrays["test"]
    expected = (torch.from_numpy(images).float() / 255 - MEAN[0]) / STD[0]
    torch.testing.assert_close(x[:, 0], expected, rtol=0, atol=1e-6)  # ToTensor then Normalize, exactly
    assert torch.equal(y, torch.from_numpy(labels).long())


def test_torchvision_folder_layout_is_found(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    fabricate(raw)
    assert len(load_data(DataConfig(name="fashion-mnist", root=str(tmp_path))).train) == 30


def test_augmented_training_batches_keep_shape_and_pixel_values(tmp_path):
    fabricate(tmp_path, n_train=10)
    bundle = load_data(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    x, _ = next(iter(bundle.train_loader(10, seed=0)))
    assert x.shape == (10, 1, 28, 28)
    zero = (0 - MEAN[0]) / STD[0]  # padding pixels are black before normalisation
    assert x.min() >= zero - 1e-6 and x.max() <= (1 - MEAN[0]) / STD[0] + 1e-6


def test_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(DataError, match="dataset-fashion-mnist") as exc:
        load_data(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    assert "train-images-idx3-ubyte" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_data(DataConfig(name="fashion-mnist", root=str(tmp_path / "nope")))


def test_corrupt_and_mismatched_files_are_refused(tmp_path):
    fabricate(tmp_path)
    (tmp_path / FILES["test"][0]).write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DataError, match="not a readable IDX image file"):
        load_data(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    fabricate(tmp_path)
    (tmp_path / FILES["train"][1]).write_bytes(idx_bytes(np.zeros(7, dtype=np.uint8)))
    with pytest.raises(DataError, match="30 images but 7 labels"):
        load_data(DataConfig(name="fashion-mnist", root=str(tmp_path)))


@pytest.mark.skipif(
    not (DEBIAN_ROOT / "train-labels-idx1-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed"
)
def test_real_files_from_the_debian_package():
    bundle = load_data(DataConfig(name="fashion-mnist"))
    assert len(bundle.train) == 60_000 and len(bundle.test) == 10_000
    counts = np.bincount(bundle.test.labels, minlength=10)
    assert counts.tolist() == [1000] * 10
    pixels = torch.as_tensor(bundle.train.images[:5000]).float() / 255
    assert abs(float(pixels.mean()) - MEAN[0]) < 0.01 and abs(float(pixels.std()) - STD[0]) < 0.01


def test_train_from_the_command_line_on_fabricated_files(tmp_path, capsys):
    from landscape.cli import main

    fabricate(tmp_path, n_train=40, n_test=20)
    args = ["train", "--data", "fashion-mnist", "--data-root", str(tmp_path), "--model", "resnet20", "--width", "4"]
    args += ["--epochs", "1", "--batch-size", "20", "--device", "cpu", "--quiet", "--out", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    run = out.strip().splitlines()[-1]
    assert "resnet20-fashion-mnist-" in run
    from training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(f"{run}/cycle_1.pt")
    assert ckpt.meta["dataset"] == "fashion-mnist" and ckpt.meta["model_kwargs"]["input_shape"] == [1, 28, 28]
