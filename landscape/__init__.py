"""Analysis of sparse-training checkpoints: interpolation and barriers (and, in later modules,
Hessian spectra, sign statistics and loss surfaces). Results are xarray Datasets.

The library API is what the CLI and the notebooks call::

    import landscape
    a = landscape.load_checkpoint("runs/x/cycle_1.pt")
    ds = landscape.interpolate(a, "runs/x/cycle_2.pt", data=test_loader)
"""

from landscape.checkpoint import Checkpoint, check_compatible, load_checkpoint
from landscape.interpolate import barrier, interpolate, recalibrate_bn
from landscape.results import load_dataset, save_dataset
from training import __version__

__all__ = [
    "Checkpoint",
    "__version__",
    "barrier",
    "check_compatible",
    "interpolate",
    "load_checkpoint",
    "load_dataset",
    "recalibrate_bn",
    "save_dataset",
]
