"""``landscape reproduce``: one command per claim group of the reproduction protocol, and the report."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from landscape.cli.app import QuietOpt, app

GROUP_HELP = (
    "Claim group: cyclic, high-sparsity, coupling, connectivity, sanity, tickets, images (the papers' claims), "
    "coupling-ordinary, boost-vs-sparsity, sharpness, budget, keep-ratios, architectures (the reviewers' "
    "questions), or all."
)


@app.command()
def reproduce(
    group: str = typer.Argument(None, help=GROUP_HELP, show_default=False),
    tier: str = typer.Option(
        "medium",
        help="Tier: medium (the protocol), medium-long (cycles of E = 16), quick (CI-sized) or full (a GPU).",
    ),
    runs: Path = typer.Option(None, help="Parent folder of the run folders (default: runs/<tier>)."),
    results: Path = typer.Option(None, help="Folder of <group>.nc and <group>-claims.json (default: results/<tier>)."),
    figures: Path = typer.Option(None, help="Folder of <group>.png and .pdf (default: figures/<tier>)."),
    jobs: int = typer.Option(
        2,
        help="Training processes side by side (1: in this process); every run trains with its config's "
        "threads, so the results never depend on it.",
    ),
    report: bool = typer.Option(
        False, "--report", help="Print the generated part of REPRODUCTION.md Part 2 from the claims files."
    ),
    into: Path = typer.Option(None, help="With --report: replace the generated block of this file instead."),
    quick_results: Path = typer.Option(Path("results/quick"), help="With --report: the quick tier's claims files."),
    long_results: Path = typer.Option(
        Path("results/medium-long"), help="With --report: the medium-long tier's claims files (if run)."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Re-derive the group into a scratch folder and compare it with the results in --results: per-run "
        "differences, every claim side by side, changed verdicts; recorded in <results>/checks/<group>.json.",
    ),
    scratch: Path = typer.Option(
        None, help="With --check: the scratch folder of the re-derived runs, results and figures (default: a new one)."
    ),
    quiet: bool = QuietOpt,
) -> None:
    """Train a claim group's runs (cached by config hash; an interrupted group continues), evaluate its
    claims with paired seeds and 95% intervals, and write results/<tier>/<group>.nc, <group>-claims.json
    and figures/<tier>/<group>.png/.pdf. Run it from the repository root."""
    from landscape.experiments import protocol
    from landscape.experiments import report as reports
    from landscape.experiments.reproduce import group_tier, reproduce_group
    from landscape.experiments.settings import get_tier
    from training.errors import UserError

    if not report and jobs < 1:
        raise UserError(f"--jobs must be at least 1 (training processes side by side), got {jobs}")
    results = results or Path("results") / tier
    if report:
        found = [reports.load_claims(folder) for folder in (results, quick_results, long_results)]
        if not any(found):  # e.g. run outside the repository: a report of "not run" rows would replace the real one
            folders = ", ".join(str(f) for f in (results, quick_results, long_results))
            raise UserError(f"no claims files (<group>-claims.json) in {folders}; run from the repository root")
        from landscape.experiments.check import load_spreads

        block = reports.part2(*found, spreads=load_spreads([results / "checks"]))
        if into is not None:
            print(reports.write_into(into, block))
        else:
            print(block)
        return
    if group is None:
        raise UserError("give a claim group (or --report)", param="group")
    groups = list(protocol.GROUPS) if group == "all" else [group]
    if group == "all":
        get_tier(tier)  # a bad name fails before anything trains
    else:
        group_tier(group, tier)
    log = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if check:
        from landscape.cli.check_command import run_checks

        run_checks(groups, tier, results, scratch, jobs=jobs, log=log, skip_missing=group == "all")
        return
    for name in groups:
        if group == "all" and name in ("images", "architectures"):
            try:
                group_tier(name, tier)
            except UserError as exc:
                log(f"skipping {name}: {exc}")
                continue
        outcome = reproduce_group(
            name,
            tier,
            runs or Path("runs") / tier,
            results,
            figures or Path("figures") / tier,
            jobs=jobs,
            log=log,
        )
        for path in outcome.paths:
            print(path)
