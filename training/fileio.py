"""Atomic file writes and stable hashing.

Every file the toolkit writes goes through :func:`atomic_path`: the content is written to a temporary
file in the destination folder, flushed to disk, then renamed over the destination. A reader therefore
sees either the old file or the complete new one, never a partial write, and a failure (full disk,
read-only folder, kill) leaves whatever was there before untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path`` atomically.

    Raises :class:`UserError` with a one-line message if the folder cannot be created or written
    (read-only folder, full disk). The temporary file is removed on any failure.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file private (0600); give it the mode a plain open() would, so collaborators
        # on a shared file system can read results as the process umask allows.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no call that only reads it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; ``None`` if it does not exist. A file that is not JSON (truncated by hand,
    binary, a folder) is a one-line :class:`UserError`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise UserError(f"{path} is not a readable JSON file ({reason})") from exc


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed derived deterministically from ``seed`` and ``keys``.

    Used so that each random stream (initialisation, mask, data order of each epoch) has its own
    seed that depends only on the run seed and the stream's name, never on what ran before it.
    That is what makes a resumed run identical to an uninterrupted one.
    """
    text = json.dumps([int(seed), *[str(k) for k in keys]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def atomic_netcdf(ds: Any, path: str | os.PathLike) -> Path:
    """Write an ``xarray.Dataset`` to ``path`` as netCDF4, atomically. Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
    return path
