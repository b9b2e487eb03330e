"""Fixtures for the loading layer: torchvision models and batches of images, made by the libraries."""

from __future__ import annotations

import importlib

import pytest
import torch
import torchvision

SPEC = "torchvision:resnet18"
ARGS = {"num_classes": 10}


def images(n: int, seed: int, size: int = 16, classes: int = 10, batch: int = 4) -> list:
    """A fixed list of ``(inputs, labels)`` batches of random 3×size×size images."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def resnet18(seed: int) -> torch.nn.Module:
    """torchvision's resnet18 (10 classes) with random BatchNorm statistics, so recalibration matters."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two resnet18s (seeds 0 and 1) saved as plain state dicts: ``(path_a, path_b, model_a, model_b)``."""
    root = tmp_path_factory.mktemp("pair")
    a, b = resnet18(0), resnet18(1)
    torch.save(a.state_dict(), root / "a.pt")
    torch.save(b.state_dict(), root / "b.pt")
    return root / "a.pt", root / "b.pt", a, b


USER_CODE = '''
import torch
from torch import nn


class Net(nn.Module):
    """A small CNN with BatchNorm, as a researcher's own training script would define it."""

    def __init__(self, width=4, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _split(n, seed):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


def data(n=32):
    return {"train": _split(n, 0), "test": _split(n, 1)}


def shuffled():
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    return {"train": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4, shuffle=True)}


def broken(**kwargs):
    raise RuntimeError("the data server is down")
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A folder holding the user's module ``usercode_<n>`` and two checkpoints saved by a plain loop."""
    name = f"usercode_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)  # the CLI imports the module from the current folder
    monkeypatch.syspath_prepend(str(tmp_path))  # so does this test, to build the networks it saves
    code = importlib.import_module(name)
    for seed, label in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        net = code.Net()
        with torch.no_grad():
            net.bn.running_mean.uniform_(-0.5, 0.5)
        torch.save({"net": net.state_dict(), "epoch": 5, "optimizer": {}}, tmp_path / f"{label}.pt")
    return name, tmp_path, code
