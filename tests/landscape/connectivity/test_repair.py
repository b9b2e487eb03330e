"""REPAIR: the corrected channels have exactly the target statistics, it is the identity between a
network and itself, it leaves the endpoints alone, and it refuses BatchNorm networks."""

import copy

import numpy as np
import pytest
import torch

import landscape
from landscape.connectivity.repair import channel_stats, interpolate_stats, repair
from tests.landscape.connectivity.test_align import make_checkpoint
from training.errors import UserError
from training.evaluate import evaluate

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(100, 1, 40, generator=gen), torch.randint(0, 10, (100,), generator=gen)) for _ in range(3)]


def test_channel_stats_match_a_direct_computation(data):
    a = make_checkpoint("mlp", 0)
    stats = channel_stats(a.model, ["features.1", "features.3"], data, CPU)
    x = torch.cat([b[0] for b in data])
    with torch.no_grad():
        h = a.model.features[1](a.model.features[0](x)).double()
    torch.testing.assert_close(stats["features.1"][0], h.mean(0))
    torch.testing.assert_close(stats["features.1"][1], h.std(0, unbiased=False))


def test_repaired_channels_have_the_target_statistics(data):
    a, b = make_checkpoint("mlp", 0), make_checkpoint("mlp", 1)
    names = ["features.1", "features.3"]
    sa, sb = channel_stats(a.model, names, data, CPU), channel_stats(b.model, names, data, CPU)
    target = interpolate_stats(sa, sb, 0.3)
    model = copy.deepcopy(a.model)
    with torch.no_grad():
        for v, w in zip(model.state_dict().values(), b.state.values(), strict=True):
            v.lerp_(w, 0.3)
    before = channel_stats(model, names, data, CPU)
    assert (before["features.3"][1] - target["features.3"][1]).abs().max() > 0.05  # variance collapse to fix
    hooks = repair(model, target, data, CPU)
    after = channel_stats(model, names, data, CPU)
    for n in names:  # the downstream layer is measured with the upstream correction in place
        torch.testing.assert_close(after[n][0], target[n][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after[n][1], target[n][1], atol=1e-5, rtol=1e-5)
    hooks.remove()
    torch.testing.assert_close(channel_stats(model, names, data, CPU)["features.3"][1], before["features.3"][1])


def test_repair_path_between_a_network_and_itself_is_flat_and_endpoints_exact(data):
    a, b = make_checkpoint("mlp", 0), make_checkpoint("mlp", 1)
    flat = landscape.interpolate(a, a, data, points=5, bn="repair", bn_data=data)
    np.testing.assert_allclose(flat["loss"].values, np.broadcast_to(flat["loss"].values[:, :1], (1, 5)), rtol=1e-5)
    ds = landscape.interpolate(a, b, data, points=5, bn="repair", bn_data=data)
    assert ds.attrs["bn"] == "repair"
    assert ds["loss"].values[0, 0] == evaluate(a.model, data)[0]
    assert ds["loss"].values[0, -1] == evaluate(b.model, data)[0]
    plain = landscape.interpolate(a, b, data, points=5, bn="none")
    assert ds["loss"].values[0, 0] == plain["loss"].values[0, 0]
    assert not np.allclose(ds["loss"].values[0, 1:-1], plain["loss"].values[0, 1:-1])


def test_repair_refuses_batchnorm_networks(data):
    c = make_checkpoint("cnn1d")
    with pytest.raises(UserError, match="bn 'repair' is for networks without BatchNorm"):
        landscape.interpolate(c, c, data, points=3, bn="repair")
