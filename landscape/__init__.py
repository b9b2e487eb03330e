"""Analysis of sparse-training checkpoints: interpolation and barriers, Hessian spectra, sign and mask
statistics, loss surfaces and the analysis of run folders. Results are xarray Datasets.

The library API is what the CLI and the notebooks call::

    import landscape
    a = landscape.load_checkpoint("runs/x/cycle_1.pt")
    test, train = landscape.checkpoint_data(a, "test"), landscape.checkpoint_data(a, "train")
    ds = landscape.interpolate(a, "runs/x/cycle_2.pt", {"test": test}, bn_data=train)

Files from elsewhere (state dicts, wrapper dicts, Lightning, safetensors, pruning buffers) load with
:func:`load` (``landscape.load("resnet18.pt", model="torchvision:resnet18", model_args={"num_classes": 10})``)
and models in memory with :func:`from_module`; every analysis also takes an ``nn.Module`` or such a path
with ``model=`` (:mod:`landscape.sources`).

Checkpoints (the format, :class:`Checkpoint`, :func:`load_checkpoint`, :func:`check_compatible`,
:func:`checkpoint_data`) live in :mod:`training.checkpoint` and are re-exported here.
"""

from landscape.analysis import analyze
from landscape.connectivity.align import align, find_alignment
from landscape.connectivity.curves import curve, evaluate_curve, fit_curve
from landscape.connectivity.interpolate import barrier, interpolate, recalibrate_bn
from landscape.connectivity.pairs import compare_runs
from landscape.connectivity.permutation import permute
from landscape.hessian import hessian_density, hessian_diagonal, hessian_eigenvalues, hessian_trace
from landscape.overlap import overlap
from landscape.results import load_dataset, save_dataset
from landscape.sources import from_module, load
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
    "from_module",
    "hessian_density",
    "hessian_diagonal",
    "hessian_eigenvalues",
    "hessian_trace",
    "interpolate",
    "load",
    "load_checkpoint",
    "load_dataset",
    "overlap",
    "permute",
    "plane",
    "recalibrate_bn",
    "save_dataset",
    "surface",
]
