"""Pruning methods against references and invariants (issue: pruning methods and recipes)."""

import itertools
import math

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from training.errors import ConfigError
from training.masks import full_mask, layer_densities, prunable_names
from training.models import build
from training.pruning import (
    erk_densities,
    grasp_raw_scores,
    layer_kinds,
    layer_shapes,
    prune,
    rearrange,
    shuffle_weights,
    smart_ratio_densities,
    synflow_round_scores,
    threshold_mask,
)


def _model(name="cnn1d", **kw):
    torch.manual_seed(0)
    shape = (1, 40) if name in ("cnn1d", "mlp") else (3, 32, 32)
    return build(name, 10, input_shape=shape, **kw)


def _data(n_per_class=4, shape=(1, 40), classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_per_class * classes, *shape, generator=g)
    y = torch.arange(classes).repeat(n_per_class)
    return [(x, y)]


def _count(mask):
    return sum(int(m.sum()) for m in mask.values()), sum(m.numel() for m in mask.values())


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "synflow"])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_exact_density_for_every_scorer_and_scope(method, scope, sparsity):
    model = _model()
    options = {"rounds": 5} if method == "synflow" else {}
    mask = prune(model, method, sparsity, data=_data(), scope=scope, **options)
    kept, total = _count(mask)
    if scope == "global":
        assert total - kept == round(sparsity * total)
    else:
        for m in mask.values():
            assert m.numel() - int(m.sum()) == round(sparsity * m.numel())
    assert all(m.dtype == torch.bool for m in mask.values())


@pytest.mark.parametrize(
    "distribution, options",
    [
        ("uniform", {}),
        ("erk", {}),
        ("er-balanced", {}),
        ("smart-ratio", {}),
        ("smart-ratio", {"variant": "cubic"}),
        ("smart-ratio", {"variant": "linear"}),
        ("smart-ratio", {"variant": "ascend"}),
    ],
)
@pytest.mark.parametrize("model_name", ["cnn1d", "resnet20", "vgg16"])
def test_random_samplers_place_exact_counts(distribution, options, model_name):
    model = _model(model_name)
    names = prunable_names(model)
    gen = torch.Generator().manual_seed(1)
    mask = prune(model, "random", 0.9, distribution=distribution, generator=gen, **options)
    from training.pruning import DISTRIBUTIONS

    l2 = model_name != "resnet20"  # Su et al.'s code divides by l² for every network that is not a ResNet
    dens = DISTRIBUTIONS[distribution](
        layer_shapes(model, names), 0.1, kinds=layer_kinds(model, names), l2_scaling=l2, **options
    )
    rounding = math.floor if distribution == "smart-ratio" else round
    for n in names:
        assert int(mask[n].sum()) == max(1, min(mask[n].numel(), rounding(dens[n] * mask[n].numel()))), n
    kept, total = _count(mask)
    if distribution in ("uniform", "erk"):
        assert kept / total == pytest.approx(0.1, abs=0.005)
    else:
        assert kept / total <= 0.1 + 0.005


def test_global_magnitude_equals_torch_prune():
    model = _model("resnet20")
    names = prunable_names(model)
    mask = prune(model, "magnitude", 0.8)
    modules = dict(model.named_modules())
    targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in names]
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=0.8)
    for n in names:
        assert torch.equal(modules[n.rsplit(".", 1)[0]].weight_mask.bool(), mask[n]), n
    for module, _ in targets:  # undo, leaving the model as it was
        torch_prune.remove(module, "weight")


def test_layerwise_magnitude_equals_torch_l1_unstructured():
    model = _model()
    mask = prune(model, "magnitude", 0.7, scope="layerwise")
    modules = dict(model.named_modules())
    for n in mask:
        module = modules[n.rsplit(".", 1)[0]]
        ones = torch.ones_like(module.weight)
        ref = torch_prune.L1Unstructured(amount=0.7).compute_mask(module.weight.detach(), ones)
        assert torch.equal(ref.bool(), mask[n]), n


def test_ties_are_pruned():
    scores = {"a": torch.tensor([1.0, 2.0, 2.0, 2.0, 3.0])}
    mask = threshold_mask(scores, {"a": torch.ones(5, dtype=torch.bool)}, 0.4)
    assert mask["a"].tolist() == [False, False, False, False, True]


