"""Sign flips and mask overlap between two checkpoints (as in Gadhikar & Burkholz 2024, "Masks, Signs, and
Learning Rate Rewinding").

For each masked layer l, with A, B the two masks and U = A ∧ B (kept in both):

* ``flip_fraction`` = |{i ∈ U : sign θ_A,i ≠ sign θ_B,i}| / |U| (NaN if U is empty);
* ``iou`` = |A ∧ B| / |A ∨ B|; ``hamming`` = |A ⊕ B| / N_l; ``retention`` = |A ∧ B| / |A|;
* ``keep_ratio_a`` / ``keep_ratio_b`` = |A| / N_l, |B| / N_l.

The ``*_total`` variables pool all layers (counts summed before dividing). Unlike ``sign_similarity.py``
in their ``imp-lrr-lts`` code, which subtracts the first mask's zero count and is only right when both
masks are equal, flips are counted on U only, so pairs with different masks (consecutive LRR levels)
are correct. A weight counts by its sign bit (``torch.signbit``): a kept weight that is exactly zero
counts as positive.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from landscape.results import provenance
from landscape.sources import as_source
from training.checkpoint import Checkpoint, check_compatible
from training.errors import CheckpointError

Pair = Checkpoint | str | os.PathLike | Mapping[str, Any]


def _state_and_mask(
    obj: Pair, param: str, **source: Any
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Checkpoint | None]:
    if isinstance(obj, Mapping):
        if "model" not in obj or "mask" not in obj:
            raise CheckpointError("a state given to sign_flips needs 'model' and 'mask' entries")
        return dict(obj["model"]), dict(obj["mask"]), None
    ckpt = as_source(obj, param=param, **source)
    return ckpt.state, ckpt.mask, ckpt


def overlap(
    a: Pair,
    b: Pair,
    *,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mask: str = "auto",
) -> xr.Dataset:
    """Sign-flip fraction, mask IoU, Hamming distance, retention and keep ratios, per layer and in total.

    ``a`` and ``b`` are checkpoints (paths, :class:`Checkpoint` or ``nn.Module``; other files with
    ``model``, ``model_args`` and ``mask`` as :func:`landscape.sources.load` takes them) or dicts with
    ``model`` (a state dict) and ``mask``. Their masks must cover the same parameters with the same shapes.
    """
    source = {"model": model, "model_args": model_args, "mask": mask}
    state_a, mask_a, ckpt_a = _state_and_mask(a, "a", **source)
    state_b, mask_b, ckpt_b = _state_and_mask(b, "b", **source)
    if ckpt_a is not None and ckpt_b is not None:
        check_compatible(ckpt_a, ckpt_b)
    if set(mask_a) != set(mask_b):
        raise CheckpointError("the two masks cover different parameters")
    layers = list(mask_a)
    counts = {k: [] for k in ("both", "either", "xor", "a", "b", "n", "flips")}
    for n in layers:
        ma, mb = mask_a[n].bool(), mask_b[n].bool()
        if ma.shape != mb.shape or state_a[n].shape != state_b[n].shape:
            raise CheckpointError(f"masks or weights differ in shape at {n}")
        both = ma & mb
        flips = both & (torch.signbit(state_a[n]) != torch.signbit(state_b[n]))
        counts["both"].append(int(both.sum()))
        counts["either"].append(int((ma | mb).sum()))
        counts["xor"].append(int((ma ^ mb).sum()))
        counts["a"].append(int(ma.sum()))
        counts["b"].append(int(mb.sum()))
        counts["n"].append(ma.numel())
        counts["flips"].append(int(flips.sum()))
    c = {k: np.array(v, dtype=float) for k, v in counts.items()}

    def ratio(num: np.ndarray | float, den: np.ndarray | float) -> Any:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.asarray(den) > 0, np.asarray(num) / np.where(np.asarray(den) > 0, den, 1), np.nan)

    data = {
        "flip_fraction": ratio(c["flips"], c["both"]),
        "iou": ratio(c["both"], c["either"]),
        "hamming": ratio(c["xor"], c["n"]),
        "retention": ratio(c["both"], c["a"]),
        "keep_ratio_a": ratio(c["a"], c["n"]),
        "keep_ratio_b": ratio(c["b"], c["n"]),
        "kept_in_both": c["both"],
        "layer_size": c["n"],
    }
    ds = xr.Dataset({k: ("layer", v) for k, v in data.items()}, coords={"layer": layers})
    totals = {k: c[k].sum() for k in c}
    ds["flip_fraction_total"] = float(ratio(totals["flips"], totals["both"]))
    ds["iou_total"] = float(ratio(totals["both"], totals["either"]))
    ds["hamming_total"] = float(ratio(totals["xor"], totals["n"]))
    ds["retention_total"] = float(ratio(totals["both"], totals["a"]))
    ds["keep_ratio_a_total"] = float(ratio(totals["a"], totals["n"]))
    ds["keep_ratio_b_total"] = float(ratio(totals["b"], totals["n"]))
    labelled = {k: v for k, v in (("a", ckpt_a), ("b", ckpt_b)) if v is not None}
    ds.attrs.update(provenance(**labelled))
    for name in ds.data_vars:
        if name not in ("kept_in_both", "layer_size"):
            ds[name].attrs["units"] = "fraction"
    return ds
