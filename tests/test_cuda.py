"""The CUDA paths, checked against the CPU: the device loader, training (fp32, bf16 autocast, channels_last,
torch.compile) of resnet20 on CIFAR-shaped and resnet50 on ImageNet-shaped data, DDP with NCCL, and the
``interpolate``, ``hessian`` and ``analyze`` commands. Marked ``cuda``; skipped without a GPU.

Tolerances (relative unless stated), each the CPU float32 result against the CUDA one:

* device loader batches: bit for bit (same draws, the same correctly rounded float32 operations);
* one training step at initialisation (loss; relative L2 error of the whole gradient), through the trainer's
  speed options: fp32 with TF32 off, channels_last and torch.compile 1e-4 and 1e-3 (on the CPU, a change of
  thread count moves the gradient by 2e-6 for resnet20 and 7e-6 for resnet50); the GPU defaults (cuDNN
  convolutions in TF32, a 10-bit mantissa) 1e-2 on the loss; ``--amp bf16`` (8-bit mantissa) 2e-2 on the
  loss. Reduced-precision gradients are not compared: at initialisation, BatchNorm's backward cancels most
  of each gradient, and CPU bf16 autocast already moves the whole gradient by 24% (resnet20) and 130%
  (resnet50) in relative L2;
* one epoch of ``train`` (TF32 off): resnet20 1e-3 on the mean training loss and 1e-2 on the test loss
  (bf16: 5e-2 and 1e-1); resnet50 (two steps at lr 0.001) 5e-3 on the training loss (bf16 5e-2) and a
  finite test loss. Test losses after a few steps are the sensitive numbers: the BatchNorm running
  statistics are barely updated and eval-mode logits are large; on the CPU alone the thread count moves
  resnet20's by 1e-4 and channels_last by 1.4e-3, while its training loss moves by 3e-6;
* analyses with TF32 off: 1e-4 on interpolated losses, 1e-3 on Hessian eigenvalues (iterative, stopped at
  tol 1e-3 on both devices) and on the ``analyze`` summary; error rates within two samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch.nn import functional as F

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (cuda tests compare CUDA with CPU)"),
]


@pytest.fixture
def fp32():
    """Full float32 on the GPU: cuDNN convolutions and matmuls without TF32 (restored afterwards)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _close(a: float, b: float, rtol: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(abs(a), abs(b))


# -------------------------------------------------------------------------------------------- loader


def test_device_loader_batches_on_cuda_equal_the_cpu_batches_bitwise():
    from training.data.images import cifar_bundle

    g = np.random.default_rng(0)
    bundle = cifar_bundle(
        "cifar10",
        (g.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8), np.arange(1000) % 10),
        (g.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8), np.arange(300) % 10),
    )
    gpu = bundle.to("cuda")
    assert gpu.train.images.is_cuda and gpu.train_eval.images is gpu.train.images
    for seed in (0, 1):
        for (x, y), (u, v) in zip(bundle.train_loader(256, seed), gpu.train_loader(256, seed), strict=True):
            assert u.is_cuda and torch.equal(x, u.cpu()) and torch.equal(y, v.cpu())
    for (x, _), (u, _) in zip(bundle.eval_loader("test", 128), gpu.eval_loader("test", 128), strict=True):
        assert torch.equal(x, u.cpu())


# ------------------------------------------------------------------------------------------ training

SHAPES = {"resnet20": ((3, 32, 32), 64), "resnet50": ((3, 224, 224), 16)}  # input shape, batch
OPTIONS = {
    # name: (trainer options, TF32 off, (loss rtol, gradient relative L2 error or None: not compared))
    "fp32": ({}, True, (1e-4, 1e-3)),
    "tf32-default": ({}, False, (1e-2, None)),
    "bf16": ({"amp": "bf16"}, True, (2e-2, None)),
    "channels-last": ({"channels_last": True}, True, (1e-4, 1e-3)),
    "compile": ({"compile": True}, True, (1e-4, 1e-3)),
}


