"""Crash-safe checkpoints: one .npz of arrays plus a JSON header, never pickle.

One mechanism saves everything a run is made of: every stateful part
(learner, collector, games) gives `state()`, a flat dict of named arrays, and
takes them back with `restore()`; `section` picks one part's arrays out of a
checkpoint. The header declares every array's dtype, shape and checksum (CRC-32), and
loading checks each array against its declaration: dtype and shape from the
.npy header before any data is read, then the checksum of the data.

The file is written to a temporary name in the same folder, flushed to disk
(fsync), then renamed over the old one, so a reader always sees either the old
checkpoint or the new one, whole.

Format versions: 1 (pongrl 0.1) saved no declarations and checkpointed PPO
mid-rollout; 2 (pongrl 0.2) saved the games as action logs to replay.
`migrate` reads their agents and parameters, and says that their runs cannot
be resumed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import UserError

FORMAT = "pongrl-checkpoint"
VERSION = 3
DECLARED = (2, 3)  # versions whose header declares every array


class CheckpointError(UserError):
    """The file is missing, damaged, or not a checkpoint that fits."""


def save(path: str | Path, arrays: dict[str, np.ndarray], meta: dict, compress: bool = False) -> None:
    """Atomically write `arrays` and the JSON-able `meta` to `path`."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    declared = {k: declaration(v) for k, v in arrays.items()}
    header = json.dumps({"format": FORMAT, "version": VERSION, **meta, "arrays": declared})
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
    """Read a checkpoint -> (arrays, meta), migrated to this version. Every array is
    checked against its declaration (dtype, shape: before its data is read; then its
    checksum). Raises CheckpointError with a one-line reason."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a pongrl checkpoint (not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
            meta = read_meta(zf, members.pop("meta", None), path)
            declared = meta.get("arrays") if meta.get("version") in DECLARED else {k: None for k in members}
            if not isinstance(declared, dict) or set(declared) != set(members):
                raise CheckpointError(f"{path}: its arrays do not match its header's list of them")
            arrays = {k: read_array(zf, members[k], declared[k], f"{path}: array {k!r}") for k in sorted(members)}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as e:
        raise CheckpointError(f"{path} is not a readable pongrl checkpoint ({type(e).__name__}: {e})") from None
    if meta.get("version") != VERSION:
        arrays, meta = migrate(arrays, meta)
    return arrays, meta


def read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, path) -> dict:
    if info is None:
        raise CheckpointError(f"{path} is not a pongrl checkpoint (no 'meta' entry)")
    text = read_array(zf, info, None, f"{path}: its header", kinds="U")
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has a damaged header") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pongrl checkpoint")
    if meta.get("version") not in (1, *DECLARED):
        raise CheckpointError(f"{path} has checkpoint version {meta.get('version')}, this pongrl reads {VERSION}")
    return meta


def read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, declared, what: str, kinds: str = "biuf") -> np.ndarray:
    """One .npy member: its header checked against `declared` ([dtype, shape, crc32])
    and its size against the member's before any data is read; then the checksum."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise CheckpointError(f"{what} has an unknown .npy version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.kind not in kinds or dtype.hasobject:
            raise CheckpointError(f"{what} has dtype {dtype}, which a checkpoint never holds")
        if declared is not None and list(declared[:2]) != [dtype.str, list(shape)]:
            raise CheckpointError(f"{what} is {dtype.str} {tuple(shape)}, its header declares "
                                  f"{declared[0]} {tuple(declared[1])}")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes != info.file_size - f.tell():
            raise CheckpointError(f"{what} should hold {nbytes} bytes, its file member holds {info.file_size - f.tell()}")
        data = bytearray(f.read(nbytes))
    if declared is not None and len(declared) < 3:
        raise CheckpointError(f"{what} has no checksum in its header")
    if declared is not None and zlib.crc32(data) != declared[2]:
        raise CheckpointError(f"{what} is damaged: its checksum does not match")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def declaration(a: np.ndarray) -> list:
    """[dtype, shape, crc32 of the bytes as .npy stores them] of an array."""
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    return [a.dtype.str, list(a.shape), zlib.crc32(a.tobytes(order=order))]


def migrate(arrays: dict[str, np.ndarray], meta: dict) -> tuple[dict[str, np.ndarray], dict]:
    """An older checkpoint as this version: its parameters, config and counters.
    A run's state (the games, mid-rollout buffers) is left out: `resumable` False."""
    kept = {k: v for k, v in arrays.items() if k.startswith(("params/", "learner/params/"))}
    declared = {k: declaration(v) for k, v in kept.items()}
    return kept, {**meta, "version": VERSION, "arrays": declared, "resumable": meta.get("kind") == "agent",
                  "saved_version": meta.get("version")}


def check_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple], path: str | Path) -> None:
    """Every expected array is present with its shape; else one line saying what is wrong."""
    for key, shape in expected.items():
        if key not in arrays:
            raise CheckpointError(f"{path}: missing array {key!r}")
        if tuple(arrays[key].shape) != tuple(shape):
            raise CheckpointError(f"{path}: array {key!r} has shape {tuple(arrays[key].shape)}, expected {tuple(shape)}")


def check_params(params: dict[str, np.ndarray], dtypes: tuple, path) -> None:
    """Network weights must be of one of `dtypes` and finite; else one line naming the array."""
    for k, v in params.items():
        if v.dtype not in dtypes:
            raise CheckpointError(f"{path}: weights {k!r} are {v.dtype}, expected {' or '.join(map(str, dtypes))}")
        if not np.isfinite(v).all():
            raise CheckpointError(f"{path}: weights {k!r} hold NaN or infinite values")


def section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix` ("learner/", "env0/", ...), the prefix removed from their names."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of `section`: every name under `prefix`."""
    return {prefix + k: v for k, v in arrays.items()}


# ------------------------------------------------------------------ random generators as arrays
def rng_state(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's state as (6,) uint64: state and increment (128 bits each) and the spare 32 bits."""
    s = rng.bit_generator.state
    if s["bit_generator"] != "PCG64":
        raise ValueError(f"only PCG64 generators are saved, got {s['bit_generator']}")
    st, inc, mask = s["state"]["state"], s["state"]["inc"], (1 << 64) - 1
    return np.array([st >> 64, st & mask, inc >> 64, inc & mask, s["has_uint32"], s["uinteger"]], np.uint64)


def set_rng_state(rng: np.random.Generator, a: np.ndarray) -> None:
    """Put back a state saved by `rng_state`."""
    v = [int(x) for x in a]
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": (v[0] << 64) | v[1],
                                                                   "inc": (v[2] << 64) | v[3]},
                               "has_uint32": v[4], "uinteger": v[5]}
