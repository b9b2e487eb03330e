"""The generalised Gauss–Newton matrix of the cross-entropy, and the products ``Jᵀ M J`` it shares with the
Fisher matrices (:mod:`landscape.hessian.fisher`).

For logits ``z_n = f(x_n; θ)`` and per-sample losses ``ℓ_n = CE(z_n, y_n)``, the Hessian of the mean
loss splits (Schraudolph 2002; Martens 2020) as

    H = (1/N) Σ_n J_nᵀ ∇²_z ℓ_n J_n  +  (1/N) Σ_n Σ_c ∂ℓ_n/∂z_nc ∇²_θ z_nc,

where ``J_n = ∂z_n/∂θ`` (C × dim). The first term is the **GGN** ``G``: positive semi-definite, with the
softmax output Hessian ``∇²_z ℓ_n = diag(p_n) − p_n p_nᵀ`` (``p_n = softmax(z_n)``). Every matrix of the
form ``(1/N) Σ_n J_nᵀ M_n J_n`` with a small C × C matrix ``M_n`` per sample is applied the same way,
without ever forming a Jacobian:

1. ``J V`` (a Jacobian-vector product per column) by the double-vjp trick: with the per-batch graph of
   ``z`` and a dummy cotangent ``u`` (requires grad), ``g(u) = Jᵀu`` is built once with
   ``create_graph=True``; the gradient of ``⟨g(u), v⟩`` with respect to ``u`` is ``J v``. This reuses
   the forward graph, so a single-batch operator caches it as the Hessian caches its gradient graph;
2. ``M_n (J_n v)`` per sample, in output space (C numbers per sample);
3. ``Jᵀ (M J V)`` by one vector-Jacobian product (a backward pass through the forward graph).

Both gradient steps are vmapped over a chunk of vectors (:class:`~landscape.hessian.subspace.ModelOperator`).
Units are those of the Hessian (nats per squared parameter unit).
"""

from __future__ import annotations

from typing import Any

import torch

from landscape.hessian.subspace import ModelOperator
from training.models.attention import math_attention


class OutputCurvatureOperator(ModelOperator):
    """Base of the operators ``(1/N) Σ_n J_nᵀ M_n J_n``: a subclass gives ``M`` through :meth:`_output_factor`
    (what it needs of the batch's logits and labels) and :meth:`_apply_output` (``M_n w_n`` for a chunk)."""

    def _prepare(self, index: int, x: torch.Tensor, y: torch.Tensor) -> Any:
        with math_attention():  # differentiated twice: attention's math kernel (training.models.attention)
            z = self.model(x)
        u = torch.zeros_like(z, requires_grad=True)
        jt_u = torch.autograd.grad(z, self.params, grad_outputs=u, create_graph=True)
        return z, u, jt_u, self._output_factor(index, z.detach(), y)

    def _products(self, state: Any, chunk: list[torch.Tensor], keep_graph: bool) -> list[torch.Tensor]:
        z, u, jt_u, factor = state
        (jv,) = self._batched_grad(jt_u, [u], chunk, keep_graph=True)  # (c, B, C): J v per vector
        mjv = self._apply_output(factor, jv)
        return self._batched_grad([z], self.params, [mjv], keep_graph)

    def _output_factor(self, index: int, logits: torch.Tensor, y: torch.Tensor) -> Any:
        raise NotImplementedError

    def _apply_output(self, factor: Any, w: torch.Tensor) -> torch.Tensor:
        """``M_n w_n`` for ``w`` of shape ``(c, B, C)`` (c vectors, B samples, C classes)."""
        raise NotImplementedError


class GGNOperator(OutputCurvatureOperator):
    """The exact generalised Gauss–Newton matrix of the mean cross-entropy, ``(1/N) Σ_n J_nᵀ (diag(p_n) −
    p_n p_nᵀ) J_n``, on the mask subspace (conventions of :class:`~landscape.hessian.subspace.ModelOperator`).

    Positive semi-definite; equal to the Hessian for a model linear in its parameters, and to the
    expectation of the Monte-Carlo Fisher. Its rank is at most ``N (C − 1)``.
    """

    kind = "GGN"

    def _output_factor(self, index: int, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)

    def _apply_output(self, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return p * w - p * (p * w).sum(-1, keepdim=True)
