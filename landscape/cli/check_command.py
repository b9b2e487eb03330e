"""``landscape reproduce GROUP --check``: re-derive claim groups into a scratch folder and compare them
with the committed results (:mod:`landscape.experiments.check`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from landscape.experiments import check as checks
from landscape.experiments.reproduce import group_tier, reproduce_group, write_json
from training.environment import describe
from training.errors import UserError
from training.fileio import read_json


def run_checks(
    groups: list[str],
    tier: str,
    results: Path,
    scratch: Path | None,
    *,
    jobs: int,
    log: Callable[[str], None],
    skip_missing: bool,
) -> list[Path]:
    """Check every group of ``groups`` whose results exist in ``results`` (a missing one is refused in one
    line, or skipped with ``skip_missing``); print one summary per group and the record's path."""
    todo = []
    for name in groups:
        if not (results / f"{name}.nc").is_file() or read_json(results / f"{name}-claims.json") is None:
            if skip_missing:
                log(f"skipping {name}: no committed results in {results}")
                continue
            raise UserError(f"no results of group {name!r} in {results} to check against; run the group first")
        group_tier(name, tier)  # a group without this tier fails before anything trains
        todo.append(name)
    scratch = scratch or Path(tempfile.mkdtemp(prefix="landscape-check-"))
    written = []
    for name in todo:
        log(f"check {name}: re-deriving into {scratch}")
        outcome = reproduce_group(
            name, tier, scratch / "runs", scratch / "results", scratch / "figures", jobs=jobs, log=log
        )
        committed = read_json(results / f"{name}-claims.json") or {}
        runs = checks.compare_runs(results / f"{name}.nc", scratch / "results" / f"{name}.nc")
        claims = checks.compare_claims(committed, outcome.payload)
        record = checks.check_record(name, outcome.tier, runs, claims, committed, outcome.payload)
        path = write_json(record, results / "checks" / f"{name}.json")
        written.append(path)
        for line in summary_lines(record):
            print(line)
        print(path)
    return written


def summary_lines(record: dict) -> list[str]:
    """What a check found, for the terminal: the two places, the runs, each claim side by side."""
    s, committed = record["summary"], record["committed_environment"]
    lines = [
        f"check {record['group']} ({record['tier']} tier)",
        f"  committed: {describe(committed) if committed else 'not recorded'}",
        f"  re-derived: {describe(record['rederived_environment'])}",
        f"  runs: {s['runs_identical']} of {s['runs_compared']} identical; largest accuracy difference "
        f"{100 * s['largest_accuracy_difference']:.2f} pp",
    ]
    for c in record["claims"]:
        changed = "  VERDICT CHANGED" if c["verdict_changed"] else ""
        lines.append(
            f"  {c['id']} {c['label']}: {c['effect_committed']:+.4g} [{c['ci_low_committed']:+.4g}, "
            f"{c['ci_high_committed']:+.4g}] {c['verdict_committed']} -> {c['effect_rederived']:+.4g} "
            f"[{c['ci_low_rederived']:+.4g}, {c['ci_high_rederived']:+.4g}] {c['verdict_rederived']}{changed}"
        )
    lines.append(f"  verdicts changed: {s['verdicts_changed']}")
    return lines
