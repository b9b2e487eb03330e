"""Hessian spectra of the training loss on a parameter subspace: operators, algorithms and the API.

* :mod:`landscape.hessian.operators` — :class:`HessianOperator` (products on the mask subspace);
* :mod:`landscape.hessian.algorithms` — Lanczos, eigsh, power iteration, Hutchinson, SLQ;
* :mod:`landscape.hessian.api` — :func:`hessian_eigenvalues`, :func:`hessian_trace`,
  :func:`hessian_density` returning Datasets;
* :mod:`landscape.hessian.pyhessian_backend` — the PyHessian package as a cross-check.
"""

from __future__ import annotations

from landscape.hessian.algorithms import EigenResult, density_on_grid, eigsh, hutchinson, lanczos, power_iteration, slq
from landscape.hessian.api import hessian_density, hessian_eigenvalues, hessian_trace
from landscape.hessian.operators import SUBSPACES, HessianOperator

__all__ = [
    "SUBSPACES",
    "EigenResult",
    "HessianOperator",
    "density_on_grid",
    "eigsh",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "hutchinson",
    "lanczos",
    "power_iteration",
    "slq",
]
