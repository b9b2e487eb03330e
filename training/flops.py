"""Theoretical FLOPs of a masked network: per sample, per forward pass, and of training.

Convention (RigL, Evci et al. 2020, App. H; AC/DC, Peste et al. 2021, whose code counts the same way):

* 2 FLOPs per multiply-accumulate; a training sample costs 3·f(M): the forward pass f(M), and the
  backward pass twice that (the gradient with respect to the inputs and to the weights).
* f(M) = Σ_l d_l·F_l + F_dense. F_l is the dense forward cost of layer l's weight for one sample:
  ``Conv1d/2d/3d`` 2·(output elements)·(C_in/groups)·(kernel elements); ``Linear`` 2·(output
  elements)·(in_features); ``nn.MultiheadAttention``'s input projection 2·L_q·E·E + 2·L_k·E·(kdim + vdim)
  and its output projection 2·L_q·E·E. d_l is the fraction of the weight's entries the mask keeps (1
  for a layer the mask does not cover: it is counted dense). F_dense holds what is never sparse here:
  the attention scores and their weighted sum, 4·L_q·L_k·E per attention layer. BatchNorm,
  activations, pooling, biases and the input pipeline are not counted.
* F_l is measured with forward hooks on one sample (the sizes depend on the input shape); the sum
  Σ_l F_l + F_dense equals ``torch.utils.flop_counter.FlopCounterMode``'s forward count (a test checks
  it). That counter's backward figures are not used: they count grouped convolutions' weight
  gradients ``groups`` times over.

Written here rather than taken from ``FlopCounterMode`` because that counter is blind to masks (a
masked dense tensor counts as dense), cannot attribute backward operations to modules reliably, and
misses CPU attention kernels; the per-layer hooks give F_l by weight name, which the mask multiplies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRAIN_FACTOR = 3  # forward + backward (twice the forward), per sample


@dataclass(frozen=True)
class FlopModel:
    """The dense forward FLOPs of one sample: ``layers`` (weight name → F_l) and ``dense`` (F_dense).
    :meth:`forward` gives f(M) for a mask; :meth:`training` the cost of training samples under it."""

    layers: dict[str, float]
    dense: float = 0.0

    @property
    def dense_forward(self) -> float:
        """f of the dense network (every d_l = 1), FLOPs per sample."""
        return sum(self.layers.values()) + self.dense

    def forward(self, mask: Mapping[str, torch.Tensor] | None = None) -> float:
        """f(M): forward FLOPs per sample with each masked weight's layer at the mask's density."""
        mask = mask or {}
        total = self.dense
        for name, flops in self.layers.items():
            m = mask.get(name)
            total += flops if m is None else flops * float(m.sum()) / m.numel()
        return total

    def training(self, mask: Mapping[str, torch.Tensor] | None, samples: int) -> float:
        """FLOPs of training ``samples`` samples under ``mask``: 3·f(M) each."""
        return TRAIN_FACTOR * self.forward(mask) * samples

    def dense_weight_gradient(self, mask: Mapping[str, torch.Tensor]) -> float:
        """Per sample, what a dense weight gradient costs beyond the sparse one, Σ_l (1 − d_l)·F_l (RigL's
        f_D − f_S: the update step's weight gradient of the masked layers taken dense)."""
        return self.forward(None) - self.forward(mask)


def flop_model(model: nn.Module, input_shape: Sequence[int]) -> FlopModel:
    """F_l of every Conv/Linear weight and attention projection of ``model`` for one input of
    ``input_shape`` (without the batch dimension), and F_dense, from one forward pass on zeros in eval
    mode (the model's mode is restored; its parameters are untouched)."""
    layers: dict[str, float] = {}
    dense = [0.0]
    handles = []

    def add(key: str, flops: float) -> None:  # a module called twice (shared) counts twice
        layers[key] = layers.get(key, 0.0) + flops

    def conv_hook(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
            add(_weight(name, "weight"), 2.0 * output[0].numel() * per_output)

        return hook

    def linear_hook(name: str):
        def hook(module: nn.Linear, inputs, output) -> None:
            add(_weight(name, "weight"), 2.0 * output[0].numel() * module.in_features)

        return hook

    def attention_hook(name: str):
        def hook(module: nn.MultiheadAttention, args, kwargs, output) -> None:
            q = args[0]
            k = args[1] if len(args) > 1 else kwargs["key"]
            axis = (1 if module.batch_first else 0) if q.dim() == 3 else 0  # the sequence axis
            lq, lk, e = q.shape[axis], k.shape[axis], module.embed_dim
            q_k_v = (2.0 * lq * e * e, 2.0 * lk * e * module.kdim, 2.0 * lk * e * module.vdim)
            if module.in_proj_weight is not None:  # one (3E, E) weight
                add(_weight(name, "in_proj_weight"), sum(q_k_v))
            else:
                for part, flops in zip(("q", "k", "v"), q_k_v, strict=True):
                    add(_weight(name, f"{part}_proj_weight"), flops)
            add(_weight(name, "out_proj.weight"), 2.0 * lq * e * e)
            dense[0] += 4.0 * lq * lk * e  # scores Q·Kᵀ and their weighted sum of V: never sparse here

        return hook

    for name, module in model.named_modules():
        if isinstance(module, _CONV):
            handles.append(module.register_forward_hook(conv_hook(name)))
        elif isinstance(module, nn.Linear) and not _inside_attention(model, name):
            handles.append(module.register_forward_hook(linear_hook(name)))
        elif isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_hook(attention_hook(name), with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return FlopModel(layers, dense[0])


def _weight(module_name: str, param: str) -> str:
    return f"{module_name}.{param}" if module_name else param


def _inside_attention(model: nn.Module, name: str) -> bool:
    """Whether ``name`` is an attention module's output projection (counted by the attention hook:
    ``nn.MultiheadAttention`` uses its weight without calling the submodule)."""
    parent = name.rpartition(".")[0]
    return name.endswith("out_proj") and isinstance(
        model.get_submodule(parent) if parent else model, nn.MultiheadAttention
    )


def scoring_flops(method: str, fm: FlopModel, *, samples: int = 0, rounds: int = 1) -> float:
    """FLOPs of computing a pruning-at-initialisation mask's scores on the dense network:

    * ``snip``: one forward and backward pass over the ``samples`` of its labelled sample, 3·f_D each;
    * ``grasp``: the gradient as SNIP (3·f_D per sample) plus a Hessian-gradient product, charged as two
      more gradients (6·f_D per sample: Pearlmutter's product costs about two backward passes);
    * ``synflow``: ``rounds`` forward and backward passes of one all-ones input, 3·f_D each (an upper
      bound: each round's network is sparser than the dense one);
    * ``random``, ``magnitude`` and ``none``: no multiply-accumulates (draws and sorts).
    """
    f_dense = fm.dense_forward
    per_method = {
        "snip": TRAIN_FACTOR * f_dense * samples,
        "grasp": 3 * TRAIN_FACTOR * f_dense * samples,
        "synflow": TRAIN_FACTOR * f_dense * rounds,
    }
    return float(per_method.get(method, 0.0))


class FlopLedger:
    """The cumulative training FLOPs of one run, across its stages (levels).

    Each epoch adds what it cost (:meth:`add`): 3·f(M)·samples for the samples it trained on under a fixed
    mask (:meth:`FlopModel.training`), or what a changing mask booked step by step (:mod:`training.dynamic`,
    RigL's dense weight gradients included); :meth:`charge` adds work done between epochs (the
    pruning scores of a stage's mask), booked into the stage's first epoch. Evaluation is never counted.
    """

    def __init__(self, model: FlopModel):
        self.model = model
        self.total = 0.0
        self.pending = 0.0

    def charge(self, flops: float) -> None:
        """Work outside the epochs (pruning scores), counted with the next epoch."""
        self.pending += float(flops)

    def resume(self, total: float) -> None:
        """Continue from a cumulative total already recorded (a resumed or a completed stage)."""
        if math.isfinite(total):
            self.total, self.pending = float(total), 0.0

    def add(self, flops: float) -> float:
        """Book an epoch's ``flops`` (with any pending work); the new total."""
        self.total += self.pending + float(flops)
        self.pending = 0.0
        return self.total