def test_existing_mask_is_respected_and_sparsity_is_global():
    model = _model()
    first = prune(model, "magnitude", 0.5)
    second = prune(model, "snip", 0.8, data=_data(), mask=first)
    assert all(not torch.any(second[n] & ~first[n]) for n in first)  # pruned stays pruned
    kept, total = _count(second)
    assert total - kept == round(0.8 * total)
    # asking for less sparsity than the mask has changes nothing
    same = prune(model, "magnitude", 0.3, mask=first)
    assert all(torch.equal(same[n], first[n]) for n in first)
    rnd = prune(model, "random", 0.8, mask=first, generator=torch.Generator().manual_seed(0))
    assert all(not torch.any(rnd[n] & ~first[n]) for n in first)


def test_model_is_not_modified():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("snip", "grasp", "synflow", "magnitude", "random"):
        prune(model, method, 0.9, data=_data(), **({"rounds": 3} if method == "synflow" else {}))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_synflow_conservation_law():
    """Bias-free ReLU network: every layer's score sum equals R = Σ f(1) (Euler homogeneity)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(20, 30, bias=False),
        nn.ReLU(),
        nn.Linear(30, 25, bias=False),
        nn.ReLU(),
        nn.Linear(25, 10, bias=False),
    )
    names = ["0.weight", "2.weight", "4.weight"]
    scores, r = synflow_round_scores(model, names, full_mask(model, names), (20,), float64=True)
    sums = [float(scores[n].sum()) for n in names]
    assert sums == pytest.approx([r] * 3, rel=1e-10)
    # and with a mask: pruned weights score zero and conservation still holds
    mask = prune(model, "random", 0.5, names=names, generator=torch.Generator().manual_seed(0))
    scores, r = synflow_round_scores(model, names, mask, (20,), float64=True)
    assert [float(scores[n].sum()) for n in names] == pytest.approx([r] * 3, rel=1e-10)
    assert all(torch.all(scores[n][~mask[n]] == 0) for n in names)


def test_synflow_avoids_layer_collapse_with_100_rounds():
    model = _model("resnet20")
    mask = prune(model, "synflow", 0.99, input_shape=(3, 32, 32))  # the default: 100 rounds
    assert all(int(m.sum()) > 0 for m in mask.values())
    # Known SynFlow behaviour on ResNets (Synaptic-Flow#7): 1x1 shortcuts keep almost nothing.
    shortcut = [int(m.sum()) for n, m in mask.items() if "shortcut" in n]
    assert max(shortcut) < 10


@pytest.mark.parametrize("reinit_last", [True, False])
def test_grasp_keeps_the_lowest_scores(reinit_last):
    model = _model()
    data = _data()
    names = prunable_names(model)
    mask = prune(model, "grasp", 0.8, data=data, reinit_last=reinit_last, seed=3)
    raw = grasp_raw_scores(model, names, full_mask(model, names), data, reinit_last=reinit_last, seed=3)
    kept = torch.cat([raw[n][mask[n]] for n in names])
    pruned = torch.cat([raw[n][~mask[n]] for n in names])
    assert kept.max() <= pruned.min()  # GraSP removes the largest raw scores
    assert pruned.numel() == round(0.8 * (kept.numel() + pruned.numel()))


def test_snip_matches_manual_gradient():
    model = _model("mlp", width=16)
    data = _data()
    names = prunable_names(model)
    mask = prune(model, "snip", 0.6, data=data)
    x, y = data[0]
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    params = dict(model.named_parameters())
    scores = torch.cat([(params[n] * params[n].grad).abs().flatten() for n in names])
    k = round(0.6 * scores.numel())
    threshold = torch.kthvalue(scores.double(), k).values
    expected = torch.cat([mask[n].flatten() for n in names])
    assert torch.equal(scores.double() > threshold, expected)
    model.zero_grad()


def test_er_balanced_rule():
    shapes = {"a": torch.Size([10]), "b": torch.Size([1000]), "c": torch.Size([1000]), "d": torch.Size([30])}
    from training.pruning import er_balanced_densities

    d = er_balanced_densities(shapes, 0.2)  # budget 408, share 102 per layer
    assert d["a"] == 1.0  # capped at 10: 92 carried to b, c, d
    assert d["b"] * 1000 == pytest.approx(398 / 3) and d["c"] * 1000 == pytest.approx((398 - 398 / 3) / 2)
    assert d["d"] == 1.0  # capped again; what it cannot take is lost, as in TurboPrune


def test_erk_matches_rigl_formula():
    model = _model("resnet20")
    names = prunable_names(model)
    shapes = {n: p.shape for n, p in model.named_parameters() if n in names}
    for density in (0.05, 0.2, 0.5):
        d = erk_densities(shapes, density)
        numel = {n: math.prod(s) for n, s in shapes.items()}
        assert sum(d[n] * numel[n] for n in names) == pytest.approx(density * sum(numel.values()), rel=1e-9)
        assert all(0 < v <= 1 for v in d.values())
        sparse = [n for n in names if d[n] < 1]
        eps = {d[n] / (sum(shapes[n]) / numel[n]) for n in sparse}
        assert max(eps) == pytest.approx(min(eps), rel=1e-9)  # one ε for all non-dense layers
        dense = [n for n in names if d[n] == 1.0]
        # a layer is dense only if the formula would have given it density > 1
        assert all(sum(shapes[n]) / numel[n] * min(eps) >= 1 - 1e-9 for n in dense)
    clamp = erk_densities(shapes, 0.5, erk="clamp")
    assert sum(clamp[n] * math.prod(shapes[n]) for n in names) <= 0.5 * sum(math.prod(s) for s in shapes.values())


class _ThreeConvs(nn.Module):
    """Three 3x3 convs 1->2->4->8 and a linear layer 8->10: N_l = 18, 72, 288 and 80 weights, 458 in all."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, bias=False)
        self.conv2 = nn.Conv2d(2, 4, 3, bias=False)
        self.conv3 = nn.Conv2d(4, 8, 3, bias=False)
        self.fc = nn.Linear(8, 10)


