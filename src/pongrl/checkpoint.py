"""Crash-safe checkpoints: one .npz of arrays plus a JSON header, never pickle.

The file is written to a temporary name in the same folder, flushed to disk
(fsync), then renamed over the old one, so a reader always sees either the old
checkpoint or the new one, whole.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "pongrl-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is missing, damaged, or not a checkpoint that fits."""


def save(path: str | Path, arrays: dict[str, np.ndarray], meta: dict, compress: bool = False) -> None:
    """Atomically write `arrays` and the JSON-able `meta` to `path`."""
    path = Path(path)
    header = json.dumps({"format": FORMAT, "version": VERSION, **meta})
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, meta=np.array(header), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint -> (arrays, meta). Raises CheckpointError with a one-line reason."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a pongrl checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{path} is not a readable pongrl checkpoint ({type(e).__name__}: {e})") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path} is not a pongrl checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has a damaged header") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pongrl checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {meta.get('version')}, this pongrl reads {VERSION}")
    return arrays, meta


def check_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple], path: str | Path) -> None:
    """Every expected array is present with its shape; else one line saying what is wrong."""
    for key, shape in expected.items():
        if key not in arrays:
            raise CheckpointError(f"{path}: missing array {key!r}")
        if tuple(arrays[key].shape) != tuple(shape):
            raise CheckpointError(f"{path}: array {key!r} has shape {tuple(arrays[key].shape)}, expected {tuple(shape)}")
