"""Fisher matrices of the cross-entropy on the mask subspace: the empirical Fisher and the Monte-Carlo Fisher.

Both are outer products of per-sample gradients, ``g_n = ∇_θ ℓ_n = J_nᵀ r_n`` with the output residual
``r_n = p_n − e_{y_n}`` (``p_n = softmax(z_n)``, ``e_y`` the one-hot label):

* **empirical Fisher** ``F_emp = (1/N) Σ_n g_n g_nᵀ`` at the true labels (Kunstner, Hennig & Balles 2019
  on what it is and is not);
* **Monte-Carlo Fisher** ``F_MC = (1/N) Σ_n (1/S) Σ_s ĝ_ns ĝ_nsᵀ`` at labels ``ŷ_ns`` sampled from the
  model's own softmax, S per sample; its expectation over the labels is the GGN
  (:class:`~landscape.hessian.ggn.GGNOperator`).

Since ``g_n g_nᵀ = J_nᵀ r_n r_nᵀ J_n``, both are products ``Jᵀ M J`` with the rank-one (or rank-S)
output matrix ``M_n = r_n r_nᵀ`` (:class:`~landscape.hessian.ggn.OutputCurvatureOperator`): per-sample
gradients are never stored. The sampled labels of batch b are drawn from ``derive_seed(seed, b)``, so
they are the same in every product (the operator is one fixed symmetric matrix, as Lanczos needs),
whatever the order in which batches or parameter groups are visited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from landscape.hessian.ggn import OutputCurvatureOperator
from training.errors import UserError
from training.fileio import derive_seed

FISHER_KINDS = ("empirical", "mc")


class FisherOperator(OutputCurvatureOperator):
    """The empirical (``fisher="empirical"``) or Monte-Carlo (``fisher="mc"``, ``mc_samples`` labels per
    sample drawn with ``seed``) Fisher matrix of the mean cross-entropy, on the mask subspace
    (conventions of :class:`~landscape.hessian.subspace.ModelOperator`). Positive semi-definite."""

    def __init__(
        self,
        model: nn.Module,
        data: Iterable,
        *,
        fisher: str = "empirical",
        mc_samples: int = 1,
        seed: int = 0,
        **options: Any,
    ):
        if fisher not in FISHER_KINDS:
            raise UserError(f"unknown Fisher {fisher!r}; choose from: {', '.join(FISHER_KINDS)}", param="fisher")
        if mc_samples < 1:
            raise UserError(f"mc_samples must be at least 1, got {mc_samples}", param="mc_samples")
        self.fisher = fisher
        self.mc_samples = int(mc_samples)
        self.seed = int(seed)
        self.kind = "empirical Fisher" if fisher == "empirical" else "Monte-Carlo Fisher"
        super().__init__(model, data, **options)

    def _output_factor(self, index: int, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Residuals ``r = p − e_label`` of shape ``(S, B, C)``: S = 1 at the true labels, else sampled labels."""
        p = torch.softmax(logits, dim=-1)
        if self.fisher == "empirical":
            labels = y[None]
        else:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "mc-fisher", index))
            drawn = torch.multinomial(p.detach().double().cpu(), self.mc_samples, replacement=True, generator=g)
            labels = drawn.T.to(p.device)  # (S, B)
        return p[None] - F.one_hot(labels, p.shape[-1]).to(p.dtype)

    def _apply_output(self, r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # w: (c, B, C); r: (S, B, C) -> (1/S) Σ_s r_s (r_s · w)
        coef = torch.einsum("sbk,cbk->csb", r, w)
        return torch.einsum("csb,sbk->cbk", coef, r) / r.shape[0]
