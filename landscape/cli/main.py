"""The entry point: runs the app and maps errors to exit codes.

Errors: bad input prints one line ``error: ...`` to stderr and exits with code 2; a diverged run
exits with code 3; ``--debug`` (anywhere on the line) shows the traceback instead. Library errors
name the parameter they are about (``points``, ``schedule.epochs``); :func:`main` shows the
command's own flag in its place (``--points``, ``--epochs``).
"""

from __future__ import annotations

import re
import sys
import warnings

import typer

from landscape.cli import (
    analysis_commands,
    analyze_command,
    connectivity_commands,
    reproduce_command,
    run_commands,
)
from landscape.cli.app import app, param_name
from training.errors import Interrupted, LandscapeError

INTERRUPTED = "Ctrl-C before the command finished; writes are atomic, so no file was left half-written"

# importing them registers their commands on ``app``
COMMAND_MODULES = (analysis_commands, analyze_command, connectivity_commands, reproduce_command, run_commands)


def flag_for(command_name: str | None, param: str) -> str | None:
    """The flag of ``command_name`` that sets library parameter (or config key) ``param``, if any."""
    # typer vendors click, so commands and options are matched by their interface, not their classes
    commands = getattr(typer.main.get_command(app), "commands", {})
    sub = commands.get(command_name) if command_name else None
    wanted = param_name(param)
    for p in getattr(sub, "params", ()):
        if p.name == wanted and getattr(p, "param_type_name", "") == "option" and p.opts:
            return max(p.opts, key=len)
    return None


def cli_message(exc: LandscapeError, command_name: str | None) -> str:
    """``exc``'s message with the parameter it names spelt as the command's flag."""
    message = str(exc)
    param = getattr(exc, "param", None)
    if param:
        flag = flag_for(command_name, param)
        if flag:
            # the bare word only: never inside a path (".../into/x.md") or a longer name
            message = re.sub(rf"(?<![\w./-]){re.escape(param)}(?![\w/-])", flag, message, count=1)
    return message


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app and maps errors to exit codes (2 bad input, 3 diverged;
    `analyze` exits 4 when some runs failed).

    ``landscape`` alone prints the help (exit 0). Warnings raised while a command runs (torch's
    ``UserWarning``s, say) are held back: after a command that succeeds they are printed, one line
    each; before a one-line error they would only bury it, so they are dropped (``--debug`` shows
    everything as it happens)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"] or ["--help"]
    command_name = next((a for a in args if not a.startswith("-")), None)
    if debug:
        sys.exit(_run(args, command_name, debug=True))
    with warnings.catch_warnings(record=True) as caught:
        code = _run(args, command_name, debug=False)
    if code == 0:
        for line in dict.fromkeys(f"warning: {w.category.__name__}: {w.message}" for w in caught):
            print(line.splitlines()[0], file=sys.stderr)
    sys.exit(code)


def _run(args: list[str], command_name: str | None, *, debug: bool) -> int:
    """Run the app; the exit code, after printing the one line an error gets."""
    try:
        result = app(args=args, prog_name="landscape", standalone_mode=False)
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except LandscapeError as exc:
        if debug:
            raise
        print(f"error: {cli_message(exc, command_name)}", file=sys.stderr)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # train and analyze raise Interrupted, which says more
        print(f"interrupted: {INTERRUPTED}", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # click's usage errors (typer vendors click, so match on its interface, not its class)
            print(f"error: {exc.format_message()} (see --help)", file=sys.stderr)
            return exc.exit_code
        print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    if result == 130:  # typer turns Ctrl-C into this exit code, silently (no command returns it)
        print(f"interrupted: {INTERRUPTED}", file=sys.stderr)
    return result if isinstance(result, int) else 0
