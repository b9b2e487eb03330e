"""Hessian spectra of the training loss on a parameter subspace.

Operator (:class:`HessianOperator`). The Hessian is that of the **mean cross-entropy over all of
``data``** (batch losses weighted by batch size), with the model in **eval mode**, w.r.t. a flat
vector of coordinates. ``subspace="mask"`` (the default when a mask is given) keeps every parameter
except the pruned entries of the masked ones, so a sparse network's spectrum lives on its sparse
subspace (rigl's "sparse spectrum"); ``subspace="dense"`` uses every coordinate, as PyHessian does.
Hessian-vector products are double-backward products accumulated batch by batch, so memory does not
grow with the number of batches. With a single batch the first-order graph is built once and reused
(as PyHessian does), which trades activation memory for speed.

Algorithms are pure functions of a ``matvec`` callable and return residuals:

* :func:`lanczos` — top-k by Lanczos with full reorthogonalisation (Ritz values of the tridiagonal
  matrix from ``scipy.linalg.eigh_tridiagonal``); converged when every residual estimate
  ``β_m |s_{m,i}|`` is at most ``tol · |θ_i|``.
* :func:`eigsh` — scipy's ARPACK ``eigsh`` on a ``LinearOperator`` (``which="LA"``).
* :func:`power_iteration` — deflated power iteration as PyHessian (stop when the Rayleigh quotient
  changes by less than ``tol`` relatively); it finds the eigenvalues of largest *magnitude*.
* :func:`hutchinson` — trace with Rademacher probes; stops when the standard error falls under
  ``tol · |trace|``.
* :func:`slq` — stochastic Lanczos quadrature nodes and weights for the spectral density.

Units: eigenvalues and traces are in nats per squared parameter unit (curvature of the mean loss).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F

from landscape.checkpoint import Checkpoint, as_checkpoint
from landscape.results import provenance
from training.errors import UserError
from training.evaluate import resolve_device

Matvec = Callable[[torch.Tensor], torch.Tensor]
SUBSPACES = ("mask", "dense")


# --------------------------------------------------------------------------------------------- operator


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


# ------------------------------------------------------------------------------------------ algorithms


@dataclass
class EigenResult:
    """Top-k eigenpairs: ``eigenvalues`` (descending), ``residuals`` ‖Hv − λv‖ (or Lanczos estimates),
    ``iterations`` (matvecs per eigenvalue for power iteration; Lanczos steps otherwise) and optional
    unit ``eigenvectors`` (k, dim)."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    iterations: np.ndarray
    eigenvectors: torch.Tensor | None = None


