"""What a network sees: the input kinds, encoded as sparse rows.

Every kind starts from the tutorial's difference frame x (6400 int8 in
{-1, 0, 1}) and the current binary frame f (80x80 uint8 in {0, 1}):

    "diff"                x                                        6400 inputs
    "frame+diff"          f, x                                    12800
    "frame+diff+pyramid"  f, x, then both at 4x4 and 8x8 blocks   13800

A block cell is 1 if its pixel block holds anything; its difference is the
change of that cell. A weight on a block is shared by all of its pixels, so
what a unit learns about the ball at one pixel carries over to its neighbours.
The kind of a weight matrix is read off its width (`kind_of_width`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .preprocess import D, H
from .sparse import SparseRows, indptr_of

POOLS = {"diff": (), "frame+diff": (), "frame+diff+pyramid": (4, 8)}
"""Sides of the pixel blocks each kind max-pools, finest first (after its 80x80 panels)."""
WIDTHS = {
    kind: (1 if kind == "diff" else 2) * D + sum(2 * D // p**2 for p in pools) for kind, pools in POOLS.items()
}  # 6400, 12800, 13800
KINDS = tuple(POOLS)


def kind_of_width(width: int) -> str:
    """The input kind of a first layer with `width` inputs."""
    for kind, w in WIDTHS.items():
        if w == width:
            return kind
    raise ValueError(f"no input kind has {width} inputs; the kinds have {sorted(WIDTHS.values())}")


def sparse_rows(d: np.ndarray) -> SparseRows:
    """(N, K) int8 -> SparseRows, like SparseRows.from_dense but ~5x faster on
    frames with 0.4% nonzeros: it scans 8 pixels at a time as one uint64 word."""
    d = np.ascontiguousarray(d, np.int8)
    if d.size % 8:
        return SparseRows.from_dense(d)
    words = np.flatnonzero(d.reshape(-1).view(np.uint64))  # words holding a nonzero pixel
    sub = np.flatnonzero(d.reshape(-1, 8)[words])  # (nnz,) position among those words' pixels
    idx = words[sub // 8] * 8 + sub % 8  # (nnz,) flat index, ascending
    rows = idx // d.shape[1]
    return SparseRows(indptr_of(rows, len(d)), (idx - rows * d.shape[1]).astype(np.int16), d.reshape(-1)[idx])


def encode(x: np.ndarray, frames: np.ndarray, kind: str) -> SparseRows:
    """Difference frames x (N, 6400) int8 and binary frames (N, 80, 80) -> sparse inputs (N, WIDTHS[kind])."""
    if kind not in POOLS:
        raise ValueError(f"unknown input kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "diff":
        return sparse_rows(x)
    f = np.ascontiguousarray(frames).reshape(len(frames), D).view(np.int8)  # (N, 6400) in {0, 1}
    parts = [f, x]  # frame+diff: (N, 12800)
    cur, prev, side = f, f - x, H  # f - x is the previous frame
    for pool in POOLS[kind]:  # each level pools the one before: a max of maxes
        k = pool * side // H  # block side in cells of the previous level
        cur, prev, side = block_max(cur, side, k), block_max(prev, side, k), side // k  # (N, side**2) each
        parts += [cur, cur - prev]
    return sparse_rows(np.concatenate(parts, axis=1))


def block_max(f: np.ndarray, side: int, k: int) -> np.ndarray:
    """Binary side x side images (N, side**2) -> (N, (side/k)**2): 1 where a k x k block holds any."""
    n, out = len(f), side // k
    m = max_last(f.reshape(n, side, out, k))  # (n, side, out): each pixel row pooled in runs of k
    return max_last(m.reshape(n, out, k, out).swapaxes(2, 3)).reshape(n, out * out)  # then k rows at a time


def max_last(a: np.ndarray) -> np.ndarray:
    """(..., k) -> (...) maximum over the last axis, as k - 1 elementwise maxima:
    ~10x faster than a single .max() over strided axes for small k."""
    m = a[..., 0].copy()
    for i in range(1, a.shape[-1]):
        np.maximum(m, a[..., i], out=m)
    return m


@dataclass
class Inputs:
    """Sparse inputs (B, D) restricted to the U columns (pixels) that occur in them.

    With U ~ 1.3k of D = 12800 for a minibatch of 512, X @ W1.T[cols] and
    X.T @ dh are small dense products that BLAS runs faster than a sparse
    gather-and-reduce, and X.T @ dh is directly the row-sparse W1 gradient.
    """

    cols: np.ndarray  # (U,) int64 sorted pixel indices
    X: np.ndarray  # (B, U) values in {-1, 0, 1}


def compact(x: SparseRows, dtype=np.float32) -> Inputs:
    """SparseRows (B, D) -> Inputs (the occurring columns and a dense (B, U) block)."""
    seen = np.zeros(int(x.cols.max()) + 1 if len(x.cols) else 0, bool)
    seen[x.cols] = True  # np.unique's sorted columns, without its sort (~2x faster)
    cols = np.flatnonzero(seen)  # (U,)
    X = np.zeros((x.rows, len(cols)), dtype)
    X[x.row_ids(), (np.cumsum(seen) - 1)[x.cols]] = x.vals  # position of each entry's column among cols
    return Inputs(cols, X)
