"""Crash-safe checkpoints: one .npz of arrays plus a JSON header, never pickle.

One mechanism saves everything a run is made of: every stateful part
(learner, collector, games) gives `state()`, a flat dict of named arrays, and
takes them back with `restore()`; `section` picks one part's arrays out of a
checkpoint. The header declares every array's dtype, shape and checksum (CRC-32), and
loading checks each array against its declaration: dtype and shape from the
.npy header before any data is read, then the checksum of the data.

The file is written to a temporary name in the same folder (NAME.pongrl-XXXXXXXX.tmp,
as every file pongrl replaces: `temp_file`), flushed to disk (fsync), then renamed over
the old one, so a reader always sees either the old checkpoint or the new one, whole.

Reading is bounded (`load`): a regular file only, each member no larger than its
declaration allows, a header of bounded size and depth, and no header that can turn
the checks off by calling itself version 1.

Format versions: 1 (pongrl 0.1) saved no declarations and checkpointed PPO
mid-rollout; 2 (pongrl 0.2) saved the games as action logs to replay.
`migrate` reads their agents and parameters, and says that their runs cannot
be resumed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import UserError
from .schema import StateError

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
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, meta=np.array(header), **arrays)
            f.flush()
            os.fsync(f.fileno())
        replace_with(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    _fsync_dir(path.parent)


TEMP_MARK = ".pongrl-"
TEMP_GLOB = "*.pongrl-*.tmp"
"""Every temporary file pongrl writes is NAME.pongrl-XXXXXXXX.tmp, beside the file NAME it
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
            size = os.fstat(f.fileno()).st_size
            if not zipfile.is_zipfile(f):
                raise CheckpointError(f"{path} is not a pongrl checkpoint (not an .npz archive)")
            with zipfile.ZipFile(f) as zf:
                infos = zf.infolist()
                members = {i.filename.removesuffix(".npy"): i for i in infos}
                if len(members) != len(infos):
                    raise CheckpointError(f"{path} is not a pongrl checkpoint (two of its members have one name)")
                for info in infos:
                    check_member(info, size, f"{path}: member {info.filename!r}")
                meta = read_meta(zf, members.pop("meta", None), path)
                declared = declarations(meta, members, path)
                arrays = {}
                for k in sorted(members):
                    what = f"{path}: array {k!r}"
                    if declared[k] is None and not k.startswith(MIGRATED):  # version 1: migrate drops it
                        read_array(zf, members[k], None, what, header_only=True)
                    else:
                        arrays[k] = read_array(zf, members[k], declared[k], what)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, NotImplementedError,
                RuntimeError) as e:  # RuntimeError: zipfile's own refusals; every known one is checked first
            raise CheckpointError(f"{path} is not a readable pongrl checkpoint ({type(e).__name__}: "
                                  f"{one_line(e)})") from None
    if meta.get("version") != VERSION:
        arrays, meta = migrate(arrays, meta)
    return arrays, meta


MAX_HEADER_CHARS = 1 << 20  # a checkpoint's JSON header: at most this many characters (1 MiB)...
MAX_HEADER_DEPTH = 32  # ...nested at most this deep (pongrl's own are 4 deep)
NPY_HEADER_MAX = 16 << 10  # a .npy member's own header (numpy reads at most 10,000 bytes of it)
MAX_UNDECLARED_BYTES = 256 << 20  # version 1 declared nothing: its weights, all together, at most this
MAX_RATIO, RATIO_FREE = 100, 64 << 20  # a deflated member over RATIO_FREE bytes expands at most MAX_RATIO times
MIGRATED = ("params/", "learner/params/")  # the arrays `migrate` keeps of an older checkpoint
LATER_LAYOUT = ("learner/", "collector/")  # names that only versions 2 and later give arrays
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
ZIP_ENCRYPTED, ZIP_UNSUPPORTED = 0x1, 0x60  # flag bits: encrypted; patched data or strong encryption