def _first_step(model_name: str, device: str, amp: str = "none", channels_last: bool = False, compile: bool = False):
    """Loss and gradient of one training step at initialisation, through the trainer's speed options."""
    from training.distributed import autocast, prepare_for_speed
    from training.models import build

    shape, batch = SHAPES[model_name]
    torch.manual_seed(0)
    model = build(model_name, 10, input_shape=list(shape)).to(device).train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, *shape, generator=g).to(device), torch.randint(0, 10, (batch,), generator=g).to(device)
    runner = prepare_for_speed(model, channels_last, compile)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(torch.device(device), amp):
        loss = F.cross_entropy(runner(x).float(), y)
    loss.backward()
    return float(loss.detach()), torch.cat([p.grad.detach().float().flatten().cpu() for p in model.parameters()])


@pytest.mark.slow
@pytest.mark.parametrize("model_name", list(SHAPES))
@pytest.mark.parametrize("option", list(OPTIONS))
def test_training_step_on_cuda_agrees_with_the_cpu(model_name, option):
    changes, full_fp32, (loss_tol, grad_tol) = OPTIONS[option]
    ref_loss, ref_grad = _first_step(model_name, "cpu")
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = not full_fp32
    try:
        loss, grad = _first_step(model_name, "cuda", **changes)
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    assert _close(loss, ref_loss, loss_tol), f"loss: CUDA {loss} vs CPU {ref_loss} (rtol {loss_tol})"
    if grad_tol is not None:
        err = float((grad - ref_grad).norm() / ref_grad.norm())
        assert err <= grad_tol, f"gradient relative L2 error {err:.2e} > {grad_tol}"


RUNS = {
    # name: (model, train samples, batch size, lr, trainer options, (train-loss rtol, test-loss rtol or None))
    "resnet20-fp32": ("resnet20", 512, 128, 0.05, {}, (1e-3, 1e-2)),
    "resnet20-bf16": ("resnet20", 512, 128, 0.05, {"amp": "bf16"}, (5e-2, 1e-1)),
    "resnet20-channels-last": ("resnet20", 512, 128, 0.05, {"channels_last": True}, (1e-3, 1e-2)),
    "resnet20-compile": ("resnet20", 512, 128, 0.05, {"compile": True}, (1e-3, 1e-2)),
    "resnet50-fp32": ("resnet50", 32, 16, 0.001, {}, (5e-3, None)),
    "resnet50-bf16": ("resnet50", 32, 16, 0.001, {"amp": "bf16"}, (5e-2, None)),
    "resnet50-channels-last": ("resnet50", 32, 16, 0.001, {"channels_last": True}, (5e-3, None)),
    "resnet50-compile": ("resnet50", 32, 16, 0.001, {"compile": True}, (5e-3, None)),
}
_CPU_REFERENCE: dict[tuple, tuple[float, float]] = {}


def _config(model, n, batch, lr, device, **changes):
    import dataclasses

    from training.config import DataConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig

    shape = SHAPES[model][0]
    cfg = TrainConfig(
        data=DataConfig(
            name="synthetic", synthetic_shape=shape, synthetic_train=n, synthetic_test=n // 2, batch_size=batch
        ),
        model=ModelConfig(name=model),
        schedule=ScheduleConfig(name="one-cycle", epochs=1),
        optim=OptimConfig(lr=lr),
        seed=0,
        device=device,
    )
    return dataclasses.replace(cfg, **changes)


def _losses(cfg, out) -> tuple[float, float]:
    from training.run import train

    m = train(cfg, out, quiet=True).metrics
    return float(m["train_loss"].values.ravel()[-1]), float(m["test_loss"].values.ravel()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(RUNS))
def test_training_run_on_cuda_agrees_with_the_cpu(case, tmp_path, fp32):
    model, n, batch, lr, changes, (train_tol, test_tol) = RUNS[case]
    key = (model, n, batch, lr)
    if key not in _CPU_REFERENCE:
        _CPU_REFERENCE[key] = _losses(_config(model, n, batch, lr, "cpu"), tmp_path / "cpu")
    got, ref = _losses(_config(model, n, batch, lr, "cuda", **changes), tmp_path / "cuda"), _CPU_REFERENCE[key]
    assert _close(got[0], ref[0], train_tol), f"train loss: CUDA {got[0]} vs CPU {ref[0]} (rtol {train_tol})"
    if test_tol is None:  # eval-mode BatchNorm after two steps: finite, not compared (see the module docstring)
        assert math.isfinite(got[1])
    else:
        assert _close(got[1], ref[1], test_tol), f"test loss: CUDA {got[1]} vs CPU {ref[1]} (rtol {test_tol})"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP with NCCL needs two GPUs")
