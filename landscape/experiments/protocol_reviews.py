"""The claims added for the papers' reviewers (``REPRODUCTION.md`` Part 1, "Claims added for the
reviewers' questions", registered before their runs), as :class:`~landscape.experiments.claims.Claim` s.

Questions with no stated direction have ``direction`` 0: the two-sided rule of
:func:`~landscape.experiments.stats.verdict` ("differs" / "no difference detected").

Arms select rows by the labels the groups write: ``budget``'s ``method``, ``sparsity``, ``budget``
(RigL's multiple of T) and ``nearest`` (RigL's budget nearest SCULPT's FLOPs); ``boost-vs-sparsity``'s
``arm`` and ``sparsity`` and its ``slopes`` table; ``sharpness``'s ``arm`` and ``mask.method``;
``coupling-ordinary``'s ``init`` and ``schedule`` (and its ``tickets`` table).
"""

from __future__ import annotations

from landscape.experiments.claims import Claim, Comparison, arm
from landscape.experiments.review_settings import BUDGET_BASELINES

P1 = "Paper 1 (arXiv 2406.02773)"
REVIEW = "Paper 1's reviewers (ICLR 2025)"
NAMES = {
    "lrr": "LRR",
    "cyclic PaI": "cyclic PaI",
    "rigl": "RigL",
    "set": "SET",
    "gmp": "GMP",
    "gmp-star": "GMP*",
    "acdc": "AC/DC",
    "dense": "dense",
}
BUDGET_SPARSITIES = (0.9, 0.95)
BOOST_SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)


def _pct(s: float) -> str:
    return f"{round(s * 100)}%"


def _budget(method: str, sparsity: float | None, **more) -> dict:
    where = {"method": method, **more}
    return where if sparsity is None else {**where, "sparsity": sparsity}


def _baseline(method: str, s: float):
    if method == "dense":
        return arm(_budget("dense", None))
    return arm(_budget(method, s, budget=1))


def _sculpt(s: float):
    return arm(_budget("sculpt", s))


def _baselines() -> tuple[Comparison, ...]:
    out = []
    for s in BUDGET_SPARSITIES:
        for m in BUDGET_BASELINES:
            out.append(Comparison(f"{_pct(s)}, SCULPT vs {NAMES[m]}", _sculpt(s), _baseline(m, s)))
            if m == "rigl":
                out.append(Comparison(f"{_pct(s)}, SCULPT vs RigL 2×", _sculpt(s), arm(_budget("rigl", s, budget=2))))
    return tuple(out)


_CO = {"random": "random init", "warmup": "warmup"}

REVIEW_CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="B-1",
        group="budget",
        source=f"{REVIEW}: SCULPT against RigL, AC/DC, GMP*, LRR on training FLOPs",
        statement="How does SCULPT compare with each baseline at its own budget?",
        setting="SCULPT vs LRR, cyclic PaI, RigL (1×, 2×), SET, GMP, GMP*, AC/DC, dense (T = 32); 90% and 95%",
        metric="accuracy",
        direction=0,
        comparisons=_baselines(),
    ),
    Claim(
        id="B-2",
        group="budget",
        source=f"{REVIEW}: an iso-FLOP comparison",
        statement="… and against RigL at its budget nearest SCULPT's training FLOPs",
        setting="SCULPT vs RigL at whichever of 1× and 2× has mean train_flops nearer SCULPT's (log scale)",
        metric="accuracy",
        direction=0,
        comparisons=tuple(
            Comparison(f"{_pct(s)}, SCULPT vs RigL (nearest FLOPs)", _sculpt(s), arm(_budget("rigl", s, nearest=True)))
            for s in BUDGET_SPARSITIES
        ),
    ),
    Claim(
        id="B-3",
        group="budget",
        source=f"{P1}, abstract: SCULPT-ing … at reduced cost",
        statement="SCULPT costs fewer training FLOPs than LRR",
        setting="SCULPT vs LRR at 90% and 95% (exact counts)",
        metric="train_flops",
        direction=-1,
        comparisons=tuple(
            Comparison(f"{_pct(s)}, SCULPT vs LRR", _sculpt(s), _baseline("lrr", s)) for s in BUDGET_SPARSITIES
        ),
    ),
    Claim(
        id="B-4",
        group="budget",
        source=f"{P1}, abstract and §6 (P1-5b at 90% and 95%)",
        statement="SCULPT-ing matches LRR (≈)",
        setting="SCULPT vs LRR at 90% and 95%",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"{_pct(s)}, SCULPT vs LRR", _sculpt(s), _baseline("lrr", s)) for s in BUDGET_SPARSITIES
        ),
        equivalence=True,
    ),
    Claim(
        id="V-1",
        group="boost-vs-sparsity",
        source=f"{P1}, §4 (lines 294–295); a reviewer doubts it",
        statement="The cyclic boost is larger at higher sparsity",
        setting="per seed, the slope of acc(cyclic 4×8) − acc(ordinary 8) against x = −log10(1 − s), "
        "random ERK at 50–98%",
        metric="slope",
        direction=1,
        comparisons=(Comparison("slope per decade of density", arm(table="slopes")),),
    ),
    Claim(
        id="V-2",
        group="boost-vs-sparsity",
        source=f"{P1}, abstract and §4 (P1-1 at each sparsity)",
        statement="Cyclic training boosts PaI (random ERK)",
        setting="cyclic 4×8 vs ordinary 8 at each sparsity",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(
                f"{_pct(s)}, cyclic vs ordinary",
                arm({"arm": "cyclic", "sparsity": s}),
                arm({"arm": "ordinary", "sparsity": s}),
            )
            for s in BOOST_SPARSITIES
        ),
    ),
    *(
        Claim(
            id=cid,
            group="sharpness",
            source=f"{P1}, §4 (Fig. 3)",
            statement=f"Do cyclic and one-cycle solutions differ in λ_max ({where})?",
            setting=f"cyclic 4×8 vs one-cycle 32, random and SNIP at 90%; {where}, 1,024 training samples",
            metric=metric,
            direction=0,
            comparisons=tuple(
                Comparison(
                    f"{name}@90%, cyclic vs one-cycle",
                    arm({"arm": "cyclic", "mask.method": m}),
                    arm({"arm": "one-cycle", "mask.method": m}),
                )
                for m, name in (("random", "random"), ("snip", "SNIP"))
            ),
        )
        for cid, where, metric in (
            ("S-1", "all parameters", "lambda_max_all"),
            ("S-2", "mask subspace", "lambda_max_mask"),
        )
    ),
    Claim(
        id="O-1",
        group="coupling-ordinary",
        source=f"{P1}, §5 (P1-6a under one-cycle training)",
        statement="The LRR mask from the warmup point beats it from a random initialisation (one-cycle)",
        setting="LRR mask at 95%, one-cycle 32 from the warmup point vs from a fresh random init",
        metric="accuracy",
        direction=1,
        comparisons=(
            Comparison(
                "warmup vs random, one-cycle",
                arm({"init": "warmup", "schedule": "one-cycle"}),
                arm({"init": "random", "schedule": "one-cycle"}),
            ),
        ),
    ),
    Claim(
        id="O-2",
        group="coupling-ordinary",
        source=f"{P1}, §5 (P1-6b under one-cycle training)",
        statement="Warmup initialisation plus the LRR mask matches LRR (≈), one-cycle",
        setting="warmup one-cycle 32 vs the same seed's LRR ticket",
        metric="accuracy",
        direction=1,
        comparisons=(
            Comparison(
                "warmup one-cycle vs LRR", arm({"init": "warmup", "schedule": "one-cycle"}), arm(table="tickets")
            ),
        ),
        equivalence=True,
    ),
    Claim(
        id="O-3",
        group="coupling-ordinary",
        source=f"{REVIEW}: did you compare the LRR-mask experiments to non-cyclic training?",
        statement="Does cyclic training matter with the LRR mask?",
        setting="cyclic 4×8 vs one-cycle 32, LRR mask at 95%, from the warmup point and from a random init",
        metric="accuracy",
        direction=0,
        comparisons=tuple(
            Comparison(
                f"{label}, cyclic vs one-cycle",
                arm({"init": init, "schedule": "cyclic"}),
                arm({"init": init, "schedule": "one-cycle"}),
            )
            for init, label in _CO.items()
        ),
    ),
)

