"""Analysis of sparse-training checkpoints: interpolation and barriers, Hessian spectra, sign and mask
statistics, loss surfaces and batch analysis of run folders. Results are xarray Datasets.

The library API is what the CLI and the notebooks call::

    import landscape
    a = landscape.load_checkpoint("runs/x/cycle_1.pt")
    ds = landscape.interpolate(a, "runs/x/cycle_2.pt", data=test_loader)
"""

from landscape.batch import analyze
from landscape.checkpoint import Checkpoint, check_compatible, load_checkpoint
from landscape.hessian import hessian_density, hessian_eigenvalues, hessian_trace
from landscape.interpolate import barrier, interpolate, recalibrate_bn
from landscape.results import load_dataset, save_dataset
from landscape.signs import sign_flips
from landscape.surface import plane, surface
from training import __version__

__all__ = [
    "Checkpoint",
    "__version__",
    "analyze",
    "barrier",
    "check_compatible",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    "interpolate",
    "load_checkpoint",
    "load_dataset",
    "plane",
    "recalibrate_bn",
    "save_dataset",
    "sign_flips",
    "surface",
]
