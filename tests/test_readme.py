"""The README is tested: every ```python block runs verbatim, every `landscape` command line of a ```bash
block parses, every flag it mentions exists, and every test its Guarantees table names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from landscape.cli import app, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def fenced(lang: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every fenced block of ``lang``."""
    return [(README[: m.start()].count("\n") + 1, m.group(2)) for m in FENCE.finditer(README) if m.group(1) == lang]


def landscape_lines() -> list[str]:
    """The ``landscape ...`` command lines of the bash blocks, continuation lines joined, comments dropped."""
    lines = []
    for _, code in fenced("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("landscape "):
                lines.append(line)
    return lines


def commands() -> dict:
    """The click command of every ``landscape`` subcommand (typer builds them; matched by interface)."""
    return typer.main.get_command(app).commands


def options(command) -> set[str]:
    """The long flags of ``command``, ``--no-...`` forms and ``--help`` included."""
    return {"--help"} | {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")}


def test_the_readme_has_snippets_to_test():
    assert len(fenced("python")) >= 1 and len(landscape_lines()) >= 5


@pytest.mark.parametrize("line, code", fenced("python"), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_python_snippet_runs_verbatim(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippet writes its runs under the working folder
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("command_line", landscape_lines())
def test_bash_command_line_parses(command_line):
    args = shlex.split(command_line)[1:]
    command = commands().get(args[0])
    assert command is not None, f"no command {args[0]!r}: {command_line}"
    # make_context parses and type-converts every argument and option without running the command
    ctx = command.make_context(f"landscape {args[0]}", args[1:])
    assert ctx.params


def test_every_command_used_has_help(capsys):
    used = {shlex.split(line)[1] for line in landscape_lines()}
    used |= set(re.findall(r"`landscape ([a-z]+)\b", README))
    for name in sorted(used):
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
        assert f"Usage: landscape {name}" in capsys.readouterr().out


def test_every_flag_the_readme_mentions_exists():
    """Inline ``landscape <cmd> ...`` spans use only <cmd>'s flags; any other flag mentioned (tables of
    flags) is a flag of some command."""
    cmds = commands()
    # --debug works with any command (landscape.cli.main); --dist is pytest-xdist's, in the set-up text
    every = set().union(*(options(c) for c in cmds.values())) | {"--debug", "--dist"}
    prose = FENCE.sub("", README)
    for span in re.findall(r"`([^`\n]+)`", prose):
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span))
        if span.startswith("landscape "):
            name = span.split()[1]
            assert name in cmds, span
            assert flags <= options(cmds[name]), f"{sorted(flags - options(cmds[name]))} in {span!r}"
        elif not re.match(r"(python|torchrun|pip|ruff)\b", span):
            assert flags <= every, f"{sorted(flags - every)} in {span!r}"


def test_every_test_the_guarantees_name_exists():
    named = re.findall(r"`(test_\w+)::(test_\w+)`", README)
    assert len(named) >= 20
    files = {p.stem: p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")}
    missing = [f"{f}::{t}" for f, t in named if not re.search(rf"^def {t}\b", files.get(f, ""), re.MULTILINE)]
    assert not missing


def test_every_path_the_layout_table_names_exists():
    layout = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    paths = [p for row in re.findall(r"^\| (.+?) \|", layout, re.MULTILINE) for p in re.findall(r"`([^`]+)`", row)]
    assert len(paths) >= 15
    assert [p for p in paths if not (ROOT / p).exists()] == []