ARCHITECTURES = {"vit": "ViT", "mobilenetv2": "MobileNetV2"}


def _arch(model: str, arm_name: str, method: str | None = None):
    where = {"model": model, "arm": arm_name}
    return arm(where if method is None else {**where, "method": method})


ARCHITECTURE_CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="A-1",
        group="architectures",
        source=f"{P1}, abstract and §4 (P1-1 beyond ResNets); {REVIEW}",
        statement="Cyclic training significantly boosts PaI (ViT, MobileNetV2)",
        setting="Fashion-MNIST: cyclic C×E vs ordinary E, random and SNIP masks",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"{name}, {m}, cyclic vs ordinary", _arch(model, "cyclic", m), _arch(model, "ordinary", m))
            for model, name in ARCHITECTURES.items()
            for m in ("random", "snip")
        ),
    ),
    Claim(
        id="A-4",
        group="architectures",
        source=f"{P1}, abstract (P1-4 beyond ResNets)",
        statement="Cyclic PaI stays below LRR (ViT, MobileNetV2)",
        setting="cyclic PaI (ERK) with as many cycles as LRR trains vs LRR",
        metric="accuracy",
        direction=-1,
        comparisons=tuple(
            Comparison(f"{name}, cyclic PaI vs LRR", _arch(model, "cyclic PaI"), _arch(model, "lrr"))
            for model, name in ARCHITECTURES.items()
        ),
    ),
    Claim(
        id="A-5a",
        group="architectures",
        source=f"{P1}, abstract and §6 (P1-5a beyond ResNets)",
        statement="SCULPT-ing closes the gap to LRR (ViT, MobileNetV2)",
        setting="SCULPT vs cyclic PaI",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"{name}, SCULPT vs cyclic PaI", _arch(model, "sculpt"), _arch(model, "cyclic PaI"))
            for model, name in ARCHITECTURES.items()
        ),
    ),
    Claim(
        id="A-5b",
        group="architectures",
        source=f"{P1}, abstract and §6 (P1-5b beyond ResNets)",
        statement="SCULPT-ing matches LRR (≈; ViT, MobileNetV2)",
        setting="SCULPT vs LRR",
        metric="accuracy",
        direction=1,
        comparisons=tuple(
            Comparison(f"{name}, SCULPT vs LRR", _arch(model, "sculpt"), _arch(model, "lrr"))
            for model, name in ARCHITECTURES.items()
        ),
        equivalence=True,
    ),
)

#: The groups of :data:`REVIEW_CLAIMS` and the descriptive ``keep-ratios`` group, in the order they run.
REVIEW_GROUPS = ("coupling-ordinary", "boost-vs-sparsity", "sharpness", "budget", "keep-ratios", "architectures")
