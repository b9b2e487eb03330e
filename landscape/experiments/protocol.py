"""The claims of ``REPRODUCTION.md`` Part 1 (fixed before any medium-tier run), as
:class:`~landscape.experiments.claims.Claim` s, and the claim groups of ``landscape reproduce``.

Arms select rows by the labels the experiment families write: the cyclic family's ``arm``,
``mask.method`` and ``mask.sparsity``; SCULPT-ing's ``method`` and ``target``; the coupling family's
``init`` and ``schedule`` (and its ``tickets`` table of LRR runs); the barrier table's ``kind`` and
``pair``; the sanity checks' ``method`` and ``check``; the tickets' ``ticket`` and ``sparsity``.
"""

from __future__ import annotations

import pandas as pd

from landscape.experiments.claims import Claim, Comparison, arm, evaluate_group
from landscape.experiments.protocol_reviews import ARCHITECTURE_CLAIMS, REVIEW_CLAIMS, REVIEW_GROUPS
from landscape.experiments.tables import ExperimentResult

P1 = "Paper 1 (arXiv 2406.02773)"
P2 = "Paper 2 (Su et al. 2020)"
METHODS = {"random": "random", "snip": "SNIP"}
CHECK_NAMES = {"random-labels": "random labels", "rearrange": "layerwise rearrange"}
CONSECUTIVE = ("1→2", "2→3", "3→4")


def _cyclic(method: str, name: str, sparsity: float = 0.9) -> dict:
    return {"mask.method": method, "mask.sparsity": sparsity, "arm": name}


def _schedule_comparisons(others: tuple[str, ...], methods: tuple[str, ...] = ("random", "snip")):
    return tuple(
        Comparison(f"{METHODS[m]}@90%, cyclic vs {o}", arm(_cyclic(m, "cyclic")), arm(_cyclic(m, o)))
        for m in methods
        for o in others
    )


def _sculpt(method: str) -> dict:
    return {"method": method, "target": 0.95}


def _check(method: str, check: str) -> dict:
    return {"method": method, "check": check}


def _ticket(name: str, sparsity: float) -> dict:
    return {"ticket": name, "sparsity": sparsity}


