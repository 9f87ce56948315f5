"""Crash-safe checkpoints: one .npz of arrays plus a JSON header, never pickle.

One mechanism saves everything a run is made of: every stateful part
(learner, collector, games) gives `state()`, a flat dict of named arrays, and
takes them back with `restore()`; `section` picks one part's arrays out of a
checkpoint. The header declares every array's dtype, shape and checksum (CRC-32), and
loading checks each array against its declaration: dtype and shape from the
.npy header before any data is read, then the checksum of the data.

The file is written to a temporary name in the same folder (NAME.pongrl-RANDOM.tmp,
as every file pongrl replaces: `temp_file`), flushed to disk (fsync), then renamed over
the old one, so a reader always sees either the old checkpoint or the new one, whole.

Reading is bounded (`load`, with `archive`'s bounded reading of the .npz): a regular
file only, each member no larger than its declaration allows, a header of bounded size
and depth, and no header that can turn the checks off by calling itself version 1.

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

from .archive import (
    MAX_UNDECLARED_BYTES,
    CheckpointError,
    check_declaration,
    declaration,
    one_line,
    open_regular,
    read_array,
    read_header,
    zip_members,
)
from .schema import StateError

FORMAT = "pongrl-checkpoint"
VERSION = 3
DECLARED = (2, 3)  # versions whose header declares every array


def save(path: str | Path, arrays: dict[str, np.ndarray], meta: dict, compress: bool = False) -> None:
    """Atomically write `arrays` and the JSON-able `meta` to `path`."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    declared = {k: declaration(v) for k, v in arrays.items()}
    header = json.dumps({"format": FORMAT, "version": VERSION, **meta, "arrays": declared})
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            # numpy's stubs: **arrays could fill savez's allow_pickle; every key here names an array
            (np.savez_compressed if compress else np.savez)(f, meta=np.array(header), **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        replace_with(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    _fsync_dir(path.parent)


TEMP_MARK = ".pongrl-"
TEMP_GLOB = "*.pongrl-*.tmp"
"""Every temporary file pongrl writes is NAME.pongrl-RANDOM.tmp, beside the file NAME it
will replace: a run folder's cleanup removes these (`TEMP_GLOB`) and nothing else."""


def temp_file(path: Path) -> tuple[int, str]:
    """A new, empty temporary file beside `path`, named as `TEMP_GLOB` says -> (fd, its path)."""
    path = Path(path)
    return tempfile.mkstemp(prefix=path.name + TEMP_MARK, suffix=".tmp", dir=path.parent)


def replace_with(tmp: str | Path, path: str | Path) -> None:
    """Give a finished temporary file the usual permissions, then rename it over `path`."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def remove_quietly(tmp: str | Path) -> None:
    """Remove a temporary file if it is there (after a failed write: the first error is the one to report)."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _umask() -> int:
    try:  # Linux: read it, rather than set it for a moment under other threads
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
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
    checksum). Raises CheckpointError with a one-line reason.

    Reading is bounded: only a regular file is opened (a FIFO, a device or a folder
    that is not a run folder is refused before it is read); only stored or deflated,
    unencrypted zip members; no member larger than its declaration allows (checked
    before it is read); a header of at most MAX_HEADER_CHARS characters of JSON
    nested at most MAX_HEADER_DEPTH deep; and version-1 handling (no declarations,
    no checksums) only for a file laid out as version 1 was."""
    path = Path(path)
    f, path = open_regular(path)
    with f:
        try:
            arrays, meta = read_members(f, path)
        except UNREADABLE as e:
            raise CheckpointError(
                f"{path} is not a readable pongrl checkpoint ({type(e).__name__}: {one_line(e)})"
            ) from None
    if meta.get("version") != VERSION:
        arrays, meta = migrate(arrays, meta)
    return arrays, meta


# what reading a damaged file raises; RuntimeError: zipfile's own refusals, every known one checked first
UNREADABLE = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError)
MIGRATED = ("params/", "learner/params/")  # the arrays `migrate` keeps of an older checkpoint
LATER_LAYOUT = ("learner/", "collector/")  # names that only versions 2 and later give arrays


def read_members(f, path) -> tuple[dict[str, np.ndarray], dict]:
    """The open file's arrays and header, each array read against its declaration."""
    size = os.fstat(f.fileno()).st_size
    if not zipfile.is_zipfile(f):
        raise CheckpointError(f"{path} is not a pongrl checkpoint (not an .npz archive)")
    with zipfile.ZipFile(f) as zf:
        members = zip_members(zf, size, path)
        meta = read_meta(zf, members.pop("meta", None), path)
        declared = declarations(meta, members, path)
        arrays = {}
        for k in sorted(members):
            what = f"{path}: array {k!r}"
            if declared[k] is None and not k.startswith(MIGRATED):  # version 1: migrate drops it
                read_array(zf, members[k], None, what, header_only=True)
            else:
                arrays[k] = read_array(zf, members[k], declared[k], what)
    return arrays, meta


def read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, path) -> dict:
    """The header: a pongrl checkpoint's, of a version this pongrl reads."""
    if info is None:
        raise CheckpointError(f"{path} is not a pongrl checkpoint (no 'meta' entry)")
    meta = read_header(zf, info, path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pongrl checkpoint")
    version = meta.get("version")
    if type(version) is not int or version not in (1, *DECLARED):
        raise CheckpointError(f"{path} has checkpoint version {str(version)[:40]}, this pongrl reads {VERSION}")
    return meta


def declarations(meta: dict, members: dict[str, zipfile.ZipInfo], path) -> dict[str, list | None]:
    """Each member's declaration ([dtype, shape, crc32]) from the header; None for every
    member of a genuine version-1 file, which declared nothing. A header whose version
    disagrees with the file's layout is refused: the header cannot turn checks off."""
    if meta["version"] == 1:
        if "arrays" in meta:
            raise CheckpointError(
                f"{path}: its header says version 1 but declares its arrays as versions 2 and "
                f"later do; its version does not fit its layout"
            )
        later = sorted(k for k in members if k.startswith(LATER_LAYOUT))
        if later:
            raise CheckpointError(
                f"{path}: its header says version 1 but it holds {later[0]!r}, which only "
                f"versions 2 and later write; its version does not fit its layout"
            )
        kept = sum(i.file_size for k, i in members.items() if k.startswith(MIGRATED))
        if kept > MAX_UNDECLARED_BYTES:
            raise CheckpointError(
                f"{path}: its weights would take {kept} bytes, more than a version-1 checkpoint ever held"
            )
        return {k: None for k in members}
    declared = meta.get("arrays")
    if not isinstance(declared, dict) or set(declared) != set(members):
        raise CheckpointError(f"{path}: its arrays do not match its header's list of them")
    for k, d in declared.items():
        check_declaration(d, f"{path}: array {k!r}")
    return declared


def migrate(arrays: dict[str, np.ndarray], meta: dict) -> tuple[dict[str, np.ndarray], dict]:
    """An older checkpoint as this version: its parameters, config and counters.
    A run's state (the games, mid-rollout buffers) is left out: `resumable` False."""
    kept = {k: v for k, v in arrays.items() if k.startswith(("params/", "learner/params/"))}
    declared = {k: declaration(v) for k, v in kept.items()}
    return kept, {
        **meta,
        "version": VERSION,
        "arrays": declared,
        "resumable": meta.get("kind") == "agent",
        "saved_version": meta.get("version"),
    }


def check_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple], path: str | Path) -> None:
    """Every expected array is present with its shape; else one line saying what is wrong."""
    for key, shape in expected.items():
        if key not in arrays:
            raise CheckpointError(f"{path}: missing array {key!r}")
        if tuple(arrays[key].shape) != tuple(shape):
            raise CheckpointError(
                f"{path}: array {key!r} has shape {tuple(arrays[key].shape)}, expected {tuple(shape)}"
            )


def check_params(params: dict[str, np.ndarray], dtypes: tuple, path) -> None:
    """Network weights must be of one of `dtypes` and finite; else one line naming the array."""
    for k, v in params.items():
        if v.dtype not in dtypes:
            raise CheckpointError(f"{path}: weights {k!r} are {v.dtype}, expected {' or '.join(map(str, dtypes))}")
        if not np.isfinite(v).all():
            raise CheckpointError(f"{path}: weights {k!r} hold NaN or infinite values")


def section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix` ("learner/", "env0/", ...), the prefix removed from their names."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


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
    """Put back a state saved by `rng_state`; StateError if it is not one."""
    v = [int(x) for x in np.asarray(a, np.uint64).reshape(-1)]
    if len(v) != 6 or v[3] % 2 == 0 or v[4] > 1 or v[5] >= 2**32:
        raise StateError("a saved random generator is damaged (a PCG64 state has an odd increment and a 32-bit spare)")
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (v[0] << 64) | v[1], "inc": (v[2] << 64) | v[3]},
        "has_uint32": v[4],
        "uinteger": v[5],
    }
