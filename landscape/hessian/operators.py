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

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch.nn import functional as F

from landscape.hessian.subspace import SUBSPACES, ModelOperator
from training.errors import UserError
from training.models.attention import math_attention

Matvec = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["SUBSPACES", "CallableOperator", "CurvatureOperator", "HessianOperator", "MatrixOperator", "Matvec"]


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


class HessianOperator(ModelOperator):
    """Hessian-vector products of the **mean cross-entropy over all of** ``data`` on a coordinate subspace
    (or of the mean of ``loss_fn(output, target)``, a batch-mean loss, when one is given).

    Units: ``H v`` is in nats per squared parameter unit times the units of ``v`` (curvature of the mean
    loss). Data, weighting (exact mean over samples), eval mode, the mask subspace, parameter selection
    (``params``: the principal sub-block), blocks in chunks and the single-batch cache are those of
    :class:`~landscape.hessian.subspace.ModelOperator`. Products:

    * ``H v`` is a double-backward product (Pearlmutter's trick, as PyHessian and hessian-eigenthings).
      :meth:`matmat` makes **one pass over the data** for a whole block: per batch the forward pass
      and the first-order graph are built once and shared by the k vectors; the double-backward is
      applied to ``chunk_size`` vectors at a time, vmapped over the chunk with
      ``torch.autograd.grad(..., is_grads_batched=True)`` (torch.func's vmap); ``chunk_size=1``
      applies it vector by vector. Memory grows with ``chunk_size``, not with k or the number of batches.
      Measured on a 2-core CPU (batch 128, block of 8, cached graph): for resnet20 a vmapped chunk of 8
      took 6.6-7.0 s against 4.5-4.9 s vector by vector, and forward-over-reverse (``vmap(jvp(grad))``
      on ``functional_call``, which cannot reuse a graph) 10.9 s; for cnn1d all were within 10%
      (0.06-0.07 s). Hence the default 1; larger chunks may pay where batched kernels do (GPUs).
    """

    kind = "Hessian"

    def _prepare(self, index: int, x: torch.Tensor, y: torch.Tensor) -> Sequence[torch.Tensor]:
        with math_attention():  # differentiated twice: attention's math kernel (training.models.attention)
            out = self.model(x)
        # a given loss is a batch mean: scaled to the batch's sum, so batches weigh by their size
        loss = F.cross_entropy(out, y, reduction="sum") if self.loss_fn is None else self.loss_fn(out, y) * len(y)
        return torch.autograd.grad(loss, self.params, create_graph=True)

    def _products(self, grads: Sequence[torch.Tensor], chunk: list[torch.Tensor], keep_graph: bool) -> list:
        return self._batched_grad(grads, self.params, chunk, keep_graph)
