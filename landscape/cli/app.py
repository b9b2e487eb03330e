"""The typer application and the options several commands share."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Sparse training and loss-landscape analysis. Run `landscape demo` for the main job on MNIST-1D.",
    rich_markup_mode=None,
)
# Piped output (files, CI logs, tests) gets a fixed 120 columns, so run names and paths are not wrapped.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
OutOpt = typer.Option(None, help="Write the Dataset to this netCDF file.")
DataOpt = typer.Option(None, help="Dataset (default: the checkpoint's).")
DataRootOpt = typer.Option(None, help="Folder holding the dataset's files (default: as recorded).")
SamplesOpt = typer.Option(
    None, help="Analyse a fixed, class-balanced subset of this many samples of each split (default: all)."
)
SamplesSeedOpt = typer.Option(0, help="Seed of the --samples subset.")
AlignOpt = typer.Option(
    "none", help="Permute B's units to match A first: none, weight-matching or activation-matching."
)


def param_name(key: str) -> str:
    """The Python parameter name of a (possibly dotted) library parameter or config key."""
    return key.replace(".", "__")