WARMUP, RANDOM = arm({"init": "warmup", "schedule": "cyclic"}), arm({"init": "random", "schedule": "cyclic"})
SNIP_GRASP = {"snip": "SNIP", "grasp": "GraSP"}

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="P1-1",
        group="cyclic",
        source=f"{P1}, abstract and §4 (Fig. 4)",
        statement="Cyclic training significantly boosts PaI",
        setting="cyclic 4×8 vs ordinary 8 epochs; random and SNIP masks at 90%",
        metric="accuracy",
        direction=1,
        comparisons=_schedule_comparisons(("ordinary",)),
    ),
    Claim(
        id="P1-2",
        group="cyclic",
        source=f"{P1}, §4",
        statement="The boost is not only the longer budget: cyclic beats one cycle of the same length",
        setting="cyclic 4×8 vs one-cycle 32 and vs cosine 32; random and SNIP at 90%",
        metric="accuracy",
        direction=1,
        comparisons=_schedule_comparisons(("one-cycle", "cosine")),
    ),
    Claim(
        id="P1-3",
        group="cyclic",
        source=f"{P1}, §4",
        statement="Cyclic training reaches a lower final training loss",
        setting="cyclic 4×8 vs one-cycle 32; random and SNIP at 90%",
        metric="train_set_loss",
        direction=-1,
        comparisons=_schedule_comparisons(("one-cycle",)),
    ),
    Claim(
        id="P1-1i",
        group="images",
        source=f"{P1}, as P1-1, on real images",
        statement="Cyclic training significantly boosts PaI (Fashion-MNIST)",
        setting="Fashion-MNIST: cyclic 3×4 vs ordinary 4, and vs one-cycle 12; random at 90%",
        metric="accuracy",
        direction=1,
        comparisons=_schedule_comparisons(("ordinary", "one-cycle"), ("random",)),
    ),
    Claim(
        id="P1-4",
        group="high-sparsity",
        source=f"{P1}, abstract",
        statement="At high sparsity cyclic training stays below iterative pruning",
        setting="random (ERK) PaI cyclic 15×8 vs LRR to 95% (14 levels of 20%, one-cycle 8 each)",
        metric="accuracy",
        direction=-1,
        comparisons=(Comparison("95%, cyclic PaI vs LRR", arm(_sculpt("cyclic PaI")), arm(_sculpt("lrr"))),),
    ),
    Claim(
        id="P1-5a",
        group="high-sparsity",
        source=f"{P1}, abstract and §6",
        statement="SCULPT-ing closes the gap to LRR",
        setting="SCULPT (ERK s₀ = 0.5, 3 cycles, magnitude step to 95%, 1 cycle) vs cyclic PaI 15×8",
        metric="accuracy",
        direction=1,
        comparisons=(
            Comparison("95%, SCULPT vs cyclic PaI", arm(_sculpt("sculpt s0=0.5")), arm(_sculpt("cyclic PaI"))),
        ),
    ),
    Claim(
        id="P1-5b",
        group="high-sparsity",
        source=f"{P1}, abstract and §6",
        statement="SCULPT-ing matches LRR at high sparsity (≈)",
        setting="SCULPT vs LRR at 95%",
        metric="accuracy",
        direction=1,
        comparisons=(Comparison("95%, SCULPT vs LRR", arm(_sculpt("sculpt s0=0.5")), arm(_sculpt("lrr"))),),
        equivalence=True,
    ),
    Claim(
        id="P1-6a",
        group="coupling",
        source=f"{P1}, §5",
        statement="The LRR mask from the warmup point beats it from a random initialisation",
        setting="LRR mask at 95%, cyclic 4×8 from the warmup point (1 dense epoch) vs from a fresh random init",
        metric="accuracy",
        direction=1,
        comparisons=(Comparison("warmup vs random", WARMUP, RANDOM),),
    ),
    Claim(
        id="P1-6b",
        group="coupling",
        source=f"{P1}, §5",
        statement="Warmup initialisation plus the LRR mask matches LRR (≈)",
        setting="warmup arm vs the LRR ticket (the same seed's LRR run)",
        metric="accuracy",
        direction=1,
        comparisons=(Comparison("warmup vs LRR", WARMUP, arm(table="tickets")),),
        equivalence=True,
    ),
    Claim(
        id="P1-6c",
        group="coupling",
        source=f"{P1}, §5",
        statement="The LRR signs with the warmup magnitudes suffice",
        setting="warmup magnitudes with LRR signs vs random init",
        metric="accuracy",
        direction=1,
        comparisons=(
            Comparison("warmup-signs vs random", arm({"init": "warmup-signs", "schedule": "cyclic"}), RANDOM),
        ),
    ),
    Claim(
        id="P1-7",
        group="connectivity",
        source=f"{P1}, §4 (Fig. 3b)",
        statement="Consecutive cycles are separated by an error barrier",
        setting="cyclic 4×8, random at 90%: mean test error barrier of the pairs 1→2, 2→3, 3→4 (BN recalibrated) vs 0",
        metric="error_barrier",
        direction=1,
        comparisons=(
            Comparison(
                "Frankle et al.'s barrier", arm({"kind": "consecutive cycles", "pair": CONSECUTIVE}, "barriers")
            ),
            Comparison(
                "chord barrier",
                arm({"kind": "consecutive cycles", "pair": CONSECUTIVE}, "barriers"),
                metric="error_barrier_chord",
            ),
        ),
    ),
    Claim(
        id="P2-1",
        group="sanity",
        source=f"{P2}, abstract and §4",
        statement="Initial tickets (SNIP, GraSP) are unaffected by the sanity checks",
        setting="each check vs the original, SNIP and GraSP at 90%, one-cycle 16",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"{name}, {CHECK_NAMES[c]} vs original", arm(_check(m, c)), arm(_check(m, "original")))
            for m, name in SNIP_GRASP.items()
            for c in CHECK_NAMES
        ),
        equivalence=True,
    ),
    Claim(
        id="P2-2",
        group="sanity",
        source=f"{P2}, §5",
        statement="Tickets that use trained weights (one-shot LRR) fail the sanity checks",
        setting="LRR original vs each check, 90%, one shot, 16 + 16 epochs",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"LRR, original vs {name}", arm(_check("lrr", "original")), arm(_check("lrr", c)))
            for c, name in CHECK_NAMES.items()
        ),
    ),
    Claim(
        id="P2-2c",
        group="sanity",
        source=f"{P2} (contrast of P2-1 and P2-2)",
        statement="The checks hurt LRR more than SNIP",
        setting="drop (original − check) for LRR vs for SNIP",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(
                f"drop under {name}, LRR vs SNIP",
                arm(_check("lrr", "original")),
                arm(_check("snip", "original")),
                a_minus=arm(_check("lrr", c)),
                b_minus=arm(_check("snip", c)),
            )
            for c, name in CHECK_NAMES.items()
        ),
    ),
    Claim(
        id="P2-3",
        group="sanity",
        source=f"{P2}, §4 (LT is an initial ticket)",
        statement="One-shot LT is unaffected by the checks at scale",
        setting="each check vs original, LT at 90%, 16 + 16 epochs",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"LT, {name} vs original", arm(_check("lt", c)), arm(_check("lt", "original")))
            for c, name in CHECK_NAMES.items()
        ),
        equivalence=True,
    ),
    Claim(
        id="P2-4",
        group="tickets",
        source=f"{P2}, abstract and Table 1",
        statement="Random tickets with smart ratios match or beat SNIP and GraSP",
        setting="smart-ratio random vs SNIP, and vs GraSP, at 90% and 95%, one-cycle 16",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(
                f"{round(s * 100)}%, smart-ratio random vs {name}",
                arm(_ticket("smart-ratio random", s)),
                arm(_ticket(m, s)),
            )
            for s in (0.9, 0.95)
            for m, name in SNIP_GRASP.items()
        ),
        equivalence=True,
    ),
    Claim(
        id="P2-5",
        group="tickets",
        source=f"{P2}, §6",
        statement="Hybrid tickets beat one-shot LRR at high sparsity",
        setting="hybrid vs one-shot LRR at 95%, 16 + 16 epochs",
        metric="accuracy",
        direction=1,
        comparisons=(Comparison("95%, hybrid vs LRR", arm(_ticket("hybrid", 0.95)), arm(_ticket("lrr", 0.95))),),
    ),
    *REVIEW_CLAIMS,
    *ARCHITECTURE_CLAIMS,
)

#: The claim groups of ``landscape reproduce``, in the order they are run: the papers' claims, then the
#: reviewers' questions (``keep-ratios`` is descriptive: it has no claims).
GROUPS = ("cyclic", "high-sparsity", "coupling", "connectivity", "sanity", "tickets", "images", *REVIEW_GROUPS)


def claims_of(group: str) -> list[Claim]:
    """The claims a group tests, in protocol order."""
    return [c for c in CLAIMS if c.group == group]


def claim_table(group: str, result: ExperimentResult) -> pd.DataFrame:
    """The claims of ``group`` evaluated on ``result`` (an experiment function's result for the tier at
    hand), one row per comparison (:meth:`~landscape.experiments.claims.ClaimResult.as_dict` columns)."""
    if not claims_of(group):
        return pd.DataFrame()
    return pd.DataFrame([r.as_dict() for r in evaluate_group(group, result, CLAIMS)])
