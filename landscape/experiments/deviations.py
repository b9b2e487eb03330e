"""Where the ``full`` tier departs from the papers' settings, and why (for ``REPRODUCTION.md`` Part 2).

The full tier uses the papers' settings where they are known and affordable: Paper 1's CIFAR ResNet-18
with TurboPrune's setting A (batch 512, peak LR 0.2, weight decay 5e-4, SGD momentum 0.9, the
triangular one-cycle schedule per cycle: linear warmup from 0.2·LR over 20% of the steps, linear
decay to 0), LRR with 20% of the remaining weights per level and a rewind point after one epoch, and
for the sanity checks Su et al.'s ResNet-32 of width 32 with their optimiser (batch 64, LR 0.1,
weight decay 1e-4, 160 epochs, ×0.1 at epochs 80 and 120), one-shot LT and LRR, SNIP and GraSP on 10
samples per class. The rest differs, as listed by :func:`full_tier_deviations`.
"""

from __future__ import annotations

from landscape.experiments.settings import Tier, get_tier


def full_tier_deviations(tier: Tier | None = None) -> list[str]:
    """Each deviation of the ``full`` tier (or ``tier``) from the papers, with the reason, one sentence
    each. The numbers are read from the tier, so the list follows its settings."""
    t = tier or get_tier("full")
    c, s, k = t.cyclic, t.sanity, t.sculpting
    sanity_seeds = len(t.sanity_seeds)
    return [
        f"Epochs per cycle: E = {c.epochs} (cyclic, SCULPT-ing, LRR levels); TurboPrune's setting A uses E = 150. "
        f"{c.cycles} cycles of 150 epochs for every arm, mask and seed is beyond a single-GPU budget; whether the "
        f"training loss has flattened before each restart at E = {c.epochs} is to be checked in the runs' curves.",
        f"Cycles: cyclic PaI runs C = {c.cycles} cycles and SCULPT-ing C₀ = {k.cycles}; Paper 1 may match C to "
        "LRR's number of trainings (14 at 95%); its exact C and C₀ could not be verified from its text.",
        "Augmentation: 4-pixel padded random crops and horizontal flips; TurboPrune uses airbench's "
        "alternating flip and 2-pixel translation. Training is in float32; TurboPrune trains in bfloat16.",
        "Datasets: CIFAR-10 only; the papers also report CIFAR-100 and ImageNet (Paper 1) and CIFAR-100 and "
        "Tiny-ImageNet (Su et al.), which need more data and GPU time than this tier.",
        f"Architectures: Su et al.'s checks and tickets use ResNet-32 of width 32 here; they also report "
        f"VGG-19. Their checks are run at {s.sparsity:.0%} sparsity, their tickets at "
        f"{', '.join(f'{x:.0%}' for x in (s.ticket_sparsities or (s.sparsity,)))}.",
        f"Seeds: {len(t.seeds)} paired seeds ({sanity_seeds} for Su et al.'s experiments). With n = 3 the t "
        "interval is wide (t = 4.30), so small effects stay inconclusive; the papers' tables give no paired "
        "intervals to compare with.",
        f"Barriers: BatchNorm statistics are recalibrated at every α (the toolkit's default) over "
        f"{t.connectivity.points} values of α; Paper 1's code evaluates the interpolated running statistics "
        "without recalibration (available as `bn='none'`).",
    ]