def open_regular(path: Path):
    """(binary file, path) of a regular file: `path`, or a run folder's checkpoint.npz.
    Anything else (a FIFO, a device, a symlink to one) is refused before it is opened,
    and it is opened without blocking, so nothing here ever waits on a writer."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            path = path / "checkpoint.npz"
            st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read the checkpoint {path}: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path} is not a regular file ({file_kind(st.st_mode)}), so not a pongrl checkpoint")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise CheckpointError(f"cannot read the checkpoint {path}: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # it was replaced between the two looks
        os.close(fd)
        raise CheckpointError(f"{path} is not a regular file ({file_kind(mode)}), so not a pongrl checkpoint")
    return os.fdopen(fd, "rb"), path


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def check_member(info: zipfile.ZipInfo, file_size: int, what: str) -> None:
    """A zip member as pongrl writes them (stored or deflated, not encrypted), whose
    sizes fit in the file; checked before the member is opened."""
    if info.compress_type not in ZIP_METHODS:
        raise CheckpointError(f"{what} is compressed with zip method {info.compress_type}; "
                              f"a checkpoint's members are stored or deflated")
    if info.flag_bits & ZIP_ENCRYPTED:
        raise CheckpointError(f"{what} is encrypted; a checkpoint's members never are")
    if info.flag_bits & ZIP_UNSUPPORTED:
        raise CheckpointError(f"{what} uses a zip feature a checkpoint never does (flag bits {info.flag_bits:#x})")
    if info.compress_size > file_size:
        raise CheckpointError(f"{what} claims {info.compress_size} bytes, more than the whole file holds")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise CheckpointError(f"{what} is damaged: stored, yet its two sizes differ")
    if info.file_size > max(RATIO_FREE, MAX_RATIO * info.compress_size):
        raise CheckpointError(f"{what} would expand {info.compress_size} bytes to {info.file_size}, "
                              f"more than a checkpoint ever does")


def declarations(meta: dict, members: dict[str, zipfile.ZipInfo], path) -> dict[str, list | None]:
    """Each member's declaration ([dtype, shape, crc32]) from the header; None for every
    member of a genuine version-1 file, which declared nothing. A header whose version
    disagrees with the file's layout is refused: the header cannot turn checks off."""
    if meta["version"] == 1:
        if "arrays" in meta:
            raise CheckpointError(f"{path}: its header says version 1 but declares its arrays as versions 2 and "
                                  f"later do; its version does not fit its layout")
        later = sorted(k for k in members if k.startswith(LATER_LAYOUT))
        if later:
            raise CheckpointError(f"{path}: its header says version 1 but it holds {later[0]!r}, which only "
                                  f"versions 2 and later write; its version does not fit its layout")
        kept = sum(i.file_size for k, i in members.items() if k.startswith(MIGRATED))
        if kept > MAX_UNDECLARED_BYTES:
            raise CheckpointError(f"{path}: its weights would take {kept} bytes, more than a version-1 "
                                  f"checkpoint ever held")
        return {k: None for k in members}
    declared = meta.get("arrays")
    if not isinstance(declared, dict) or set(declared) != set(members):
        raise CheckpointError(f"{path}: its arrays do not match its header's list of them")
    for k, d in declared.items():
        check_declaration(d, f"{path}: array {k!r}")
    return declared


def check_declaration(d, what: str) -> None:
    """[dtype string, shape as a list of sizes, crc32], as `declaration` writes it. One
    without its checksum is refused once its dtype and shape are compared (`read_array`)."""
    if not isinstance(d, list) or len(d) not in (2, 3):
        shown = "null" if d is None else type(d).__name__ if not isinstance(d, list) else f"a list of {len(d)}"
        raise CheckpointError(f"{what}: its header declares it as {shown}, not [dtype, shape, checksum]")
    dtype, shape, crc = (*d, 0) if len(d) == 2 else d
    try:
        ok_dtype = isinstance(dtype, str) and np.dtype(dtype).str == dtype and np.dtype(dtype).kind in "biuf"
    except (TypeError, ValueError, SyntaxError):
        ok_dtype = False
    if not ok_dtype:
        raise CheckpointError(f"{what}: its header declares the dtype {str(dtype)[:40]!r}, which a checkpoint "
                              f"never holds")
    if not (isinstance(shape, list) and len(shape) <= 32
            and all(type(n) is int and n >= 0 for n in shape)):
        raise CheckpointError(f"{what}: its header declares a shape that is not a list of sizes")
    if not (type(crc) is int and 0 <= crc < 1 << 32):
        raise CheckpointError(f"{what}: its header declares a checksum that is not a CRC-32")


