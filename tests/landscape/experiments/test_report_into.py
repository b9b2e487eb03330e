"""`landscape reproduce --report --into FILE` never loses the populated block: no claims files is an error,
a link stays a link, and a folder or a missing file is one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape.cli import main
from landscape.experiments.report import BEGIN, END

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ["--results", ROOT / "results" / "medium", "--quick-results", ROOT / "results" / "quick",
           "--long-results", ROOT / "results" / "medium-long"]  # fmt: skip


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code, capsys.readouterr().err.strip()


def test_report_into_never_loses_the_populated_block(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "REPRODUCTION.md"
    original = f"intro\n{BEGIN}\nthe real numbers\n{END}\noutro\n"
    doc.write_text(original)
    monkeypatch.chdir(tmp_path)  # no results/ here: the report would be all "not run" rows
    code, err = run(["reproduce", "--report", "--into", doc], capsys)
    assert code == 2 and err.startswith("error: no claims files (<group>-claims.json) in results/medium")
    assert doc.read_text() == original

    link = tmp_path / "link.md"
    link.symlink_to(doc)
    code, err = run(["reproduce", "--report", "--into", link, *RESULTS], capsys)
    assert code == 0, err
    assert link.is_symlink() and "the real numbers" not in doc.read_text()
    assert doc.read_text().startswith(f"intro\n{BEGIN}") and doc.read_text().endswith(f"{END}\noutro\n")

    missing = tmp_path / "into" / "none.md"  # "into" inside a path is not the flag
    for target, message in ((tmp_path, f"error: --into {tmp_path} is a folder"),
                            (missing, f"error: --into {missing}: no such file")):  # fmt: skip
        code, err = run(["reproduce", "--report", "--into", target, *RESULTS], capsys)
        assert code == 2 and err.splitlines() == [err.splitlines()[0]] and err.startswith(message), err


def test_claims_files_of_the_wrong_shape_are_refused_naming_the_file(tmp_path, capsys):
    """The audit: claims files of the wrong shape exited 1 with a KeyError or TypeError."""
    import json

    medium = tmp_path / "medium"
    medium.mkdir()
    good = json.loads((ROOT / "results" / "medium" / "cyclic-claims.json").read_text())
    bad_claim = {**good["claims"][0], "effect": "large"}
    for content, says in (
        ([1, 2], "it holds a list, not a mapping"),
        ({"claims": {"a": 1}}, "its 'claims' is not a list"),
        ({**good, "claims": [bad_claim]}, "claim 0's 'effect' is not a number"),
        ({**good, "claims": [{k: v for k, v in good["claims"][0].items() if k != "label"}]}, "claim 0 has no text"),
        ({**good, "timing": [3]}, "its 'timing' is not a mapping"),
    ):
        path = medium / "cyclic-claims.json"
        path.write_text(json.dumps(content))
        code, err = run(["reproduce", "--report", "--results", medium, "--quick-results", tmp_path / "none"], capsys)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: {path} is not a claims file of `landscape reproduce`: {says}"), err
