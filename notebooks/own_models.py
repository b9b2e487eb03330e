"""What a researcher brings to notebook 08: data as lists of ``(inputs, targets)`` batches, a plain PyTorch
training loop for torchvision's resnet18, and pruning with ``torch.nn.utils.prune``. Nothing here uses
the toolkit's trainer; the notebook analyses what these functions save. (Also the notebook's one
summary helper, so that the notebook itself stays a sequence of calls.)"""

from __future__ import annotations

import torch
import torchvision
from torch.nn.utils import prune

from training.config import DataConfig
from training.data import load_data


def mnist1d_images(batch_size: int = 250) -> dict[str, list]:
    """MNIST-1D's unshuffled splits, each 40-point signal shown as a 5×8 image on three channels."""
    bundle = load_data(DataConfig(name="mnist1d"))

    def images(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 1, 5, 8).expand(-1, 3, -1, -1).contiguous()

    return {s: [(images(x), y) for x, y in bundle.eval_loader(s, batch_size)] for s in ("train", "test")}


def train_resnet18(train: list, seed: int, epochs: int, lr: float = 0.05) -> torch.nn.Module:
    """torchvision's resnet18 (10 classes) trained by plain SGD with momentum on shuffled batches of 128."""
    x = torch.cat([b[0] for b in train])
    y = torch.cat([b[1] for b in train])
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


def prune_globally(net: torch.nn.Module, amount: float) -> torch.nn.Module:
    """Global magnitude pruning of every Conv and Linear weight with ``torch.nn.utils.prune`` (in place)."""
    layers = [(m, "weight") for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
    return net


def barriers_on_test(curves: dict) -> dict:
    """``{path: {error_barrier, loss_barrier}}`` on the test split of ``interpolate`` Datasets."""
    return {
        name: {k: float(ds[k].sel(split="test")) for k in ("error_barrier", "loss_barrier")}
        for name, ds in curves.items()
    }
