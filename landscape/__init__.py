"""Analysis of sparse-training checkpoints: interpolation and barriers, Hessian spectra, sign and mask
statistics, loss surfaces and the analysis of run folders. Results are xarray Datasets.

The library API is what the CLI and the notebooks call::

    import landscape
    a = landscape.load_checkpoint("runs/x/cycle_1.pt")
    ds = landscape.interpolate(a, "runs/x/cycle_2.pt", data=landscape.checkpoint_data(a, "test"))

Checkpoints (the format, :class:`Checkpoint`, :func:`load_checkpoint`, :func:`check_compatible`,
:func:`checkpoint_data`) live in :mod:`training.checkpoint` and are re-exported here.
"""

from landscape.align import align, find_alignment
from landscape.analysis import analyze
from landscape.curves import curve, evaluate_curve, fit_curve
from landscape.hessian import hessian_density, hessian_diagonal, hessian_eigenvalues, hessian_trace
from landscape.interpolate import barrier, interpolate, recalibrate_bn
from landscape.overlap import overlap
from landscape.pairs import compare_runs
from landscape.permutation import permute
from landscape.results import load_dataset, save_dataset
from landscape.surface import plane, surface
from training import __version__
from training.checkpoint import Checkpoint, check_compatible, checkpoint_bundle, checkpoint_data, load_checkpoint

__all__ = [
    "Checkpoint",
    "__version__",
    "align",
    "analyze",
    "barrier",
    "check_compatible",
    "checkpoint_bundle",
    "checkpoint_data",
    "compare_runs",
    "curve",
    "evaluate_curve",
    "find_alignment",
    "fit_curve",
    "hessian_density",
    "hessian_diagonal",
    "hessian_eigenvalues",
    "hessian_trace",
    "interpolate",
    "load_checkpoint",
    "load_dataset",
    "overlap",
    "permute",
    "plane",
    "recalibrate_bn",
    "save_dataset",
    "surface",
]