def test_ddp_with_nccl_matches_one_gpu(tmp_path, fp32):
    from training.config import DataConfig, ModelConfig, ScheduleConfig, TrainConfig
    from training.launch import launch_ddp

    # mlp: no BatchNorm, so the DDP update equals the single-process one on the same global batch
    cfg = TrainConfig(
        data=DataConfig(name="mnist1d", batch_size=256),
        model=ModelConfig(name="mlp", width=64),
        schedule=ScheduleConfig(name="one-cycle", epochs=2),
        device="cuda",
    )
    single = _losses(cfg, tmp_path / "one")
    run = launch_ddp(cfg, tmp_path / "ddp", 2, quiet=True)
    m = xr.load_dataset(run / "metrics.nc")
    ddp = float(m["train_loss"].values.ravel()[-1]), float(m["test_loss"].values.ravel()[-1])
    assert _close(ddp[0], single[0], 1e-4) and _close(ddp[1], single[1], 1e-4), (ddp, single)


# ------------------------------------------------------------------------------------------ analyses


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """A resnet20 (width 8) trained on the CPU for two cycles of one epoch on CIFAR-shaped synthetic data."""
    import dataclasses

    from training.config import ScheduleConfig
    from training.run import train

    cfg = dataclasses.replace(
        _config("resnet20", 512, 128, 0.05, "cpu"), schedule=ScheduleConfig(name="cyclic", cycles=2, epochs=1)
    )
    return train(cfg, tmp_path_factory.mktemp("cuda-runs"), quiet=True).run_dir


def _cli(args, capsys):
    from landscape.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    return out


@pytest.mark.slow
def test_interpolate_hessian_and_analyze_on_cuda_agree_with_the_cpu(resnet_run, tmp_path, capsys, fp32):
    import shutil

    results = {}
    for device in ("cpu", "cuda"):
        d = tmp_path / device
        run = shutil.copytree(resnet_run, d / resnet_run.name)  # analyze caches in the run folder: one each
        lmc = ["interpolate", str(run / "cycle_1.pt"), str(run / "cycle_2.pt"), "--points", "5", "--split", "both"]
        _cli([*lmc, "--device", device, "--quiet", "--out", str(d / "lmc.nc")], capsys)
        hessian = ["hessian", str(run / "cycle_2.pt"), "--top-k", "2", "--batch-size", "128"]
        _cli([*hessian, "--device", device, "--out", str(d / "h.nc")], capsys)
        analyze = ["analyze", str(run), "--points", "3", "--hessian-k", "1"]
        _cli([*analyze, "--device", device, "--quiet", "--out", str(d / "a.nc")], capsys)
        results[device] = {k: xr.load_dataset(d / f"{k}.nc") for k in ("lmc", "h", "a")}
    cpu, gpu = results["cpu"], results["cuda"]
    np.testing.assert_allclose(gpu["lmc"]["loss"].values, cpu["lmc"]["loss"].values, rtol=1e-4)
    np.testing.assert_allclose(gpu["lmc"]["error"].values, cpu["lmc"]["error"].values, rtol=0, atol=2 / 256)
    np.testing.assert_allclose(gpu["h"]["eigenvalue"].values, cpu["h"]["eigenvalue"].values, rtol=1e-3)
    compared = 0
    for name, var in cpu["a"].data_vars.items():
        if np.issubdtype(var.dtype, np.floating) and "error" not in name:
            np.testing.assert_allclose(gpu["a"][name].values, var.values, rtol=1e-3, atol=1e-6, err_msg=name)
            compared += 1
    assert compared >= 3  # losses, barriers and the Hessian eigenvalue at least
