"""Attention kernels for derivatives of derivatives.

On the CPU, ``torch.nn.functional.scaled_dot_product_attention`` dispatches to a flash kernel whose
backward cannot itself be differentiated. Hessian-vector products (:mod:`landscape.hessian`) and GraSP's
Hessian-gradient product differentiate through a backward pass, so their forward passes run under
:func:`math_attention`, which selects the math kernel (the same function, computed with matmuls and a
softmax that autograd differentiates any number of times). Models without attention are unaffected.
"""

from __future__ import annotations

from contextlib import AbstractContextManager


def math_attention() -> AbstractContextManager:
    """A context in which ``scaled_dot_product_attention`` uses its math kernel (twice differentiable)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])
