"""Every file layout the loading layer reads, each made by the library that makes it in practice, loads
to exactly the weights that were saved; what cannot be read safely is refused in one line."""

from __future__ import annotations

import argparse
import pathlib

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.utils import prune

import landscape
from landscape.sources import sniff
from tests.landscape.sources.conftest import ARGS, SPEC, resnet18
from training.errors import CheckpointError, UserError


def same_state(ckpt, model: nn.Module) -> None:
    want = model.state_dict()
    assert set(ckpt.state) == set(want)
    for k, v in want.items():
        assert torch.equal(ckpt.state[k], v), k


@pytest.fixture(scope="module")
def model():
    return resnet18(0)


def test_plain_state_dict_loads_exactly_and_is_dense(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    ckpt = landscape.load(tmp_path / "plain.pt", model=SPEC, model_args=ARGS)
    same_state(ckpt, model)
    source = ckpt.meta["source"]
    assert (source["format"], source["layout"], source["prefix_stripped"]) == ("torch-zip", "plain", "")
    assert source["mask_source"] == "none (dense)"
    assert all(bool(m.all()) for m in ckpt.mask.values())
    assert len(ckpt.mask) == 21  # 20 convolutions and the classifier


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "net", "model_state"])
def test_wrapper_dicts_ignore_optimizer_entries(tmp_path, model, key):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({"epoch": 3, key: model.state_dict(), "optimizer": opt.state_dict(), "best_acc": 0.5}, tmp_path / "w.pt")
    ckpt = landscape.load(tmp_path / "w.pt", model=SPEC, model_args=ARGS)
    same_state(ckpt, model)
    assert ckpt.meta["source"]["layout"] == key


def test_torchvision_reference_checkpoint_with_argparse_namespace(tmp_path, model):
    """torchvision's references/classification/train.py saves ``args`` as an argparse.Namespace."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 30)
    args = argparse.Namespace(model="resnet18", lr=0.1, epochs=90)
    payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
               "epoch": 89, "args": args}  # fmt: skip
    torch.save(payload, tmp_path / "model_89.pth")
    same_state(landscape.load(tmp_path / "model_89.pth", model=SPEC, model_args=ARGS), model)


def test_wrapper_prefixes_in_any_nesting(tmp_path, model):
    """DataParallel/DDP add ``module.``, torch.compile ``_orig_mod.``; each made by the wrapper itself."""
    wrapped = {
        "dp": nn.DataParallel(model).state_dict(),
        "compile": torch.compile(model).state_dict(),
        "compile-dp": torch.compile(nn.DataParallel(model)).state_dict(),
        "dp-compile": nn.DataParallel(torch.compile(model)).state_dict(),
    }
    stripped = {"dp": "module.", "compile": "_orig_mod.", "compile-dp": "_orig_mod.module.",
                "dp-compile": "module._orig_mod."}  # fmt: skip
    for name, state in wrapped.items():
        assert next(iter(state)).startswith(stripped[name])
        torch.save({"state_dict": state}, tmp_path / f"{name}.pt")
        ckpt = landscape.load(tmp_path / f"{name}.pt", model=SPEC, model_args=ARGS)
        same_state(ckpt, model)
        assert ckpt.meta["source"]["prefix_stripped"] == stripped[name]


def test_safetensors(tmp_path, model):
    safetensors = pytest.importorskip("safetensors.torch")
    safetensors.save_file(model.state_dict(), tmp_path / "model.bin")  # the bytes tell, not the extension
    assert sniff(tmp_path / "model.bin") == "safetensors"
    ckpt = landscape.load(tmp_path / "model.bin", model=SPEC, model_args=ARGS)
    same_state(ckpt, model)
    assert (ckpt.meta["source"]["format"], ckpt.meta["source"]["layout"]) == ("safetensors", "plain")


def test_torch_prune_buffers_give_the_mask_and_the_effective_weights(tmp_path):
    model = resnet18(2)
    convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    params = [*convs[:5], (model.fc, "weight")]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.6)
    state = model.state_dict()
    assert "conv1.weight_orig" in state and "conv1.weight_mask" in state
    torch.save(state, tmp_path / "pruned.pt")
    ckpt = landscape.load(tmp_path / "pruned.pt", model=SPEC, model_args=ARGS)
    assert ckpt.meta["source"]["mask_source"] == "torch-prune"
    assert set(ckpt.mask) == {f"{n}.weight" for n, m in model.named_modules() if hasattr(m, "weight_mask")}
    for name, module in model.named_modules():
        if hasattr(module, "weight_mask"):
            assert torch.equal(ckpt.mask[f"{name}.weight"], module.weight_mask.bool())
            assert torch.equal(ckpt.state[f"{name}.weight"], module.weight_orig * module.weight_mask)
    # the same model in memory, through the API, gives the same checkpoint
    mem = landscape.from_module(model)
    assert set(mem.mask) == set(ckpt.mask) and all(torch.equal(mem.state[k], v) for k, v in ckpt.state.items())
    assert hasattr(model.conv1, "weight_orig"), "from_module must not change the caller's module"


class SynFlowConv(nn.Conv2d):
    """A Synaptic-Flow ``Layers.layers.Conv2d``: raw weight, ``weight_mask`` and ``bias_mask`` buffers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("weight_mask", torch.ones_like(self.weight))
        self.register_buffer("bias_mask", torch.ones(self.out_channels))


