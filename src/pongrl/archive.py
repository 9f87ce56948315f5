"""A checkpoint's .npz archive, read with bounds: nothing in the file decides how much is read.

`open_regular` opens a regular file only (a FIFO or a device is refused before it is
opened, and nothing waits on a writer). `zip_members` and `check_member` admit only
zip members as pongrl writes them (stored or deflated, unencrypted, sizes that fit in
the file). `read_header` reads the JSON header within MAX_HEADER_CHARS characters
nested at most MAX_HEADER_DEPTH deep (`header_depth`, without parsing it). `read_array`
reads one .npy member against its declaration (`declaration`: [dtype, shape, crc32];
`check_declaration`): its size before it is opened, its .npy header before any data
is read, then its checksum. Every refusal is a `CheckpointError` of one line.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Literal, overload

import numpy as np

from .errors import UserError


class CheckpointError(UserError):
    """The file is missing, damaged, or not a checkpoint that fits."""


MAX_HEADER_CHARS = 1 << 20  # a checkpoint's JSON header: at most this many characters (1 MiB)...
MAX_HEADER_DEPTH = 32  # ...nested at most this deep (pongrl's own are 4 deep)
NPY_HEADER_MAX = 16 << 10  # a .npy member's own header (numpy reads at most 10,000 bytes of it)
MAX_UNDECLARED_BYTES = 256 << 20  # version 1 declared nothing: its weights, all together, at most this
MAX_RATIO, RATIO_FREE = 100, 64 << 20  # a deflated member over RATIO_FREE bytes expands at most MAX_RATIO times
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
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def zip_members(zf: zipfile.ZipFile, file_size: int, path) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name (without .npy), each checked (`check_member`) before any is opened."""
    infos = zf.infolist()
    members = {i.filename.removesuffix(".npy"): i for i in infos}
    if len(members) != len(infos):
        raise CheckpointError(f"{path} is not a pongrl checkpoint (two of its members have one name)")
    for info in infos:
        check_member(info, file_size, f"{path}: member {info.filename!r}")
    return members


def check_member(info: zipfile.ZipInfo, file_size: int, what: str) -> None:
    """A zip member as pongrl writes them (stored or deflated, not encrypted), whose
    sizes fit in the file; checked before the member is opened."""
    if info.compress_type not in ZIP_METHODS:
        raise CheckpointError(
            f"{what} is compressed with zip method {info.compress_type}; a checkpoint's members are stored or deflated"
        )
    if info.flag_bits & ZIP_ENCRYPTED:
        raise CheckpointError(f"{what} is encrypted; a checkpoint's members never are")
    if info.flag_bits & ZIP_UNSUPPORTED:
        raise CheckpointError(f"{what} uses a zip feature a checkpoint never does (flag bits {info.flag_bits:#x})")
    if info.compress_size > file_size:
        raise CheckpointError(f"{what} claims {info.compress_size} bytes, more than the whole file holds")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise CheckpointError(f"{what} is damaged: stored, yet its two sizes differ")
    if info.file_size > max(RATIO_FREE, MAX_RATIO * info.compress_size):
        raise CheckpointError(
            f"{what} would expand {info.compress_size} bytes to {info.file_size}, more than a checkpoint ever does"
        )


def declaration(a: np.ndarray) -> list:
    """[dtype, shape, crc32 of the bytes as .npy stores them] of an array."""
    order: Literal["F", "C"] = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    return [a.dtype.str, list(a.shape), zlib.crc32(a.tobytes(order=order))]


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
        raise CheckpointError(
            f"{what}: its header declares the dtype {str(dtype)[:40]!r}, which a checkpoint never holds"
        )
    if not (isinstance(shape, list) and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)):
        raise CheckpointError(f"{what}: its header declares a shape that is not a list of sizes")
    if not (type(crc) is int and 0 <= crc < 1 << 32):
        raise CheckpointError(f"{what}: its header declares a checksum that is not a CRC-32")


def declared_nbytes(d: list) -> int:
    return int(np.prod(d[1], dtype=object)) * np.dtype(d[0]).itemsize


