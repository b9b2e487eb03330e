"""Curvature operators: the :class:`CurvatureOperator` protocol, small adapters and :class:`HessianOperator`.

Conventions (shared by every operator and by :mod:`landscape.hessian.algorithms`):

* a vector is a flat tensor of length ``dim`` on ``device`` with dtype ``dtype``;
* a block of k vectors is a ``(dim, k)`` tensor whose **columns** are the vectors, as in scipy's
  ``LinearOperator.matmat`` and curvlinops; ``matmat(V)`` returns ``(dim, k)``;
* ``matvecs`` counts operator products: a block of k counts k.

The split between operators (products only) and algorithms (pure functions of an operator) follows
hessian-eigenthings (``Operator`` / ``HVPOperator``) and curvlinops (``HessianLinearOperator``), so that
other curvature matrices (GGN, Fisher) or per-layer groups only need a new operator.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import UserError
from training.evaluate import resolve_device

Matvec = Callable[[torch.Tensor], torch.Tensor]

SUBSPACES = ("mask", "dense")


@runtime_checkable
class CurvatureOperator(Protocol):
    """A symmetric linear operator on R^dim, known only through its products.

    ``matvec(v)``: ``v`` of shape ``(dim,)`` -> ``(dim,)``. ``matmat(V)``: ``V`` of shape ``(dim, k)``
    (columns are vectors) -> ``(dim, k)``; equal to column-by-column ``matvec``.
    """

    dim: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...

    def matmat(self, V: torch.Tensor) -> torch.Tensor: ...


class MatrixOperator:
    """An explicit symmetric matrix as a :class:`CurvatureOperator` (tests, small problems)."""

    def __init__(self, matrix: torch.Tensor):
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise UserError(f"matrix must be square, got shape {tuple(matrix.shape)}", param="matrix")
        self.matrix = matrix
        self.dim = int(matrix.shape[0])
        self.dtype = matrix.dtype
        self.device = matrix.device
        self.matvecs = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.matvecs += 1
        return self.matrix @ v

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.matvecs += int(V.shape[1])
        return self.matrix @ V

    __call__ = matvec


class CallableOperator:
    """A bare ``matvec`` callable as a :class:`CurvatureOperator`; ``matmat`` applies it column by column."""

    def __init__(
        self, matvec: Matvec, dim: int, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
    ):
        self._matvec = matvec
        self.dim = int(dim)
        self.dtype = dtype
        self.device = torch.device(device)
        self.matvecs = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.matvecs += 1
        return self._matvec(v)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.matvec(V[:, i]) for i in range(V.shape[1])], dim=1)

    __call__ = matvec


class HessianOperator:
    """Hessian-vector products of the **mean cross-entropy over all of** ``data`` on a coordinate subspace.

    Units: ``H v`` is in nats per squared parameter unit times the units of ``v`` (curvature of the mean
    loss). Conventions:

    * **Data.** ``data`` is a finite iterable of ``(x, y)`` batches. It is read **once**, into a list of
      batches (:attr:`batches`, which holds references to the caller's tensors), so a one-shot iterator
      (a generator, ``itertools.islice``) works and every product sees the same samples in the same
      batches. Batches are moved to :attr:`device` one at a time, during each product.
    * **Weighting.** Each batch loss is the *sum* of per-sample cross-entropies; batch products are
      summed and divided by the total number of samples :attr:`n_samples`, so the result is exactly
      the Hessian of the mean over all samples whatever the batch sizes.
    * **Mode.** The model is deep-copied and put in eval mode (BatchNorm uses running statistics,
      dropout is off), as PyHessian does; the caller's model is not changed.
    * **Subspace.** ``mask`` maps parameter names to bool tensors; with ``subspace="mask"`` the
      masked-out entries are excluded from the space (rigl's "sparse spectrum"), with ``"dense"``
      every coordinate of every trainable parameter is kept. :meth:`pack` and :meth:`unpack` convert
      between flat subspace vectors and per-parameter tensors.
    * **Products.** ``H v`` is a double-backward product (Pearlmutter's trick, as PyHessian and
      hessian-eigenthings). :meth:`matmat` makes **one pass over the data** for a whole block: per batch
      the forward pass and the first-order graph are built once and shared by the k vectors. The
      double-backward is applied to ``chunk_size`` vectors at a time, vmapped over the chunk with
      ``torch.autograd.grad(..., is_grads_batched=True)`` (torch.func's vmap); ``chunk_size=1`` applies
      it vector by vector. Memory grows with ``chunk_size``, not with k or the number of batches.
      Measured on a 2-core CPU (batch 128, block of 8, cached graph): for resnet20 a vmapped chunk of 8
      took 6.6-7.0 s against 4.5-4.9 s vector by vector, and forward-over-reverse (``vmap(jvp(grad))``
      on ``functional_call``, which cannot reuse a graph) 10.9 s; for cnn1d all were within 10%
      (0.06-0.07 s). Hence the default 1; larger chunks may pay where batched kernels do (GPUs).
      Where vmap cannot batch an operation (e.g. a custom autograd function calling ``.item()``), the
      operator warns once and applies the chunk vector by vector.
    * **Caching.** With a single batch and ``cache_single_batch`` the first-order graph is built once
      and kept (as PyHessian does), trading activation memory for speed.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Iterable,
        *,
        mask: Mapping[str, torch.Tensor] | None = None,
        subspace: str = "mask",
        device: str | torch.device | None = None,
        cache_single_batch: bool = True,
        chunk_size: int = 1,
    ):
        if subspace not in SUBSPACES:
            raise UserError(f"unknown subspace {subspace!r}; choose from: {', '.join(SUBSPACES)}", param="subspace")
        if chunk_size < 1:
            raise UserError(f"chunk_size must be at least 1, got {chunk_size}", param="chunk_size")
        self.device = resolve_device(device) if device is not None else next(model.parameters()).device
        self.model = copy.deepcopy(model).to(self.device).eval()
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.dtype = self.params[0].dtype
        mask = dict(mask or {})
        unknown = [n for n in mask if n not in self.names]
        if unknown:
            raise UserError(f"mask names parameters the model does not have: {unknown[:3]}", param="mask")
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
        self.batches: list = list(data)
        self.n_samples = sum(len(batch[1]) for batch in self.batches)
        if self.n_samples == 0:
            raise UserError("cannot compute a Hessian on an empty dataset", param="data")
        self.cache_single_batch = cache_single_batch and len(self.batches) == 1
        self.chunk_size = int(chunk_size)
        self._cached: Sequence[torch.Tensor] | None = None
        self._vmap_works: bool | None = None  # unknown until the first vmapped chunk
        self.matvecs = 0

    # ------------------------------------------------------------------ subspace <-> parameters

    def unpack(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Flat subspace vector ``(dim,)`` -> per-parameter tensors (zeros at excluded coordinates)."""
        return [t[0] for t in self.unpack_block(v[:, None])]

    def pack(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-parameter tensors -> flat subspace vector ``(dim,)``."""
        return self.pack_block([t[None] for t in tensors])[:, 0]

    def unpack_block(self, V: torch.Tensor) -> list[torch.Tensor]:
        """Block ``(dim, k)`` -> per-parameter tensors of shape ``(k, *p.shape)``."""
        k = V.shape[1]
        out = []
        for p, idx, rows in zip(self.params, self.index, torch.split(V, self.sizes), strict=True):
            if idx is None:
                out.append(rows.T.reshape(k, *p.shape))
            else:
                full = torch.zeros((k, p.numel()), dtype=V.dtype, device=V.device)
                full[:, idx] = rows.T
                out.append(full.view(k, *p.shape))
        return out

    def pack_block(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-parameter tensors of shape ``(k, *p.shape)`` -> block ``(dim, k)``."""
        rows = [
            t.reshape(t.shape[0], -1) if idx is None else t.reshape(t.shape[0], -1)[:, idx]
            for t, idx in zip(tensors, self.index, strict=True)
        ]
        return torch.cat(rows, dim=1).T

    # ------------------------------------------------------------------ products

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat subspace vector ``v`` of shape ``(dim,)``."""
        return self.matmat(v.reshape(-1, 1))[:, 0]

    __call__ = matvec

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``H V`` for a block ``V`` of shape ``(dim, k)``, in one pass over the data."""
        if V.ndim != 2 or V.shape[0] != self.dim:
            raise UserError(f"V must have shape (dim, k) = ({self.dim}, k), got {tuple(V.shape)}", param="V")
        V = V.to(device=self.device, dtype=self.dtype)
        k = int(V.shape[1])
        self.matvecs += k
        tangents = self.unpack_block(V)
        total = torch.zeros((self.dim, k), dtype=self.dtype, device=self.device)
        for x, y in self.batches:
            if self.cache_single_batch:
                if self._cached is None:
                    self._cached = self._grads(x, y)
                grads = self._cached
            else:
                grads = self._grads(x, y)
            for lo in range(0, k, self.chunk_size):
                hi = min(k, lo + self.chunk_size)
                keep = self.cache_single_batch or hi < k  # free the batch's graph after its last chunk
                hv = self._double_backward(grads, [t[lo:hi] for t in tangents], keep)
                total[:, lo:hi] += self.pack_block(hv)
        return total / self.n_samples

    def _grads(self, x: torch.Tensor, y: torch.Tensor) -> Sequence[torch.Tensor]:
        loss = F.cross_entropy(self.model(x.to(self.device)), y.to(self.device), reduction="sum")
        return torch.autograd.grad(loss, self.params, create_graph=True)

    def _double_backward(
        self, grads: Sequence[torch.Tensor], chunk: list[torch.Tensor], keep_graph: bool
    ) -> list[torch.Tensor]:
        """Per-parameter ``(c, *p.shape)`` products of the batch-sum Hessian with a chunk of c vectors."""
        c = chunk[0].shape[0]
        if c > 1 and self._vmap_works is not False:
            try:
                # the first attempt keeps the graph, so that a failure can fall back to the loop below
                keep = keep_graph or self._vmap_works is None
                out = torch.autograd.grad(
                    grads, self.params, grad_outputs=chunk, retain_graph=keep, is_grads_batched=True
                )
                self._vmap_works = True
                return [h.detach() for h in out]
            except (RuntimeError, NotImplementedError) as exc:
                if self._vmap_works or isinstance(exc, torch.OutOfMemoryError):
                    raise
                self._vmap_works = False
                warnings.warn(
                    f"vmap cannot batch this model's double-backward ({str(exc).splitlines()[0]}); "
                    "applying the Hessian vector by vector",
                    RuntimeWarning,
                    stacklevel=3,
                )
        out = []
        for i in range(c):
            hv = torch.autograd.grad(
                grads, self.params, grad_outputs=[t[i] for t in chunk], retain_graph=keep_graph or i < c - 1
            )
            out.append([h.detach() for h in hv])
        return [torch.stack(per_param) for per_param in zip(*out, strict=True)]
