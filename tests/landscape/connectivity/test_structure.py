"""Deriving the permutation structure from the fx graph: it reproduces the registry models' hand-written
declarations, permuting by it leaves torchvision models' outputs unchanged, and what it cannot handle is
refused with one line."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from landscape.connectivity.permutation import permute_tensors, random_permutation
from landscape.connectivity.structure import derive_groups
from training.errors import UserError
from training.models import PermutationGroup, build, permutation_groups

REGISTRY = {  # the datasets' input shapes (MNIST-1D, CIFAR), small widths: each derives in well under a second
    "mlp": ({"width": 16}, (1, 40)),
    "cnn1d": ({"width": 8}, (1, 40)),
    "resnet20_1d": ({"width": 4}, (1, 40)),
    "resnet20": ({"width": 4}, (3, 32, 32)),
    "resnet18": ({}, (3, 32, 32)),
    "vgg16": ({"width": 8}, (3, 32, 32)),
}


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is faster, and much faster on cores another process also uses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_derived_groups_equal_the_declared_ones(name):
    kwargs, shape = REGISTRY[name]
    torch.manual_seed(0)
    model = build(name, 10, input_shape=shape, **kwargs)
    derived = derive_groups(model, torch.randn(2, *shape))
    declared = permutation_groups(name, model)
    assert {frozenset(g.entries) for g in derived} == {frozenset(g.entries) for g in declared}
    assert len(derived) == len(declared)  # no entry set twice
    by_entries = {frozenset(g.entries): g for g in declared}
    for g in derived:
        hand = by_entries[frozenset(g.entries)]
        assert (g.size, g.activations) == (hand.size, hand.activations)
        # a stream is named after its first module in forward order: a stage's first conv2, which runs
        # before the shortcut projection the declaration names it after
        assert g.name == hand.name or (g.name.startswith("stream:") and hand.name.startswith("stream:"))
    assert [g.name for g in derived if not g.name.startswith("stream:")] == [
        g.name for g in declared if not g.name.startswith("stream:")
    ]


def test_flatten_blocks_and_the_dropped_output_group():
    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    groups = derive_groups(model, torch.randn(2, 1, 40))
    assert [g.name for g in groups] == ["features.0", "features.3", "features.6", "features.9"]
    assert ("fc.weight", 1, 5) in groups[-1].entries  # 16 channels x length 5 flattened, channel-major
    assert not any(key.startswith("fc.") and axis == 0 for g in groups for key, axis, _ in g.entries)


def _randomise_batchnorm(model: nn.Module) -> None:
    """Running statistics measured on random inputs, then perturbed per channel, and random affine
    parameters: BatchNorm then moves every channel differently, and the input still reaches the output
    (with uncalibrated statistics a random mobilenet_v2's output hardly depends on its early layers)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batch
        model.train()(torch.randn(8, 3, 32, 32))
        model.eval()
        for m in bns:
            m.running_mean.add_(0.2 * torch.randn_like(m.running_mean) * m.running_var.sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4))
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn", "mobilenet_v2"])
def test_permuting_torchvision_models_keeps_their_function(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    _randomise_batchnorm(model)
    x = torch.randn(1, 3, 32, 32)
    groups = derive_groups(model, x)
    state = model.state_dict()
    perms = random_permutation(groups, torch.Generator().manual_seed(1))
    permuted = permute_tensors(state, groups, perms)
    moved = [k for k in state if not torch.equal(permuted[k], state[k])]
    assert len(moved) > len(groups)  # every group moves several tensors
    other = copy.deepcopy(model)
    other.load_state_dict(permuted)
    with torch.no_grad():
        y, y_permuted = model(x), other(x)
    scale = y.abs().max().item()
    assert scale > 1e-3
    torch.testing.assert_close(y_permuted, y, rtol=0, atol=1e-4 * scale)
    # the check can fail: permuting any one group's units but not its readers' inputs changes the output
    for g in groups:
        units = PermutationGroup(g.name, g.size, tuple(e for e in g.entries if e[1] == 0))
        other.load_state_dict(permute_tensors(state, [units], perms))
        with torch.no_grad():
            assert (other(x) - y).abs().max().item() > 1e-3 * scale, g.name


def test_torchvision_resnet18_streams_span_blocks():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    groups = derive_groups(model, torch.randn(1, 3, 32, 32))
    streams = [g for g in groups if g.name.startswith("stream:")]
    assert [g.name for g in streams] == [
        "stream:conv1",
        "stream:layer2.0.conv2",
        "stream:layer3.0.conv2",
        "stream:layer4.0.conv2",
    ]
    stem = streams[0]
    blocks = {".".join(key.split(".")[:2]) for key, _, _ in stem.entries if key.startswith("layer")}
    assert blocks == {"layer1.0", "layer1.1", "layer2.0"}  # layer2.0 reads the stream (conv1 and downsample)
    assert ("layer1.1.bn2.running_var", 0, 1) in stem.entries
    assert stem.activations == ("bn1", "layer1.0", "layer1.1")
    assert len(groups) == 12  # 4 streams + one per block's first conv; fc's outputs are not permuted


def test_depthwise_and_view_and_functional_ops():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
            self.bn = nn.BatchNorm2d(6)
            self.fc = nn.Linear(6 * 4, 5)

        def forward(self, x):
            x = torch.cat([x, x], 0)  # on the input: nothing permuted, fine
            x = nn.functional.relu(self.bn(self.dw(self.conv(x)))) * 0.5
            x = nn.functional.max_pool2d(x, 4)
            return self.fc(x.view(x.size(0), -1))

    model = Net()
    (g,) = derive_groups(model, torch.randn(1, 3, 8, 8))
    assert (g.name, g.size) == ("conv", 6)
    assert set(g.entries) == {
        ("conv.weight", 0, 1),
        ("conv.bias", 0, 1),
        ("dw.weight", 0, 1),
        ("dw.bias", 0, 1),
        *[(f"bn.{k}", 0, 1) for k in ("weight", "bias", "running_mean", "running_var")],
        ("fc.weight", 1, 4),
    }
    assert g.activations == ("conv", "bn")  # conv feeds the depthwise conv (no BatchNorm); bn follows dw


def test_derivation_leaves_the_model_as_it_was():
    model = build("resnet20", 10, input_shape=(3, 8, 8), width=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    derive_groups(model, torch.randn(2, 3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class _Cat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.fc(torch.cat([self.a(x), self.b(x)], 1))


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj, self.attn, self.out = nn.Linear(4, 8), nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 2)

    def forward(self, x):
        h = self.proj(x)
        return self.out(self.attn(h, h, h)[0])


class _ChannelMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 1), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean(1).flatten(1))


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x) if x.sum() > 0 else x


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        (_Cat(), (1, 3, 4, 4), "unsupported operation cat at node 'cat'"),
        (_Attention(), (1, 3, 4), "unsupported operation MultiheadAttention at node 'attn'"),
        (nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1, groups=2)), (1, 3, 4, 4), "grouped convolution"),
        (_ChannelMean(), (1, 3, 2, 4), "unsupported operation mean over the units' dimension at node 'mean'"),
        (_DataDependent(), (1, 3, 4, 4), "torch.fx cannot trace the model: symbolically traced variables"),
    ],
    ids=["cat", "attention", "grouped-conv", "channel-mean", "untraceable"],
)
def test_unsupported_models_are_refused_in_one_line(model, shape, message):
    with pytest.raises(UserError) as info:
        derive_groups(model, torch.randn(*shape))
    text = str(info.value)
    assert text.startswith("cannot derive the permutation structure: ")
    assert message in text
    assert "\n" not in text