def read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path) -> object:
    """The header member's JSON, parsed once its size, length and depth are within bounds."""
    limit = 4 * MAX_HEADER_CHARS + NPY_HEADER_MAX  # the header is stored as UTF-32
    too_long = f"a checkpoint's header is at most {MAX_HEADER_CHARS} characters"
    if info.file_size > limit:
        raise CheckpointError(f"{path} has a header of {info.file_size} bytes; {too_long}")
    header = read_array(zf, info, None, f"{path}: its header", kinds="U", limit=limit)
    if header.shape != ():
        raise CheckpointError(f"{path} has a damaged header (an array of {header.size} strings)")
    text = str(header)
    if len(text) > MAX_HEADER_CHARS:
        raise CheckpointError(f"{path} has a header of {len(text)} characters; {too_long}")
    if header_depth(text) > MAX_HEADER_DEPTH:
        raise CheckpointError(
            f"{path} has a header nested more than {MAX_HEADER_DEPTH} deep; a checkpoint's header never is"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path} has a damaged header") from None


JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def header_depth(text: str) -> int:
    """How deep JSON text nests its lists and objects, found without parsing it (no recursion)."""
    brackets = re.sub(r"[^\[\]{}]", "", JSON_STRING.sub("", text))
    if not brackets:
        return 0
    b = np.frombuffer(brackets.encode("ascii"), np.uint8)
    return int(np.where((b == ord("[")) | (b == ord("{")), 1, -1).cumsum().max())


@overload
def read_array(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    declared,
    what: str,
    kinds: str = ...,
    limit: int = ...,
    header_only: Literal[False] = ...,
) -> np.ndarray: ...
@overload
def read_array(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    declared,
    what: str,
    kinds: str = ...,
    limit: int = ...,
    *,
    header_only: Literal[True],
) -> None: ...
def read_array(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    declared,
    what: str,
    kinds: str = "biuf",
    limit: int = MAX_UNDECLARED_BYTES,
    header_only: bool = False,
) -> np.ndarray | None:
    """One .npy member: its size against its declaration ([dtype, shape, crc32]; else
    against `limit`) before it is opened, its .npy header against the declaration and
    its size against the member's before any data is read; then the checksum.
    `header_only`: check the .npy header and read no data."""
    if declared is not None:
        limit = declared_nbytes(declared) + NPY_HEADER_MAX
    if not header_only and info.file_size > limit:
        raise CheckpointError(
            f"{what}: its file member holds {info.file_size} bytes, more than its "
            f"{'declaration' if declared is not None else 'kind'} allows ({limit})"
        )
    with zf.open(info) as f:
        shape, fortran, dtype, nbytes = npy_header(f, info, declared, what, kinds)
        if header_only:
            return None
        if declared is not None and len(declared) < 3:
            raise CheckpointError(f"{what} has no checksum in its header")
        data = bytearray(f.read(nbytes))
    if declared is not None and zlib.crc32(data) != declared[2]:
        raise CheckpointError(f"{what} is damaged: its checksum does not match")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def npy_header(f, info: zipfile.ZipInfo, declared, what: str, kinds: str) -> tuple[tuple, bool, np.dtype, int]:
    """A .npy member's header, read from the open member `f`: (shape, fortran order, dtype, data bytes),
    checked against the declaration and against the member's size before any data is read."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise CheckpointError(f"{what} has an unknown .npy version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if dtype.kind not in kinds or dtype.hasobject:
        raise CheckpointError(f"{what} has dtype {dtype}, which a checkpoint never holds")
    if declared is not None and list(declared[:2]) != [dtype.str, list(shape)]:
        raise CheckpointError(
            f"{what} is {dtype.str} {tuple(shape)}, its header declares {declared[0]} {tuple(declared[1])}"
        )
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes != info.file_size - f.tell():
        raise CheckpointError(f"{what} should hold {nbytes} bytes, its file member holds {info.file_size - f.tell()}")
    return shape, fortran, dtype, nbytes
