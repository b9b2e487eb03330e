"""The output-path guard every command calls before it computes anything.

Rules for an output file (:func:`check_output`):

* it never resolves (symlinks followed, hard links compared with ``os.path.samefile``) to one of
  the command's inputs, nor to another output of the same command;
* it is never inside a *run folder* (a folder with ``manifest.json``, at any depth): those files
  belong to training and to the analysis cache the toolkit keeps there, and a result written over
  ``metrics.nc`` or a checkpoint would silently replace the run's own data;
* it is not an existing folder, its suffix is one the writer produces (``.nc``, ``.pt``, ``.png``...),
  and its nearest existing parent is a writable folder (missing folders are created when writing).

Output folders (:func:`check_output_folder`: ``train --out``, ``demo --out``) follow the same rules
except the suffix. Every refusal is a one-line :class:`~training.errors.UserError` naming the flag
(``param``), raised before any work starts, so nothing is lost after an hour of computing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from training.errors import UserError

MANIFEST = "manifest.json"
DATASET_SUFFIXES = (".nc",)
CHECKPOINT_SUFFIXES = (".pt",)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def run_folder_of(path: str | os.PathLike) -> Path | None:
    """The run folder (a folder holding ``manifest.json``) that ``path`` is in or is, if any."""
    resolved = Path(path).expanduser().resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / MANIFEST).is_file():
            return folder
    return None


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _writable_parent(path: Path, param: str) -> None:
    """Refuse ``path`` when one of its ancestors is a file or its nearest existing ancestor is not writable."""
    folder = path.parent
    while not folder.exists():
        if folder.is_symlink():  # a dangling link: writing would fail
            raise UserError(f"{param} {path}: {folder} is a broken link", param=param)
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{param} {path}: {folder} is a file, not a folder", param=param)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{param} {path}: the folder {folder} is not writable", param=param)


def refuse_inputs(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], param: str) -> None:
    """Refuse an output ``path`` that is one of the ``inputs`` (links included): writing would destroy it.
    The Python API's writers call this; the CLI's go through :func:`check_output`, which calls it too."""
    _refuse_inputs(Path(path).expanduser(), inputs, param)


def _refuse_inputs(path: Path, inputs: Iterable[str | os.PathLike], param: str) -> None:
    for given in inputs:
        if given is not None and _same(path, Path(given)):
            raise UserError(f"{param} {path} is one of the inputs ({given}); choose another file", param=param)


def check_output(
    path: str | os.PathLike | None,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    suffixes: Sequence[str] = DATASET_SUFFIXES,
    param: str = "out",
) -> Path | None:
    """Validate an output file before any work (see the module docstring); ``None`` passes.

    ``inputs`` are the files (or folders) the command reads; ``suffixes`` the endings the writer
    accepts; ``param`` names the option in messages. Returns the path."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{param} must end in {' or '.join(suffixes)}, got {str(path)!r}", param=param)
    if path.is_dir():
        raise UserError(f"{param} {path} is a folder; give a file name ending in {suffixes[0]}", param=param)
    _refuse_inputs(path, inputs, param)
    run = run_folder_of(path.parent)
    if run is not None:
        raise UserError(
            f"{param} {path} is inside the run folder {run}, whose files the toolkit manages; write it elsewhere",
            param=param,
        )
    _writable_parent(path, param)
    return path


def check_outputs(outputs: Sequence[tuple[str, str | os.PathLike | None, Sequence[str]]], *, inputs=()) -> None:
    """:func:`check_output` for several outputs ``(param, path, suffixes)`` of one command, which must
    also differ from each other."""
    seen: list[tuple[str, Path]] = []
    for param, path, suffixes in outputs:
        checked = check_output(path, inputs=inputs, suffixes=suffixes, param=param)
        if checked is None:
            continue
        for other_param, other in seen:
            if checked.resolve() == other.resolve():
                raise UserError(f"{param} and {other_param} are the same file {checked}", param=param)
        seen.append((param, checked))


def check_output_folder(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), param: str = "out"
) -> Path:
    """Validate an output folder (the parent of run folders, a demo folder): not a file, not one of
    ``inputs``, not inside a run folder, and creatable. Returns the path."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{param} {path} is a file, not a folder", param=param)
    _refuse_inputs(path, inputs, param)
    run = run_folder_of(path)
    if run is not None:
        raise UserError(
            f"{param} {path} is inside the run folder {run}; give the folder that holds run folders", param=param
        )
    if not path.exists():
        _writable_parent(path, param)
    return path
