"""The typer application and the options several commands share."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import typer
import typer.core
from rich.console import Console

from training.checks import Range, check_number
from training.errors import UserError

NO_BREAK_HYPHEN = "\u2011"


class HelpFormatter(typer.Context.formatter_class):
    """Click's help formatter, except that a line is never broken at a hyphen, so flag names
    (``--samples-seed``), choices (``weight-matching``) and defaults (``[default: warm-start]``) stay whole
    at any terminal width: hyphens are non-breaking while lines are wrapped and plain in the output."""

    def write_dl(self, rows: Any, *args: Any, **kwargs: Any) -> None:
        rows = [tuple(cell.replace("-", NO_BREAK_HYPHEN) for cell in row) for row in rows]
        super().write_dl(rows, *args, **kwargs)

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", NO_BREAK_HYPHEN))

    def getvalue(self) -> str:
        return super().getvalue().replace(NO_BREAK_HYPHEN, "-")


class Context(typer.Context):
    formatter_class = HelpFormatter


class Group(typer.core.TyperGroup):
    """The ``landscape`` group: every command formats its help with :class:`HelpFormatter`."""

    context_class = Context

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.context_class = Context
        return command


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=False,  # `landscape` alone prints this help and exits 0 (landscape.cli.main)
    pretty_exceptions_enable=False,
    help="Sparse training and loss-landscape analysis. Run `landscape demo` for the main job on MNIST-1D.",
    epilog="Add --debug anywhere on a command line to see the traceback of an error. Exit codes: 0 done, "
    "1 internal error, 2 bad input (one line: error: ...), 3 diverged training, 130 interrupted.",
    rich_markup_mode=None,
)
# Piped output (files, CI logs, tests) gets a fixed 120 columns, so run names and paths are not wrapped.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
OutOpt = typer.Option(None, help="Write the Dataset to this netCDF file.")
DataOpt = typer.Option(None, help="Dataset: a registry name or package.module:callable (default: the checkpoint's).")
DataRootOpt = typer.Option(None, help="Folder holding the dataset's files (default: as recorded).")
SamplesOpt = typer.Option(
    None, help="Analyse a fixed, class-balanced subset of this many samples of each split (default: all)."
)
SamplesSeedOpt = typer.Option(0, help="Seed of the --samples subset.")
AllowDataOpt = typer.Option(
    False, "--allow-different-data", help="Compare checkpoints trained on different data (refused by default)."
)
ModelSpecOpt = typer.Option(
    None,
    "--model",
    help="The model of checkpoints from elsewhere: a registry name, torchvision:NAME, timm:NAME or "
    "package.module:callable (imported from the current folder). Landscape checkpoints name their own.",
)
ModelArgOpt = typer.Option(
    None, "--model-arg", help="KEY=VALUE keyword argument of the model (repeatable; the value is YAML)."
)
MaskSourceOpt = typer.Option(
    "auto", "--mask", help="auto (the file's own mask, else dense), none (dense), zeros (exact zeros) or a mask file."
)
PrefixOpt = typer.Option(None, "--prefix", help="Strip this key prefix (e.g. a LightningModule attribute: model).")
DataArgOpt = typer.Option(
    None, "--data-arg", help="KEY=VALUE keyword argument of a --data package.module:callable (repeatable)."
)
LossOpt = typer.Option(
    "cross-entropy", "--loss", help="cross-entropy, mse or package.module:callable taking (output, target)."
)
BnBatchSizeOpt = typer.Option(
    None,
    "--bn-batch-size",
    help="Samples per batch when recalibrating BatchNorm (default: the checkpoint's training batch size; "
    "128 for a file that records none). The evaluation batch size never changes it.",
)
AlignOpt = typer.Option(
    "none", help="Permute B's units to match A first: none, weight-matching or activation-matching."
)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` in the main thread, as Ctrl-C does, so
    the same clean-up runs (a job scheduler's or ``kill``'s stop, not only the terminal's); the previous
    handler is restored after. Outside the main thread (no signals there) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def check_options(**options: tuple[Any, Range]) -> None:
    """Check a command's numeric options ``name=(value, range)`` before it reads or computes anything;
    the library functions check the same names again (see :func:`training.checks.check_number`)."""
    for name, (value, valid) in options.items():
        check_number(value, name, valid)


def refuse_idle(*rules: tuple[bool, str]) -> None:
    """Refuse an option that would do nothing in combination with the others, before any work: each
    rule is ``(it applies, the one-line message saying what the option needs)``."""
    for applies, message in rules:
        if applies:
            raise UserError(message)


def param_name(key: str) -> str:
    """The Python parameter name of a (possibly dotted) library parameter or config key."""
    return key.replace(".", "__")
