"""Curvature operators on a coordinate subspace (the mask subspace of a sparse network, or dense).

An operator maps a flat vector of the subspace to its product with the curvature matrix; see
:class:`HessianOperator` for the conventions (mean cross-entropy over all data, eval mode).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import UserError
from training.evaluate import resolve_device

Matvec = Callable[[torch.Tensor], torch.Tensor]


SUBSPACES = ("mask", "dense")


class HessianOperator:
    """Hessian-vector products of the mean cross-entropy over ``data`` on a coordinate subspace.

    ``mask`` maps parameter names to bool tensors; with ``subspace="mask"`` the masked-out entries
    are excluded from the space. The model is deep-copied and put in eval mode; the caller's model
    is not changed. Vectors are flat tensors of length :attr:`dim` on :attr:`device`.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Iterable,
        mask: Mapping[str, torch.Tensor] | None = None,
        subspace: str = "mask",
        device: str | torch.device | None = None,
        cache_single_batch: bool = True,
    ):
        if subspace not in SUBSPACES:
            raise UserError(f"unknown subspace {subspace!r}; choose from: {', '.join(SUBSPACES)}")
        self.device = resolve_device(device) if device is not None else next(model.parameters()).device
        self.model = copy.deepcopy(model).to(self.device).eval()
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.dtype = self.params[0].dtype
        mask = dict(mask or {})
        unknown = [n for n in mask if n not in self.names]
        if unknown:
            raise UserError(f"mask names parameters the model does not have: {unknown[:3]}")
        self.index: list[torch.Tensor | None] = []
        for n, _ in named:
            if subspace == "mask" and n in mask:
                self.index.append(mask[n].to(self.device).flatten().nonzero().squeeze(1))
            else:
                self.index.append(None)
        self.sizes = [
            p.numel() if idx is None else int(idx.numel()) for p, idx in zip(self.params, self.index, strict=True)
        ]
        self.dim = int(sum(self.sizes))
        self.subspace = subspace
        self.data = data
        self.batches = data if isinstance(data, list | tuple) else None
        self.cache_single_batch = cache_single_batch and self.batches is not None and len(self.batches) == 1
        self._cached: tuple[Sequence[torch.Tensor], int] | None = None
        self.n_samples: int | None = None
        self.matvecs = 0

    def unpack(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Flat subspace vector -> per-parameter tensors (zeros at excluded coordinates)."""
        out = []
        for p, idx, chunk in zip(self.params, self.index, torch.split(v, self.sizes), strict=True):
            if idx is None:
                out.append(chunk.view_as(p))
            else:
                full = torch.zeros(p.numel(), dtype=v.dtype, device=v.device)
                full[idx] = chunk
                out.append(full.view_as(p))
        return out

    def pack(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-parameter tensors -> flat subspace vector."""
        return torch.cat(
            [t.flatten() if idx is None else t.flatten()[idx] for t, idx in zip(tensors, self.index, strict=True)]
        )

    def _grads(self, x: torch.Tensor, y: torch.Tensor) -> Sequence[torch.Tensor]:
        loss = F.cross_entropy(self.model(x.to(self.device)), y.to(self.device), reduction="sum")
        return torch.autograd.grad(loss, self.params, create_graph=True)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for a flat subspace vector ``v``."""
        vs = self.unpack(v.to(device=self.device, dtype=self.dtype))
        self.matvecs += 1
        if self.cache_single_batch:
            if self._cached is None:
                x, y = self.batches[0]
                self._cached = (self._grads(x, y), len(y))
                self.n_samples = len(y)
            grads, n = self._cached
            hv = torch.autograd.grad(grads, self.params, grad_outputs=vs, retain_graph=True)
            return self.pack(hv) / n
        total = [torch.zeros_like(p) for p in self.params]
        n = 0
        for x, y in self.data:
            grads = self._grads(x, y)
            hv = torch.autograd.grad(grads, self.params, grad_outputs=vs)
            for acc, h in zip(total, hv, strict=True):
                acc += h.detach()
            n += len(y)
        if n == 0:
            raise UserError("cannot compute a Hessian on an empty dataset")
        self.n_samples = n
        return self.pack(total) / n

    __call__ = matvec

    def random_vector(self, generator: torch.Generator, kind: str = "gaussian") -> torch.Tensor:
        """A random subspace vector (Gaussian or Rademacher) drawn on the CPU with ``generator``."""
        if kind == "rademacher":
            v = torch.randint(0, 2, (self.dim,), generator=generator).to(self.dtype) * 2 - 1
        else:
            v = torch.randn(self.dim, generator=generator, dtype=self.dtype)
        return v.to(self.device)
