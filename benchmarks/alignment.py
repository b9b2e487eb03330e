"""Permutation-alignment benchmark row (``python benchmarks/run.py --only alignment``).

Weight matching between two independently initialised resnet20s with random 90% masks (the worst case
for coordinate descent: no trained structure to lock onto), against one 31-point interpolation with
BatchNorm recalibration between the same two networks on 512 train + 512 test CIFAR-shaped samples
(the LMC row's setup). Activation matching on the 512 training samples is timed too and reported in
the note. Goal: aligning costs less than one interpolation.
"""

from __future__ import annotations

import torch
from suite import Row, Suite, interleaved  # benchmarks/suite.py (this folder is on sys.path when run as a script)


def _checkpoint(seed: int, device: torch.device):
    from training.checkpoint import Checkpoint
    from training.masks import apply_mask
    from training.models import build
    from training.pruning import prune

    torch.manual_seed(seed)
    model = build("resnet20", 10)
    mask = prune(model, "random", 0.9, generator=torch.Generator().manual_seed(seed))
    apply_mask(model, mask)
    meta = {"model": "resnet20", "model_kwargs": {}, "num_classes": 10}
    return Checkpoint(model.eval(), mask, meta, {k: v.clone() for k, v in model.state_dict().items()})


def bench_alignment(s: Suite) -> None:
    """Weight matching (resnet20, 90% sparse) vs one 31-point interpolation of the same pair."""
    import landscape

    n = 256 if s.quick else 512
    a, b = _checkpoint(0, s.device), _checkpoint(1, s.device)
    g = torch.Generator().manual_seed(0)
    train = [
        (torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(n // 128)
    ]
    test = [
        (torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(n // 128)
    ]
    found = {}

    def weight_matching():
        found["wm"] = landscape.find_alignment(a, b, "weight-matching")

    def activation_matching():
        found["am"] = landscape.find_alignment(a, b, "activation-matching", train, device=s.device)

    def interpolation():
        landscape.interpolate(a, b, {"test": test}, points=31, bn="recalibrate", bn_data=train, device=s.device)

    t = interleaved(
        {"wm": weight_matching, "am": activation_matching, "lmc": interpolation}, max(1, s.repeats // 2), warmup=0
    )
    wm = found["wm"]
    r = t["wm"] / t["lmc"]
    s.rows.append(
        Row(
            "weight matching (resnet20, 90% sparse, independent inits)",
            f"one 31-point LMC with BN recalibration ({n} train + {n} test samples)",
            "< 1×",
            f"{t['wm']:.2f} s",
            f"{t['lmc']:.2f} s",
            r,
            r < 1.0,
            f"{wm.sweeps} coordinate-descent sweep(s) after the forward pass, squared distance {wm.cost_before:.4g} → "
            f"{wm.cost_after:.4g}, {100 * wm.units_moved:.0f}% of units moved; activation matching on the "
            f"{n} train samples {t['am']:.2f} s ({t['am'] / t['lmc']:.2f}× the LMC)",
        )
    )
