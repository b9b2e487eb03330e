"""The part every model-based curvature operator shares: the mask subspace, the data and its weighting,
the parameter selection (principal sub-blocks) and the block products in chunks.

:class:`ModelOperator` is the base of :class:`~landscape.hessian.operators.HessianOperator`,
:class:`~landscape.hessian.ggn.GGNOperator` and :class:`~landscape.hessian.fisher.FisherOperator`.
A subclass says how to prepare one batch (:meth:`ModelOperator._prepare`: a forward pass and the
first-order graph its products need) and how to apply the batch's curvature, summed over its samples,
to a chunk of tangents (:meth:`ModelOperator._products`); the base class does the rest:

* **Data.** ``data`` is a finite iterable of ``(x, y)`` batches, read **once** into a list
  (:attr:`batches`, references to the caller's tensors), so a one-shot iterator works and every
  product sees the same samples in the same batches. Batches move to :attr:`device` one at a time.
* **Weighting.** Batch products are sums over samples; their total is divided by the number of
  samples :attr:`n_samples`, so the operator is exactly that of the mean over all samples whatever
  the batch sizes (an uneven last batch counts by its size).
* **Mode.** The model is deep-copied and put in eval mode (BatchNorm uses running statistics,
  dropout is off); the caller's model is not changed.
* **Subspace.** ``mask`` maps parameter names to bool tensors; with ``subspace="mask"`` masked-out
  entries are not coordinates (rigl's "sparse spectrum"), with ``"dense"`` every entry of every
  trainable parameter is. :meth:`pack` and :meth:`unpack` convert between flat subspace vectors and
  per-parameter tensors (zeros off the subspace).
* **Parameter selection.** ``params`` (names) keeps only those parameters' coordinates; the others
  are constants. The operator is then the principal sub-block of the full one on those coordinates
  (its products differentiate with respect to the selected parameters only). :meth:`restrict` makes
  such a sub-block operator sharing this one's model copy and data.
* **Blocks.** :meth:`matmat` makes **one pass over the data** for a block of k vectors: per batch the
  forward pass and first-order graph are built once and shared by the k vectors, which are applied
  ``chunk_size`` at a time, vmapped over the chunk with ``torch.autograd.grad(...,
  is_grads_batched=True)`` (torch.func's vmap). Memory grows with ``chunk_size``, not with k. Where
  vmap cannot batch an operation the operator warns once and applies the chunk vector by vector.
* **Caching.** With a single batch and ``cache_single_batch`` the prepared graph is built once and
  kept (as PyHessian does), trading activation memory for speed.
* **Counting.** :attr:`matvecs` counts products; a block of k counts k.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from landscape.sources import check_batches
from training.errors import DataError, UserError
from training.evaluate import check_class_targets, resolve_device
from training.masks import check_mask_fits

SUBSPACES = ("mask", "dense")


class ModelOperator:
    """Base of the curvature operators of the mean cross-entropy of a model over ``data`` (see the module
    docstring for the conventions). ``kind`` names the curvature in messages and Datasets."""

    kind = "curvature"

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
        params: Sequence[str] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ):
        if subspace not in SUBSPACES:
            raise UserError(f"unknown subspace {subspace!r}; choose from: {', '.join(SUBSPACES)}", param="subspace")
        if chunk_size < 1:
            raise UserError(f"chunk_size must be at least 1, got {chunk_size}", param="chunk_size")
        self.device = resolve_device(device) if device is not None else next(model.parameters()).device
        self.model = copy.deepcopy(model).to(self.device).eval()
        self.named_parameters = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self.loss_fn = loss_fn  # a batch-mean loss(output, target); None: cross-entropy (see the operators)
        mask = dict(mask or {})
        # names and shapes: a mask of another shape would silently select the wrong weights
        check_mask_fits(mask, self.named_parameters, error=UserError)
        self.subspace = subspace
        self._kept: dict[str, torch.Tensor] = {}
        if subspace == "mask":
            self._kept = {n: m.to(self.device).flatten().nonzero().squeeze(1) for n, m in mask.items()}
        if not isinstance(data, Iterator):  # a one-pass iterator is read once, here: nothing to compare
            check_batches(data, "data")
        self.batches: list = list(data)
        for batch in self.batches[:1]:
            if not isinstance(batch, (list, tuple)) or len(batch) < 2:
                raise DataError(f"data must hold (inputs, targets) batches, got a {type(batch).__name__}", param="data")
            if loss_fn is None:
                check_class_targets(batch[1])
        self.n_samples = sum(len(batch[1]) for batch in self.batches)
        if self.n_samples == 0:
            raise UserError(f"cannot compute a {self.kind} on an empty dataset", param="data")
        self.cache_single_batch = cache_single_batch and len(self.batches) == 1
        self.chunk_size = int(chunk_size)
        self._vmap_works: bool | None = None  # unknown until the first vmapped chunk
        self._select(params)

    def _select(self, params: Sequence[str] | None) -> None:
        names = list(self.named_parameters) if params is None else list(params)
        unknown = [n for n in names if n not in self.named_parameters]
        if unknown:
            raise UserError(f"params names parameters the model does not have: {unknown[:3]}", param="params")
        if not names:
            raise UserError("params selects no parameter", param="params")
        self.names = names
        self.params = [self.named_parameters[n] for n in names]
        self.index: list[torch.Tensor | None] = [self._kept.get(n) for n in names]
        self.sizes = [
            p.numel() if idx is None else int(idx.numel()) for p, idx in zip(self.params, self.index, strict=True)
        ]
        self.dim = int(sum(self.sizes))
        self.dtype = self.params[0].dtype
        self._cached: Any = None
        self.matvecs = 0

    def restrict(self, params: Sequence[str]) -> ModelOperator:
        """The principal sub-block on the coordinates of parameters ``params`` (names), as a new operator
        of the same kind that shares this one's model copy and batches (and counts its own products)."""
        op = copy.copy(self)
        op._select(params)
        return op

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

    def pack_named(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{name: (k, *p.shape)}`` -> block ``(dim, k)``; parameters missing from ``tensors`` give zeros."""
        k = next(iter(tensors.values())).shape[0] if tensors else 1
        full = [
            tensors[n].to(device=self.device, dtype=self.dtype)
            if n in tensors
            else torch.zeros((k, *p.shape), dtype=self.dtype, device=self.device)
            for n, p in zip(self.names, self.params, strict=True)
        ]
        return self.pack_block(full)

    # ------------------------------------------------------------------ products

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The operator applied to a flat subspace vector ``v`` of shape ``(dim,)``."""
        return self.matmat(v.reshape(-1, 1))[:, 0]

    __call__ = matvec

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """The operator applied to a block ``V`` of shape ``(dim, k)``, in one pass over the data."""
        if V.ndim != 2 or V.shape[0] != self.dim:
            raise UserError(f"V must have shape (dim, k) = ({self.dim}, k), got {tuple(V.shape)}", param="V")
        V = V.to(device=self.device, dtype=self.dtype)
        k = int(V.shape[1])
        self.matvecs += k
        tangents = self.unpack_block(V)
        total = torch.zeros((self.dim, k), dtype=self.dtype, device=self.device)
        for b, (x, y) in enumerate(self.batches):
            if self.cache_single_batch:
                if self._cached is None:
                    self._cached = self._prepare(b, x.to(self.device), y.to(self.device))
                state = self._cached
            else:
                state = self._prepare(b, x.to(self.device), y.to(self.device))
            for lo in range(0, k, self.chunk_size):
                hi = min(k, lo + self.chunk_size)
                keep = self.cache_single_batch or hi < k  # free the batch's graph after its last chunk
                out = self._products(state, [t[lo:hi] for t in tangents], keep)
                total[:, lo:hi] += self.pack_block(out)
        return total / self.n_samples

    def _prepare(self, index: int, x: torch.Tensor, y: torch.Tensor) -> Any:
        """The per-batch state (graph) that :meth:`_products` needs; ``index`` is the batch's position."""
        raise NotImplementedError

    def _products(self, state: Any, chunk: list[torch.Tensor], keep_graph: bool) -> list[torch.Tensor]:
        """Per-parameter ``(c, *p.shape)`` products of the batch's summed curvature with a chunk of c tangents."""
        raise NotImplementedError

    def _batched_grad(
        self,
        outputs: Sequence[torch.Tensor],
        inputs: Sequence[torch.Tensor],
        chunk: list[torch.Tensor],
        keep_graph: bool,
    ) -> list[torch.Tensor]:
        """``autograd.grad(outputs, inputs, grad_outputs=chunk[i])`` for the c vectors of ``chunk`` (tensors of
        shape ``(c, *output.shape)``), stacked to ``(c, *input.shape)``: vmapped where torch can, else a loop."""
        c = chunk[0].shape[0]
        if c > 1 and self._vmap_works is not False:
            try:
                # the first attempt keeps the graph, so that a failure can fall back to the loop below
                keep = keep_graph or self._vmap_works is None
                out = torch.autograd.grad(outputs, inputs, grad_outputs=chunk, retain_graph=keep, is_grads_batched=True)
                self._vmap_works = True
                return [h.detach() for h in out]
            except (RuntimeError, NotImplementedError) as exc:
                if self._vmap_works or isinstance(exc, torch.OutOfMemoryError):
                    raise
                self._vmap_works = False
                warnings.warn(
                    f"vmap cannot batch this model's {self.kind} product ({str(exc).splitlines()[0]}); "
                    "applying it vector by vector",
                    RuntimeWarning,
                    stacklevel=4,
                )
        rows = []
        for i in range(c):
            out = torch.autograd.grad(
                outputs, inputs, grad_outputs=[t[i] for t in chunk], retain_graph=keep_graph or i < c - 1
            )
            rows.append([h.detach() for h in out])
        return [torch.stack(per_input) for per_input in zip(*rows, strict=True)]