class TurboMaskLinear(nn.Conv1d):
    """TurboPrune's ``Conv1dMask`` standing in for a Linear layer: weight ``[out, in, 1]`` and a ``mask`` buffer."""

    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, 1)
        self.register_buffer("mask", torch.ones_like(self.weight))


def small_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))


def test_synaptic_flow_and_turboprune_buffers(tmp_path, monkeypatch):
    torch.manual_seed(0)
    syn = nn.Sequential(SynFlowConv(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    syn[0].weight_mask.bernoulli_(0.5)
    torch.save(syn.state_dict(), tmp_path / "model.pt")
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parents[3]))
    spec = "tests.landscape.sources.test_files:small_net"
    ckpt = landscape.load(tmp_path / "model.pt", model=spec)
    assert ckpt.meta["source"]["mask_source"] == "synaptic-flow"
    assert torch.equal(ckpt.mask["0.weight"], syn[0].weight_mask.bool())
    assert torch.equal(ckpt.state["0.weight"], syn[0].weight * syn[0].weight_mask)
    assert "3.weight" not in ckpt.mask  # unmasked layers stay free

    turbo = {"0.weight": torch.randn(4, 3, 3, 3), "0.bias": torch.randn(4), "0.mask": torch.ones(4, 3, 3, 3),
             "3.weight": torch.randn(10, 784, 1), "3.bias": torch.randn(10),
             "3.mask": torch.randn(10, 784, 1).gt(0).float()}  # fmt: skip
    torch.save(turbo, tmp_path / "model_level_3.pt")
    ckpt = landscape.load(tmp_path / "model_level_3.pt", model=spec)
    assert ckpt.meta["source"]["mask_source"] == "turboprune"
    assert ckpt.state["3.weight"].shape == (10, 784)
    assert torch.equal(ckpt.state["3.weight"], (turbo["3.weight"] * turbo["3.mask"]).squeeze(-1))
    assert ckpt.meta["source"]["zeroed_on_load"] == 0  # multiplied by the buffer, nothing left to zero


def test_open_lth_level_mask_and_zeroing_on_load(tmp_path, model):
    level = tmp_path / "lottery_abc" / "replicate_1" / "level_2" / "main"
    level.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    mask = {f"{n}.weight": torch.rand(model.get_parameter(f"{n}.weight").shape, generator=gen).gt(0.7).int()
            for n in names}  # fmt: skip
    torch.save(mask, level / "mask.pth")
    torch.save(model.state_dict(), level / "model_ep2_it0.pth")  # weights non-zero at pruned positions
    ckpt = landscape.load(level / "model_ep2_it0.pth", model=SPEC, model_args=ARGS)
    assert ckpt.meta["source"]["mask_source"].startswith("open_lth mask.pth")
    pruned = sum(int((m == 0).sum()) for m in mask.values())
    assert ckpt.meta["source"]["zeroed_on_load"] == pruned
    for k, m in mask.items():
        assert torch.equal(ckpt.mask[k], m.bool())
        assert torch.equal(ckpt.state[k], model.state_dict()[k] * m)
    # a sidecar given by path does the same for any file; zeros and none as documented
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    by_path = landscape.load(tmp_path / "plain.pt", model=SPEC, model_args=ARGS, mask=level / "mask.pth")
    assert all(torch.equal(by_path.state[k], ckpt.state[k]) for k in ckpt.state)
    zeros = landscape.load(level / "model_ep2_it0.pth", model=SPEC, model_args=ARGS, mask="zeros")
    assert all(torch.equal(zeros.mask[k], model.state_dict()[k] != 0) for k in mask)
    dense = landscape.load(level / "model_ep2_it0.pth", model=SPEC, model_args=ARGS, mask="none")
    same_state(dense, model)


def test_lightning_checkpoint_saved_by_its_trainer(tmp_path):
    lightning = pytest.importorskip("lightning")

    class Module(lightning.LightningModule):
        def __init__(self, lr: float = 0.1):
            super().__init__()
            self.save_hyperparameters()
            self.model = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    module = Module()
    trainer = lightning.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    ckpt = landscape.load(tmp_path / "last.ckpt", model="torchvision:mobilenet_v2",
                          model_args={"num_classes": 10, "width_mult": 0.25})  # fmt: skip
    assert (ckpt.meta["source"]["layout"], ckpt.meta["source"]["prefix_stripped"]) == ("lightning", "model.")
    same_state(ckpt, module.model)