# Su et al.'s smart ratios worked out by hand for _ThreeConvs (L = 4 layers, the linear one included).
# Raw conv ratios r_l = (L−l+1)² + (L−l+1): 20, 12, 6. TEST = Σ_conv ⌊N_l r_l⌋ = 18·20 + 72·12 + 288·6 = 2952.
# The linear layer keeps ⌊0.3 · 80⌋ = 24 weights; goal = ⌊458 · d⌋ − ⌊0.3 · 80⌋; p_l = goal · r_l / TEST.
#
# Sparsity 0.7 (d = 0.3): goal = ⌊137.4⌋ − 24 = 113; no layer overflows:
#   conv1 ⌊18 · 113·20/2952⌋ = ⌊13.78⌋ = 13, conv2 ⌊72 · 113·12/2952⌋ = ⌊33.07⌋ = 33,
#   conv3 ⌊288 · 113·6/2952⌋ = ⌊66.15⌋ = 66, fc 24.
# Sparsity 0.6 (d = 0.4): goal = ⌊183.2⌋ − 24 = 159; p_1 = 159·20/2952 = 1.077 > 1, so conv1 is dense (18) and
#   carries 18 · (3180 − 2952)/2952 = 1.390 weights to conv2: ⌊72 · 159·12/2952 + 1.390⌋ = ⌊46.54 + 1.39⌋ = 47.
#   conv2 does not overflow and the carry is used up, so the walk stops: conv3 ⌊288 · 159·6/2952⌋ = ⌊93.07⌋ = 93,
#   fc 24.
SMART_RATIO_KEPT = {
    0.7: {"conv1.weight": 13, "conv2.weight": 33, "conv3.weight": 66, "fc.weight": 24},
    0.6: {"conv1.weight": 18, "conv2.weight": 47, "conv3.weight": 93, "fc.weight": 24},
}
# With the 1/l² rule (Su et al.'s code for every network that is not a ResNet, so for _ThreeConvs by default):
# r_l / l² = 20, 12/4 = 3, 6/9 = 0.667; TEST = 18·20 + 72·3 + ⌊288 · 0.667⌋ = 360 + 216 + 191 = 767 (float
# rounding puts 288 · 6/9 just under 192; with 768 every count below is the same).
# Sparsity 0.7: goal = 113. p_1 = 113·20/767 = 2.946 > 1: conv1 is dense (18) and carries 1.946 · 18 = 35.04
#   weights; conv2 takes them: ⌊72 · 113·3/767 + 35.04⌋ = ⌊31.82 + 35.04⌋ = 66 (under its 72), the carry is
#   used up; conv3 ⌊288 · 113·0.667/767⌋ = ⌊28.29⌋ = 28; fc 24.
SMART_RATIO_KEPT_L2 = {0.7: {"conv1.weight": 18, "conv2.weight": 66, "conv3.weight": 28, "fc.weight": 24}}


@pytest.mark.parametrize("sparsity", sorted(SMART_RATIO_KEPT))
def test_smart_ratio_counts_worked_out_by_hand(sparsity):
    model = _ThreeConvs()
    gen = torch.Generator().manual_seed(0)
    mask = prune(model, "random", sparsity, distribution="smart-ratio", generator=gen, l2_scaling=False)
    assert {n: int(m.sum()) for n, m in mask.items()} == SMART_RATIO_KEPT[sparsity]


