"""The loading layer: any checkpoint file, model, mask, data and loss a researcher already has.

* :func:`load` reads a file (landscape checkpoints, plain state dicts, the usual wrapper dicts,
  PyTorch Lightning, safetensors; wrapper prefixes stripped; masks from ``torch.nn.utils.prune``,
  Synaptic-Flow, TurboPrune, open_lth or a sidecar file) into the :class:`~training.checkpoint.Checkpoint`
  every analysis takes, with ``meta["source"]`` saying where it came from;
* :func:`from_module` does the same for an ``nn.Module`` in memory, and :func:`as_source` is what
  every analysis calls on its checkpoint arguments;
* :func:`build_model` names models (registry, ``torchvision:``, ``timm:``, ``package.module:callable``),
  :func:`data_from_spec` data and :func:`resolve_loss` losses; :func:`check_batches` refuses data
  that changes between passes.

Files are sniffed by their bytes (:mod:`landscape.sources.files`) and never unpickled with code.
"""

from landscape.sources.data import check_batches, data_from_spec
from landscape.sources.files import read_file, sniff
from landscape.sources.loading import MASK_MODES, as_source, from_module, load
from landscape.sources.specs import build_model, parse_args, resolve_callable, resolve_loss

__all__ = [
    "MASK_MODES",
    "as_source",
    "build_model",
    "check_batches",
    "data_from_spec",
    "from_module",
    "load",
    "parse_args",
    "read_file",
    "resolve_callable",
    "resolve_loss",
    "sniff",
]