def test_timm_model(tmp_path):
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=10).eval()
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    same_state(landscape.load(tmp_path / "timm.pth", model="timm:resnet10t", model_args={"num_classes": 10}), model)


def test_what_cannot_be_read_safely_is_refused_in_one_line(tmp_path, model):
    torch.save({"model": model.state_dict(), "root": pathlib.PosixPath("/data")}, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match=r"pickles objects that safe loading does not allow \(pathlib") as exc:
        landscape.load(tmp_path / "unsafe.pt", model=SPEC, model_args=ARGS)
    assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value)

    scripted = torch.jit.trace(small_net().eval(), torch.randn(1, 3, 16, 16))
    scripted.save(str(tmp_path / "scripted.pt"))
    with pytest.raises(CheckpointError, match="is a TorchScript archive; loading one runs its code"):
        landscape.load(tmp_path / "scripted.pt", model=SPEC, model_args=ARGS)

    (tmp_path / "notes.pt").write_text("not weights")
    with pytest.raises(CheckpointError, match="not a torch checkpoint or safetensors file"):
        landscape.load(tmp_path / "notes.pt", model=SPEC, model_args=ARGS)

    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError) as exc:
        landscape.load(tmp_path / "plain.pt", model="torchvision:resnet34", model_args=ARGS)
    message = str(exc.value)
    assert "does not fit the model: 96 missing (layer1.2.conv1.weight" in message
    assert "93 more) of 218 model keys" in message
    assert message.count(",") < 12 and len(message) < 400, message  # counts and at most three keys of each kind
    with pytest.raises(UserError, match="say which network reads it with model"):
        landscape.load(tmp_path / "plain.pt")


def test_bad_specs_and_masks_are_one_line_user_errors(tmp_path, model, monkeypatch):
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_models.py").write_text("import does_not_exist\n")
    (tmp_path / "raising_models.py").write_text("def net(**kw):\n    raise RuntimeError('no GPU here')\n")
    cases = {
        "resnet99": "unknown model 'resnet99'",
        "torchvision:resnet99": "unknown torchvision model 'resnet99'",
        "broken_models:net": r"cannot import broken_models \(ModuleNotFoundError",
        "raising_models:net": "raised RuntimeError: no GPU here",
        "os.path;rm:x": "is not a name of the form package.module:callable",
        "resnet20": "needs its number of classes",
    }
    for spec, message in cases.items():
        with pytest.raises(UserError, match=message):
            landscape.load(tmp_path / "plain.pt", model=spec)
    bad_mask = {"conv1.weight": torch.ones(3, 3)}
    torch.save(bad_mask, tmp_path / "mask.pth")
    bad_shape = r"entry conv1.weight has shape \(3, 3\) but the parameter has \(64, 3, 7, 7\)"
    with pytest.raises(CheckpointError, match=bad_shape):
        landscape.load(tmp_path / "plain.pt", model=SPEC, model_args=ARGS, mask=tmp_path / "mask.pth")
    with pytest.raises(UserError, match="neither auto, none, zeros nor an existing file"):
        landscape.load(tmp_path / "plain.pt", model=SPEC, model_args=ARGS, mask="sometimes")


def test_an_attribute_prefix_is_found_or_given(tmp_path, model):
    """A wrapper module's attribute name (Lightning's ``model.``, here ``backbone.``) under a DDP prefix."""
    state = {f"module.backbone.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    auto = landscape.load(tmp_path / "wrapped.pt", model=SPEC, model_args=ARGS)
    same_state(auto, model)
    assert auto.meta["source"]["prefix_stripped"] == "module.backbone."
    given = landscape.load(tmp_path / "wrapped.pt", model=SPEC, model_args=ARGS, prefix="backbone")
    same_state(given, model)
    with pytest.raises(CheckpointError, match=r"the prefix 'head\.' \(e\.g\. backbone\.conv1"):
        landscape.load(tmp_path / "wrapped.pt", model=SPEC, model_args=ARGS, prefix="head")


def test_a_wrapped_module_in_memory_keeps_its_own_keys(model):
    """An nn.Module's own keys fit itself: a DataParallel wrapper's ``module.`` is not stripped from it."""
    wrapped = nn.DataParallel(model)
    ckpt = landscape.from_module(wrapped)
    assert set(ckpt.state) == set(wrapped.state_dict()) and ckpt.meta["source"]["prefix_stripped"] == ""
    assert all(torch.equal(ckpt.state[f"module.{k}"], v) for k, v in model.state_dict().items())
