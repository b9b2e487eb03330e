"""The ``landscape`` command line: a thin layer over the library API.

* :mod:`landscape.cli.app` — the typer app and shared options;
* :mod:`landscape.cli.config_flags` — ``train`` options generated from the config dataclasses;
* :mod:`landscape.cli.run_commands` — ``train``, ``prune``, ``sweep``, ``demo``;
* :mod:`landscape.cli.analysis_commands` — ``interpolate``, ``hessian``, ``signs``, ``surface``;
* :mod:`landscape.cli.analyze_command` — ``analyze`` (run folders, or checkpoints from elsewhere);
* :mod:`landscape.cli.sources` — the ``--model``, ``--mask``, ``--data`` and ``--loss`` options every analysis shares;
* :mod:`landscape.cli.connectivity_commands` — ``curve`` and the printed path and pair tables;
* :mod:`landscape.cli.reproduce_command` — ``reproduce``: the reproduction's claim groups and report;
* :mod:`landscape.cli.main` — :func:`main`, which maps errors to exit codes.
"""

from landscape.cli.app import app
from landscape.cli.main import main

__all__ = ["app", "main"]
