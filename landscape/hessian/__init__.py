"""Curvature of the training loss on a parameter subspace: operators, algorithms and the API.

* :mod:`landscape.hessian.operators` — the :class:`CurvatureOperator` protocol (``dim``, ``dtype``,
  ``device``, ``matvec``, ``matmat`` on ``(dim, k)`` blocks), :class:`HessianOperator` and the adapters
  :class:`MatrixOperator` and :class:`CallableOperator`; :mod:`~landscape.hessian.ggn` (the GGN) and
  :mod:`~landscape.hessian.fisher` (empirical and Monte-Carlo Fisher) on the shared base
  :mod:`~landscape.hessian.subspace` (mask subspace, data weighting, parameter groups, block products);
* :mod:`landscape.hessian.lanczos` — the Lanczos core :func:`lanczos_tridiagonal` (full
  reorthogonalisation) and :func:`lanczos_chains` (several chains, one block product per step);
* :mod:`landscape.hessian.algorithms` — pure functions of an operator: :func:`lanczos`, :func:`slq`,
  :func:`eigsh`, :func:`power_iteration`, :func:`density_on_grid`; :func:`block_lanczos`; the stopping
  rules and ``which`` in :mod:`~landscape.hessian.ritz`; :func:`hutchinson`, :func:`hutchpp` and
  :func:`diagonal` in :mod:`~landscape.hessian.trace`;
* :mod:`landscape.hessian.api` — :func:`hessian_eigenvalues`; :mod:`landscape.hessian.estimates` —
  :func:`hessian_trace`, :func:`hessian_diagonal`, :func:`hessian_density`; all return Datasets;
* :mod:`landscape.hessian.vectors` — the Ritz-vector file; :mod:`landscape.hessian.groups` — parameter
  groups; :mod:`landscape.hessian.pyhessian_backend` — the PyHessian package as a cross-check.
"""

from __future__ import annotations

from landscape.hessian.algorithms import (
    QuadratureResult,
    SpectrumResult,
    density_on_grid,
    eigsh,
    lanczos,
    power_iteration,
    slq,
)
from landscape.hessian.api import hessian_eigenvalues
from landscape.hessian.block_lanczos import block_lanczos
from landscape.hessian.estimates import hessian_density, hessian_diagonal, hessian_trace
from landscape.hessian.factory import OPERATORS, make_operator
from landscape.hessian.fisher import FisherOperator
from landscape.hessian.ggn import GGNOperator
from landscape.hessian.groups import parameter_groups
from landscape.hessian.lanczos import Tridiagonal, lanczos_chains, lanczos_tridiagonal
from landscape.hessian.operators import SUBSPACES, CallableOperator, CurvatureOperator, HessianOperator, MatrixOperator
from landscape.hessian.ritz import CRITERIA, WHICH, error_bounds
from landscape.hessian.subspace import ModelOperator
from landscape.hessian.trace import DiagonalResult, TraceResult, diagonal, hutchinson, hutchpp
from landscape.hessian.vectors import load_ritz_vectors, save_ritz_vectors

__all__ = [
    "CRITERIA",
    "OPERATORS",
    "SUBSPACES",
    "WHICH",
    "CallableOperator",
    "CurvatureOperator",
    "DiagonalResult",
    "FisherOperator",
    "GGNOperator",
    "HessianOperator",
    "MatrixOperator",
    "ModelOperator",
    "QuadratureResult",
    "SpectrumResult",
    "TraceResult",
    "Tridiagonal",
    "block_lanczos",
    "density_on_grid",
    "diagonal",
    "eigsh",
    "error_bounds",
    "hessian_density",
    "hessian_diagonal",
    "hessian_eigenvalues",
    "hessian_trace",
    "hutchinson",
    "hutchpp",
    "lanczos",
    "lanczos_chains",
    "lanczos_tridiagonal",
    "load_ritz_vectors",
    "make_operator",
    "parameter_groups",
    "power_iteration",
    "save_ritz_vectors",
    "slq",
]
