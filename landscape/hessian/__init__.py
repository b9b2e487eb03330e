"""Hessian spectra of the training loss on a parameter subspace: operators, algorithms and the API.

* :mod:`landscape.hessian.operators` — the :class:`CurvatureOperator` protocol (``dim``, ``dtype``,
  ``device``, ``matvec``, ``matmat`` on ``(dim, k)`` blocks), :class:`HessianOperator` (products on the
  mask subspace) and the adapters :class:`MatrixOperator` and :class:`CallableOperator`;
* :mod:`landscape.hessian.lanczos` — the Lanczos core :func:`lanczos_tridiagonal` (full
  reorthogonalisation), shared by :func:`lanczos` and :func:`slq`;
* :mod:`landscape.hessian.algorithms` — pure functions of an operator: :func:`lanczos`, :func:`slq`,
  :func:`eigsh`, :func:`power_iteration`, :func:`hutchinson`, :func:`density_on_grid`;
* :mod:`landscape.hessian.api` — :func:`hessian_eigenvalues`, :func:`hessian_trace`,
  :func:`hessian_density` returning Datasets;
* :mod:`landscape.hessian.pyhessian_backend` — the PyHessian package as a cross-check.
"""

from __future__ import annotations

from landscape.hessian.algorithms import (
    QuadratureResult,
    SpectrumResult,
    TraceResult,
    density_on_grid,
    eigsh,
    hutchinson,
    lanczos,
    power_iteration,
    slq,
)
from landscape.hessian.api import hessian_density, hessian_eigenvalues, hessian_trace
from landscape.hessian.lanczos import Tridiagonal, lanczos_tridiagonal
from landscape.hessian.operators import SUBSPACES, CallableOperator, CurvatureOperator, HessianOperator, MatrixOperator

__all__ = [
    "SUBSPACES",
    "CallableOperator",
    "CurvatureOperator",
    "HessianOperator",
    "MatrixOperator",
    "QuadratureResult",
    "SpectrumResult",
    "TraceResult",
    "Tridiagonal",
    "density_on_grid",
    "eigsh",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "hutchinson",
    "lanczos",
    "lanczos_tridiagonal",
    "power_iteration",
    "slq",
]