def _start(dim: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    v = torch.randn(dim, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    return v / v.norm()


def lanczos(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    return_vectors: bool = False,
    criterion: str = "residual",
) -> EigenResult:
    """Top-k eigenvalues of the symmetric operator ``matvec`` by Lanczos with full reorthogonalisation.

    ``criterion="residual"`` stops when every residual estimate β_m|s_mi| ≤ ``tol``·|θ_i|;
    ``criterion="change"`` stops when the top-k Ritz values change by less than ``tol`` relatively
    between steps (PyHessian's test, for like-for-like comparisons)."""
    if criterion not in ("residual", "change"):
        raise UserError(f"unknown convergence criterion {criterion!r}; choose from: residual, change")
    _check_k(k, dim)
    generator = generator or torch.Generator().manual_seed(0)
    steps = min(max_iter, dim)
    if steps < k:
        raise UserError(f"max_iter {max_iter} is smaller than k = {k}")
    Q = torch.zeros((steps + 1, dim), dtype=dtype, device=device)
    Q[0] = _start(dim, generator, dtype, device)
    alphas: list[float] = []
    betas: list[float] = []
    theta = S = None
    previous = None
    beta = 0.0
    m = 0
    for j in range(steps):
        w = matvec(Q[j])
        alpha = float(torch.dot(w, Q[j]))
        w = w - alpha * Q[j] - (beta * Q[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        m = j + 1
        if m >= k:
            theta, S = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas))
            top = np.argsort(theta)[::-1][:k]
            res = beta * np.abs(S[-1, top])
            if criterion == "residual":
                converged = np.all(res <= tol * np.maximum(np.abs(theta[top]), 1e-12))
            else:
                current = theta[top]
                converged = (
                    previous is not None
                    and len(previous) == len(current)
                    and np.all(np.abs(current - previous) <= tol * np.maximum(np.abs(previous), 1e-12))
                )
                previous = current
            if converged or beta <= 1e-12 * max(1.0, abs(alpha)):
                break
        if beta <= 1e-12 * max(1.0, abs(alpha)):
            break
        betas.append(beta)
        Q[j + 1] = w / beta
    top = np.argsort(theta)[::-1][:k]
    vectors = None
    if return_vectors:
        vectors = torch.from_numpy(S[:, top].T.copy()).to(dtype=dtype, device=device) @ Q[:m]
    return EigenResult(theta[top].copy(), beta * np.abs(S[-1, top]), np.full(k, m), vectors)


def eigsh(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """Top-k eigenvalues by scipy's ARPACK ``eigsh`` on a ``LinearOperator``; residuals ‖Hv − λv‖
    are computed explicitly (k extra products)."""
    _check_k(k, dim)
    if k >= dim:
        raise UserError(f"eigsh needs k < subspace dimension ({dim}); use method lanczos")
    generator = generator or torch.Generator().manual_seed(0)
    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        out = matvec(torch.from_numpy(np.asarray(x).ravel()).to(dtype=dtype, device=device))
        return out.detach().double().cpu().numpy()

    op = scipy.sparse.linalg.LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    v0 = torch.randn(dim, generator=generator, dtype=torch.float64).numpy()
    vals, vecs = scipy.sparse.linalg.eigsh(op, k=k, which="LA", tol=tol, maxiter=max_iter * dim, v0=v0)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    res = np.array([np.linalg.norm(mv(vecs[:, i]) - vals[i] * vecs[:, i]) for i in range(k)])
    return EigenResult(vals, res, np.full(k, count[0]))


def power_iteration(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """Deflated power iteration (PyHessian's algorithm): for each of k eigenvalues, iterate
    v ← Hv/‖Hv‖ orthogonal to those found, until the Rayleigh quotient changes by < ``tol`` relatively."""
    _check_k(k, dim)
    generator = generator or torch.Generator().manual_seed(0)
    found: list[torch.Tensor] = []
    vals, res, iters = [], [], []

    def orth(v: torch.Tensor) -> torch.Tensor:
        for u in found:
            v = v - torch.dot(u, v) * u
        return v / v.norm()

    for _ in range(k):
        v = orth(_start(dim, generator, dtype, device))
        lam = None
        it = 0
        while it < max_iter:
            it += 1
            v = orth(v)
            hv = matvec(v)
            new = float(torch.dot(hv, v))
            r = float((hv - new * v).norm())
            v_next = hv / hv.norm()
            done = lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol
            lam = new
            if done:
                break
            v = v_next
        found.append(orth(v))
        vals.append(lam)
        res.append(r)
        iters.append(it)
    order = np.argsort(vals)[::-1]
    return EigenResult(np.array(vals)[order], np.array(res)[order], np.array(iters)[order])


def hutchinson(
    matvec: Matvec,
    dim: int,
    tol: float = 1e-2,
    max_probes: int = 100,
    min_probes: int = 10,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[float, float, int]:
    """Hutchinson trace estimate with Rademacher probes: ``(trace, standard error, probes)``.
    Stops after at least ``min_probes`` once the standard error is ≤ ``tol · |trace|``."""
    generator = generator or torch.Generator().manual_seed(0)
    samples: list[float] = []
    for i in range(max_probes):
        z = (torch.randint(0, 2, (dim,), generator=generator).to(torch.float64) * 2 - 1).to(dtype=dtype, device=device)
        samples.append(float(torch.dot(z, matvec(z))))
        if i + 1 >= min_probes:
            mean = float(np.mean(samples))
            stderr = float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
            if stderr <= tol * abs(mean):
                break
    mean = float(np.mean(samples))
    stderr = float(np.std(samples, ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else float("nan")
    return mean, stderr, len(samples)


def slq(
    matvec: Matvec,
    dim: int,
    probes: int = 1,
    steps: int = 100,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature: ``(nodes, weights)`` of shape (probes, m). For each Rademacher
    probe, m ≤ ``steps`` Lanczos steps with full reorthogonalisation; nodes are the Ritz values and
    weights the squared first components of the Ritz vectors (each probe's weights sum to 1)."""
    generator = generator or torch.Generator().manual_seed(0)
    m = min(steps, dim)
    nodes = np.full((probes, m), np.nan)
    weights = np.zeros((probes, m))
    for p in range(probes):
        z = (torch.randint(0, 2, (dim,), generator=generator).to(torch.float64) * 2 - 1).to(dtype=dtype, device=device)
        Q = torch.zeros((m, dim), dtype=dtype, device=device)
        Q[0] = z / z.norm()
        alphas, betas = [], []
        for j in range(m):
            w = matvec(Q[j])
            alpha = float(torch.dot(w, Q[j]))
            for _ in range(2):
                w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            alphas.append(alpha)
            beta = float(w.norm())
            if j + 1 == m or beta <= 1e-10 * max(1.0, abs(alpha)):
                break
            betas.append(beta)
            Q[j + 1] = w / beta
        theta, S = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas))
        nodes[p, : len(theta)] = theta
        weights[p, : len(theta)] = S[0, :] ** 2
    return nodes, weights


def density_on_grid(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """Spectral density on ``grid``: the probe average of Σ_i w_i N(t; θ_i, σ²) (integrates to 1)."""
    ok = ~np.isnan(nodes)
    dens = np.zeros_like(grid, dtype=float)
    for p in range(nodes.shape[0]):
        th, w = nodes[p][ok[p]], weights[p][ok[p]]
        dens += (w[None, :] * np.exp(-((grid[:, None] - th[None, :]) ** 2) / (2 * sigma**2))).sum(1)
    return dens / (nodes.shape[0] * sigma * math.sqrt(2 * math.pi))


def _check_k(k: int, dim: int) -> None:
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if k > dim:
        raise UserError(f"k = {k} is larger than the subspace dimension ({dim})")


# ----------------------------------------------------------------------------------------------- API


def _resolve(model: Any, mask: Any, subspace: str | None) -> tuple[nn.Module, dict | None, str, dict[str, Any]]:
    attrs: dict[str, Any] = {}
    if isinstance(model, Checkpoint | str | os.PathLike):
        ckpt = as_checkpoint(model)
        attrs = provenance(checkpoint=ckpt)
        model = ckpt.model
        mask = ckpt.mask if mask is None else mask
    if subspace is None:
        subspace = "mask" if mask else "dense"
    return model, (mask if subspace == "mask" else None), subspace, attrs


def _pyhessian(
    model: nn.Module, data: Iterable, k: int, tol: float, max_iter: int, seed: int, device: torch.device
) -> EigenResult:
    try:
        from pyhessian import hessian as pyhessian_hessian
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserError("method pyhessian needs the PyHessian package: pip install pyhessian") from exc
    batches = list(data)
    net = copy.deepcopy(model).to(device)
    criterion = nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if len(batches) == 1:
            x, y = batches[0]
            h = pyhessian_hessian(net, criterion, data=(x.to(device), y.to(device)), cuda=device.type == "cuda")
        else:
            h = pyhessian_hessian(net, criterion, dataloader=batches, cuda=device.type == "cuda")
        vals, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
    order = np.argsort(vals)[::-1]
    return EigenResult(np.array(vals)[order], np.full(k, np.nan), np.full(k, -1))


EIGEN_METHODS: dict[str, Callable[..., EigenResult]] = {
    "lanczos": lanczos,
    "eigsh": eigsh,
    "power": power_iteration,
}


def hessian_eigenvalues(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    k: int = 1,
    mask: Mapping[str, torch.Tensor] | None = None,
    tol: float = 1e-3,
    max_iter: int = 100,
    method: str = "lanczos",
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    criterion: str = "residual",
) -> xr.Dataset:
    """Top-k Hessian eigenvalues of the mean cross-entropy over ``data`` (eval mode).

    ``model`` may be a module, a :class:`Checkpoint` or a path (then ``mask`` defaults to its mask).
    ``subspace`` defaults to ``mask`` when a mask is given, else ``dense``. ``method``: lanczos,
    eigsh, power or pyhessian (the PyHessian package, dense only, as a cross-check).
    ``criterion`` (lanczos only): ``residual`` (default) or ``change`` (PyHessian's relative-change test).
    Returns a Dataset with ``eigenvalue(k)`` (descending), ``residual(k)`` and ``iterations(k)``.
    """
    model, mask, subspace, attrs = _resolve(model, mask, subspace)
    if method not in (*EIGEN_METHODS, "pyhessian"):
        raise UserError(f"unknown Hessian method {method!r}; choose from: {', '.join([*EIGEN_METHODS, 'pyhessian'])}")
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(model, data, mask, subspace, dev)
    _check_k(k, op.dim)
    generator = torch.Generator().manual_seed(seed)
    if method == "pyhessian":
        if subspace != "dense":
            raise UserError("method pyhessian covers every parameter; use --subspace dense")
        result = _pyhessian(model, data, k, tol, max_iter, seed, dev)
    elif method == "lanczos":
        result = lanczos(op.matvec, op.dim, k, tol, max_iter, generator, op.dtype, op.device, criterion=criterion)
    else:
        result = EIGEN_METHODS[method](op.matvec, op.dim, k, tol, max_iter, generator, op.dtype, op.device)
    ds = xr.Dataset(
        {
            "eigenvalue": ("k", result.eigenvalues.astype(float)),
            "residual": ("k", result.residuals.astype(float)),
            "iterations": ("k", result.iterations.astype(np.int64)),
        },
        coords={"k": np.arange(1, k + 1)},
        attrs={
            **attrs,
            "method": method,
            "subspace": subspace,
            "dimension": op.dim,
            "tol": tol,
            "max_iter": max_iter,
            "hvp_count": op.matvecs,
            "n_samples": op.n_samples or -1,
            "seed": seed,
            "loss": "mean cross-entropy over all of data, eval mode",
        },
    )
    ds["eigenvalue"].attrs["units"] = "curvature of the mean loss (nats per squared parameter unit)"
    ds["residual"].attrs["definition"] = "||Hv - lambda v|| (Lanczos: the estimate beta_m |s_mi|)"
    return ds


def hessian_trace(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    mask: Mapping[str, torch.Tensor] | None = None,
    tol: float = 1e-2,
    max_probes: int = 100,
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> xr.Dataset:
    """Hutchinson estimate of the Hessian trace on the subspace: ``trace``, ``trace_stderr``, ``probes``."""
    model, mask, subspace, attrs = _resolve(model, mask, subspace)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(model, data, mask, subspace, dev)
    trace, stderr, n = hutchinson(
        op.matvec,
        op.dim,
        tol,
        max_probes,
        min(10, max_probes),
        torch.Generator().manual_seed(seed),
        op.dtype,
        op.device,
    )
    return xr.Dataset(
        {"trace": trace, "trace_stderr": stderr, "probes": n},
        attrs={**attrs, "subspace": subspace, "dimension": op.dim, "tol": tol, "seed": seed},
    )


def hessian_density(
    model: nn.Module | Checkpoint | str,
    data: Iterable,
    mask: Mapping[str, torch.Tensor] | None = None,
    probes: int = 1,
    steps: int = 100,
    grid: int = 400,
    sigma: float | None = None,
    subspace: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> xr.Dataset:
    """SLQ spectral density: ``nodes(probe, node)``, ``weights(probe, node)`` and ``density(t)`` on a
    grid spanning the nodes (Gaussian kernel of width ``sigma``, default 1% of the node range)."""
    model, mask, subspace, attrs = _resolve(model, mask, subspace)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    op = HessianOperator(model, data, mask, subspace, dev)
    nodes, weights = slq(op.matvec, op.dim, probes, steps, torch.Generator().manual_seed(seed), op.dtype, op.device)
    lo, hi = float(np.nanmin(nodes)), float(np.nanmax(nodes))
    span = max(hi - lo, 1e-12)
    sigma = sigma or 0.01 * span
    t = np.linspace(lo - 0.05 * span, hi + 0.05 * span, grid)
    return xr.Dataset(
        {
            "nodes": (("probe", "node"), nodes),
            "weights": (("probe", "node"), weights),
            "density": ("t", density_on_grid(nodes, weights, t, sigma)),
        },
        coords={"t": t},
        attrs={**attrs, "subspace": subspace, "dimension": op.dim, "sigma": sigma, "steps": steps, "seed": seed},
    )
