import functools
import operator
import os
import pickle
import random

import numpy as np
import pytest
import torch

from training.config import DataConfig
from training.data import TensorLoader, load_data, mnist1d_arrays
from training.errors import DataError


def test_mnist1d_shapes_cache_and_rng_isolation(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = mnist1d_arrays()
    assert np.random.rand() == expected_np and random.random() == expected_py  # global RNGs untouched
    assert a["x"].shape == (4000, 40) and a["x_test"].shape == (1000, 40)
    assert a["x"].dtype == np.float32 and a["y"].dtype == np.int64
    assert set(np.unique(a["y"])) == set(range(10))
    cached = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(cached) == 1
    b = mnist1d_arrays()  # from cache
    assert all(np.array_equal(a[k], b[k]) for k in a)
    cached[0].write_bytes(b"garbage")  # a corrupted cache is regenerated, not trusted
    c = mnist1d_arrays()
    assert all(np.array_equal(a[k], c[k]) for k in a)
    # the audit: a truncated cache file (a zip cut short) and a foreign one (right keys, wrong arrays)
    # exited 1; both are regenerated and replaced
    whole = cached[0].read_bytes()
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros((3, 7)), y=np.arange(3), x_test=np.zeros((1, 7)), y_test=np.arange(1))
    for bad in (whole[: len(whole) // 2], foreign.read_bytes()):
        cached[0].write_bytes(bad)
        d = mnist1d_arrays()
        assert all(np.array_equal(a[k], d[k]) for k in a)
        with np.load(cached[0]) as replaced:
            assert all(np.array_equal(a[k], replaced[k]) for k in a)
    bundle = load_data(DataConfig(name="mnist1d"))
    assert bundle.input_shape == (1, 40) and bundle.num_classes == 10


def test_train_order_depends_only_on_seed():
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    first = [b[1].tolist() for b in TensorLoader(x, y, 3, shuffle=True, seed=7)]
    again = [b[1].tolist() for b in TensorLoader(x, y, 3, shuffle=True, seed=7)]
    other = [b[1].tolist() for b in TensorLoader(x, y, 3, shuffle=True, seed=8)]
    assert first == again and first != other
    seen = functools.reduce(operator.iadd, first, [])
    assert len(seen) == len(set(seen)) == 9  # 10 % 3 == 1: the single-sample last batch is dropped
    plain = [b[1].tolist() for b in TensorLoader(x, y, 3)]
    assert functools.reduce(operator.iadd, plain, []) == list(range(10))


def test_synthetic_is_deterministic_and_learnable_shape():
    cfg = DataConfig(
        name="synthetic", synthetic_shape=(2, 4, 4), synthetic_classes=3, synthetic_train=30, synthetic_test=9
    )
    a, b = load_data(cfg), load_data(cfg)
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.test[1], b.test[1])
    assert a.train[0].shape == (30, 2, 4, 4) and a.num_classes == 3 and a.input_shape == (2, 4, 4)
    with pytest.raises(DataError, match="empty"):
        load_data(DataConfig(name="synthetic", synthetic_train=0))


def _write_cifar(root, name="cifar10", per_batch=6):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key, classes = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"], "labels", 10
    else:
        folder = root / "cifar-100-python"
        files, key, classes = ["train", "test"], "fine_labels", 100
    folder.mkdir(parents=True)
    for f in files:
        entry = {
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            key: rng.integers(0, classes, per_batch).tolist(),
            "batch_label": f,
        }
        with open(folder / f, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)  # the real release is a protocol-2 pickle
    return folder


@pytest.mark.parametrize("name, n_train, classes", [("cifar10", 30, 10), ("cifar100", 6, 100)])
def test_cifar_fabricated(tmp_path, name, n_train, classes):
    folder = _write_cifar(tmp_path, name)
    bundle = load_data(DataConfig(name=name, root=str(tmp_path)))
    assert bundle.num_classes == classes and len(bundle.train) == n_train and len(bundle.test) == 6
    x0, _y0 = bundle.test[0]
    assert x0.shape == (3, 32, 32) and x0.dtype == torch.float32
    # test split: normalised and not augmented (identical on every read)
    with open(folder / ("test_batch" if name == "cifar10" else "test"), "rb") as fh:
        raw = pickle.load(fh)
    img = raw["data"][0].reshape(3, 32, 32).astype(np.float32) / 255.0
    mean = np.array([0.4914, 0.4822, 0.4465] if name == "cifar10" else [0.5071, 0.4865, 0.4409])
    std = np.array([0.2470, 0.2435, 0.2616] if name == "cifar10" else [0.2673, 0.2564, 0.2762])
    np.testing.assert_allclose(x0.numpy(), (img - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    assert torch.equal(bundle.test[0][0], x0)
    # training split: augmentation (random crop with padding, flip) changes images across draws
    torch.manual_seed(0)
    draws = [bundle.train[0][0] for _ in range(8)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert torch.equal(bundle.train_eval[0][0], bundle.train_eval[0][0])


def test_cifar_missing_files_message(tmp_path):
    with pytest.raises(DataError, match=r"cifar10 not found: expected .*cifar-10-batches-py/\{data_batch_1"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))
    with pytest.raises(DataError, match="does not exist"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match="needs --data-root"):
        load_data(DataConfig(name="cifar100"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Evil.marker),))


def test_cifar_hostile_pickle_is_not_executed(tmp_path):
    folder = _write_cifar(tmp_path)
    _Evil.marker = tmp_path / "pwned"
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": _Evil()}, fh, protocol=2)
    with pytest.raises(DataError, match="not a readable CIFAR batch file"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))
    assert not _Evil.marker.exists()


def test_cifar_truncated_file(tmp_path):
    folder = _write_cifar(tmp_path)
    data = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(data[:100])
    with pytest.raises(DataError, match="data_batch_2"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))


def test_imagenet_fabricated(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01440764", "n01443537"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                arr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"img{i}.JPEG", format="JPEG")
    bundle = load_data(DataConfig(name="imagenet", root=str(tmp_path)))
    assert bundle.num_classes == 2 and len(bundle.train) == 4
    x, y = bundle.test[0]
    assert x.shape == (3, 224, 224) and y == 0
    with pytest.raises(DataError, match="imagenet not found"):
        load_data(DataConfig(name="imagenet", root=str(tmp_path / "train")))
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "val").mkdir()
    with pytest.raises(DataError, match="empty or malformed"):
        load_data(DataConfig(name="imagenet", root=str(empty)))


def test_unknown_dataset():
    with pytest.raises(DataError, match="choose from: cifar10, cifar100, fashion-mnist, imagenet, mnist1d, synthetic"):
        load_data(DataConfig(name="svhn"))