def test_smart_ratio_divides_by_l_squared_on_networks_that_are_not_resnets():
    gen = torch.Generator().manual_seed(0)
    mask = prune(_ThreeConvs(), "random", 0.7, distribution="smart-ratio", generator=gen)
    assert {n: int(m.sum()) for n, m in mask.items()} == SMART_RATIO_KEPT_L2[0.7]
    from training.pruning import smart_ratio_l2_scaling

    assert smart_ratio_l2_scaling(_model("vgg16")) and not smart_ratio_l2_scaling(_model("resnet20"))
    assert smart_ratio_l2_scaling(_model("cnn1d")) and not smart_ratio_l2_scaling(_model("cnn1d"), "vgg")


def test_smart_ratio_shape_on_resnet20():
    """Invariants on a real network: conv keep ratios fall with depth, the linear layer keeps 30%."""
    model = _model("resnet20")
    names = prunable_names(model)
    kinds = layer_kinds(model, names)
    for sparsity in (0.9, 0.95, 0.98):
        mask = prune(model, "random", sparsity, distribution="smart-ratio", generator=torch.Generator().manual_seed(0))
        ratios = layer_densities(mask)
        conv = [ratios[n] for n in names if kinds[n] == "conv"]
        assert all(a >= b - 1e-3 for a, b in itertools.pairwise(conv))  # non-increasing in l
        assert ratios["fc.weight"] == pytest.approx(0.3, abs=1e-3)
        kept, total = _count(mask)
        assert total * (1 - sparsity) - len(names) <= kept <= total * (1 - sparsity)  # floors lose < 1 per layer


def test_smart_ratio_overflow_is_carried_forward():
    model = _model("resnet20")
    names = prunable_names(model)
    shapes = {n: dict(model.named_parameters())[n].shape for n in names}
    d = smart_ratio_densities(shapes, 0.6, layer_kinds(model, names))  # 40% sparsity overflows early layers
    assert d[names[0]] == 1.0 and all(0 <= v <= 1 for v in d.values())
    numel = {n: math.prod(s) for n, s in shapes.items()}
    conv = [n for n in names if n != "fc.weight"]
    goal = math.floor(sum(numel.values()) * 0.6) - math.floor(0.3 * numel["fc.weight"])
    assert sum(d[n] * numel[n] for n in conv) == pytest.approx(goal, rel=1e-9)  # the budget is preserved


def test_rearrange_keeps_per_layer_counts():
    model = _model()
    mask = prune(model, "magnitude", 0.8)
    shuffled = rearrange(mask, torch.Generator().manual_seed(0))
    for n in mask:
        assert int(shuffled[n].sum()) == int(mask[n].sum()) and shuffled[n].shape == mask[n].shape
    assert any(not torch.equal(shuffled[n], mask[n]) for n in mask)


def test_shuffle_weights_keeps_the_multiset_of_survivors():
    model = _model()
    mask = prune(model, "magnitude", 0.8)
    state = model.state_dict()
    out = shuffle_weights(state, mask, torch.Generator().manual_seed(0))
    for n, m in mask.items():
        assert torch.equal(torch.sort(out[n][m]).values, torch.sort(state[n][m]).values)
        assert torch.equal(out[n][~m], state[n][~m])
    assert any(not torch.equal(out[n], state[n]) for n in mask)


def test_class_balanced_indices():
    from training.data import class_balanced_indices

    y = torch.arange(100) % 5
    idx = class_balanced_indices(y, 3, torch.Generator().manual_seed(0))
    assert y[idx].bincount().tolist() == [3] * 5 and len(set(idx.tolist())) == 15


def test_bad_arguments():
    model = _model()
    with pytest.raises(ConfigError, match="sparsity must be in"):
        prune(model, "magnitude", 1.0)
    with pytest.raises(ConfigError, match="unknown pruning method"):
        prune(model, "magnet", 0.5)
    with pytest.raises(ConfigError, match="needs labelled data"):
        prune(model, "snip", 0.5)
    with pytest.raises(ConfigError, match="unknown scope"):
        prune(model, "magnitude", 0.5, scope="local")
    with pytest.raises(ConfigError, match="unknown layer distribution"):
        prune(model, "random", 0.5, distribution="pareto")


def test_smart_ratio_refuses_a_budget_the_linear_layers_exhaust():
    model = _model("cnn1d", width=8)  # fc holds 800 of 2,184 prunable weights; 30% of it exceeds 10%
    with pytest.raises(ConfigError, match=r"linear layers' fixed keep ratio 0\.3 alone exceeds the budget"):
        prune(model, "random", 0.9, distribution="smart-ratio")
