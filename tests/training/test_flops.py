"""Per-layer forward FLOPs against torch's own counter, and the training-cost convention."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from training.flops import flop_model
from training.masks import full_mask, prunable_names
from training.models import MODELS, build


def counted(model: nn.Module, shape) -> int:
    """``FlopCounterMode``'s forward FLOPs for one sample (2 per multiply-accumulate), in train mode with
    gradients on: in eval mode without gradients ``nn.MultiheadAttention`` takes its fused fast path,
    which the counter does not see at all."""
    model.train()
    with FlopCounterMode(display=False) as mode:
        model(torch.zeros(2, *shape))
    model.eval()
    return mode.get_total_flops() // 2


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_flops_equal_torchs_counter_on_registry_models(name):
    shape, classes = ((1, 40), 10) if name in ("mlp", "cnn1d", "resnet20_1d") else ((3, 32, 32), 100)
    torch.manual_seed(0)
    model = build(name, classes, input_shape=shape)
    fm = flop_model(model, shape)
    if name == "vit":  # the counter registers no CPU kernel of scaled_dot_product_attention (pytorch#195460)
        assert fm.dense_forward == counted(model, shape) + fm.dense and fm.dense == 7 * 4 * 65 * 65 * 384
    else:
        assert fm.dense_forward == counted(model, shape)
    weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}
    weights |= {f"{n}.in_proj_weight" for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    assert set(fm.layers) == weights
    assert set(prunable_names(model, prune_patch_and_head=True)) <= set(fm.layers)  # every prunable weight costs


def test_grouped_convolutions_and_attention_equal_torchs_counter():
    """Depthwise convolutions (torchvision's MobileNetV2, CIFAR strides) and ``nn.MultiheadAttention``
    (its output projection is used without calling the submodule; the scores are counted dense)."""
    from torchvision.models import MobileNetV2

    torch.manual_seed(0)
    mobile = MobileNetV2(num_classes=10, width_mult=0.5)
    mobile.features[0][0].stride = (1, 1)
    assert flop_model(mobile, (3, 32, 32)).dense_forward == counted(mobile, (3, 32, 32))

    class Attention(nn.Module):
        def __init__(self, separate: bool):
            super().__init__()
            self.embed = nn.Linear(8, 16)
            kdim = 12 if separate else None
            self.key = nn.Linear(8, 12 if separate else 16)
            self.attn = nn.MultiheadAttention(16, 4, kdim=kdim, vdim=kdim, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            h = self.embed(x)
            out, _ = self.attn(h, self.key(x), self.key(x), need_weights=True)  # bmm kernels: counted on CPU
            return self.head(out.mean(1))

    for separate in (False, True):
        model = Attention(separate)
        fm = flop_model(model, (5, 8))
        assert fm.dense_forward == counted(model, (5, 8))
        assert fm.dense == 4 * 5 * 5 * 16  # Q·Kᵀ and the weighted sum, never sparse
        projections = (
            {"attn.q_proj_weight", "attn.k_proj_weight", "attn.v_proj_weight"} if separate else {"attn.in_proj_weight"}
        )
        assert projections | {"attn.out_proj.weight"} <= set(fm.layers)
        assert set(prunable_names(model)) <= set(fm.layers)  # every prunable weight has its cost


def test_masked_cost_scales_each_layer_by_its_density():
    torch.manual_seed(0)
    model = build("cnn1d", 10, input_shape=(1, 40), width=8)
    fm = flop_model(model, (1, 40))
    names = prunable_names(model)
    mask = full_mask(model, names)
    assert fm.forward(mask) == fm.forward(None) == fm.dense_forward
    first, rest = names[0], names[1:]
    mask[first].view(-1)[: mask[first].numel() // 4] = False  # the first layer at density 3/4
    for n in rest:
        mask[n].zero_()  # the others empty
    assert fm.forward(mask) == pytest.approx(0.75 * fm.layers[first] + fm.dense)
    assert fm.training(mask, 10) == pytest.approx(3 * 10 * fm.forward(mask))
    assert fm.dense_weight_gradient(mask) == pytest.approx(fm.dense_forward - fm.forward(mask))


def reference_forward(model: nn.Module, shape, mask) -> float:
    """f(M) from torch's counter: each module's forward FLOPs, times its weight's mask density."""
    model.eval()
    with FlopCounterMode(display=False, depth=None) as mode, torch.no_grad():
        model(torch.zeros(1, *shape))
    per_module = mode.get_flop_counts()
    total = 0.0
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            flops = sum(per_module[f"{type(model).__name__}.{name}"].values())
            m = mask.get(f"{name}.weight")
            total += flops * (1.0 if m is None else float(m.double().mean()))
    return total


def test_train_flops_of_runs_follow_the_convention(tmp_path):
    """PaI (random and SNIP), LRR across levels and the manifest's inference FLOPs, against torch's counter
    and hand sums: 3·f(M) per sample trained, pruning scores charged once, evaluation free."""
    import json

    from landscape.experiments.cost import training_cost
    from tests.helpers import tiny_config
    from training.checkpoint import load_checkpoint
    from training.config import replace_dotted
    from training.run import train

    n = 4000  # MNIST-1D's training samples; batch 256 leaves no single-sample batch
    random = train(tiny_config(), tmp_path / "random", quiet=True)
    ckpt = load_checkpoint(random.checkpoint())
    f_mask = reference_forward(ckpt.model, (1, 40), ckpt.mask)
    flops = random.metrics["train_flops"].values.ravel()
    np.testing.assert_allclose(flops, 3 * f_mask * n * np.arange(1, 5), rtol=1e-12)
    entries = json.loads((random.run_dir / "manifest.json").read_text())["checkpoints"]
    assert all(e["inference_flops"] == pytest.approx(f_mask, rel=1e-12) for e in entries)
    cost = training_cost(random.metrics)
    f_dense = reference_forward(ckpt.model, (1, 40), {})
    assert cost.epochs == 4 and cost.dense_epochs == pytest.approx(4 * f_mask / f_dense, rel=1e-12)

    snip = train(replace_dotted(tiny_config(), {"mask.method": "snip"}), tmp_path / "snip", quiet=True)
    mask = load_checkpoint(snip.checkpoint()).mask
    per_epoch = 3 * reference_forward(ckpt.model, (1, 40), mask) * n
    scores = 3 * f_dense * 10 * 10  # one forward and backward pass of 10 samples per class
    np.testing.assert_allclose(snip.metrics["train_flops"].values.ravel(), scores + per_epoch * np.arange(1, 5))

    lrr_cfg = replace_dotted(
        tiny_config(),
        {"recipe.name": "lrr", "mask.method": "none", "mask.sparsity": 0.75, "recipe.prune_fraction": 0.5,
         "schedule.name": "one-cycle", "schedule.cycles": 1, "schedule.epochs": 2},
    )  # fmt: skip
    lrr = train(lrr_cfg, tmp_path / "lrr", quiet=True)
    expected, total = [], 0.0
    for stage in lrr.stages:
        m = load_checkpoint(lrr.run_dir / stage["dir"] / "cycle_1.pt").mask
        for _ in range(2):
            total += 3 * reference_forward(ckpt.model, (1, 40), m) * n
            expected.append(total)
    got = lrr.metrics["train_flops"].values.ravel()
    np.testing.assert_allclose(got[np.isfinite(got)], expected, rtol=1e-12)  # cumulative over the levels
    assert training_cost(lrr.metrics).train_flops == pytest.approx(expected[-1], rel=1e-12)


@pytest.mark.parametrize(
    "model, layers",
    [  # F_l written out from the layer sizes: 2 FLOPs per multiply-accumulate, one MNIST-1D sample (1 × 40)
        ("mlp", {"features.1.weight": 2 * 40 * 16, "features.3.weight": 2 * 16 * 16, "fc.weight": 2 * 16 * 10}),
        (
            "cnn1d",
            {
                "features.0.weight": 2 * 8 * 40 * (1 * 5),  # 1 → 8 channels, kernel 5, length 40
                "features.3.weight": 2 * 8 * 20 * (8 * 3),  # 8 → 8, kernel 3, stride 2: length 20
                "features.6.weight": 2 * 16 * 10 * (8 * 3),  # 8 → 16: length 10
                "features.9.weight": 2 * 16 * 5 * (16 * 3),  # 16 → 16: length 5
                "fc.weight": 2 * (16 * 5) * 10,
            },
        ),
    ],
)
def test_train_flops_equal_hand_computed_values(tmp_path, model, layers):
    from tests.helpers import tiny_config
    from training.config import ModelConfig
    from training.run import train

    cfg = tiny_config(model=ModelConfig(name=model, width=16 if model == "mlp" else 8))
    run = train(cfg, tmp_path, quiet=True)
    mask = torch.load(run.run_dir / "init.pt", weights_only=True)["mask"]
    assert set(mask) == set(layers)
    f = sum(flops * float(mask[name].double().mean()) for name, flops in layers.items())
    epochs = np.arange(1, 5)  # 2 cycles of 2 epochs; 4000 training samples each, batch 256
    np.testing.assert_allclose(run.metrics["train_flops"].values.ravel(), 3 * f * 4000 * epochs, rtol=1e-12)