def declared_nbytes(d: list) -> int:
    return int(np.prod(d[1], dtype=object)) * np.dtype(d[0]).itemsize


def read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, path) -> dict:
    if info is None:
        raise CheckpointError(f"{path} is not a pongrl checkpoint (no 'meta' entry)")
    limit = 4 * MAX_HEADER_CHARS + NPY_HEADER_MAX  # the header is stored as UTF-32
    too_long = f"a checkpoint's header is at most {MAX_HEADER_CHARS} characters"
    if info.file_size > limit:
        raise CheckpointError(f"{path} has a header of {info.file_size} bytes; {too_long}")
    text = read_array(zf, info, None, f"{path}: its header", kinds="U", limit=limit)
    if text.shape != ():
        raise CheckpointError(f"{path} has a damaged header (an array of {text.size} strings)")
    text = str(text)
    if len(text) > MAX_HEADER_CHARS:
        raise CheckpointError(f"{path} has a header of {len(text)} characters; {too_long}")
    if header_depth(text) > MAX_HEADER_DEPTH:
        raise CheckpointError(f"{path} has a header nested more than {MAX_HEADER_DEPTH} deep; "
                              f"a checkpoint's header never is")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path} has a damaged header") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pongrl checkpoint")
    version = meta.get("version")
    if type(version) is not int or version not in (1, *DECLARED):
        raise CheckpointError(f"{path} has checkpoint version {str(version)[:40]}, this pongrl reads {VERSION}")
    return meta


JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def header_depth(text: str) -> int:
    """How deep JSON text nests its lists and objects, found without parsing it (no recursion)."""
    brackets = re.sub(r"[^\[\]{}]", "", JSON_STRING.sub("", text))
    if not brackets:
        return 0
    b = np.frombuffer(brackets.encode("ascii"), np.uint8)
    return int(np.where((b == ord("[")) | (b == ord("{")), 1, -1).cumsum().max())


def read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, declared, what: str, kinds: str = "biuf",
               limit: int = MAX_UNDECLARED_BYTES, header_only: bool = False) -> np.ndarray | None:
    """One .npy member: its size against its declaration ([dtype, shape, crc32]; else
    against `limit`) before it is opened, its .npy header against the declaration and
    its size against the member's before any data is read; then the checksum.
    `header_only`: check the .npy header and read no data."""
    if declared is not None:
        limit = declared_nbytes(declared) + NPY_HEADER_MAX
    if not header_only and info.file_size > limit:
        raise CheckpointError(f"{what}: its file member holds {info.file_size} bytes, more than its "
                              f"{'declaration' if declared is not None else 'kind'} allows ({limit})")
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
        if header_only:
            return None
        if declared is not None and len(declared) < 3:
            raise CheckpointError(f"{what} has no checksum in its header")
        data = bytearray(f.read(nbytes))
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
    """Put back a state saved by `rng_state`; StateError if it is not one."""
    v = [int(x) for x in np.asarray(a, np.uint64).reshape(-1)]
    if len(v) != 6 or v[3] % 2 == 0 or v[4] > 1 or v[5] >= 2**32:
        raise StateError("a saved random generator is damaged (a PCG64 state has an odd increment and a "
                         "32-bit spare)")
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": (v[0] << 64) | v[1],
                                                                   "inc": (v[2] << 64) | v[3]},
                               "has_uint32": v[4], "uinteger": v[5]}
