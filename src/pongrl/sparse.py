"""Compressed sparse rows for difference frames.

A difference frame has about 26 nonzero pixels out of 6400 (0.4%). Stored as
CSR (row pointers, int16 column indices, int8 values in {-1, 1}) a transition
costs ~80 bytes instead of the 51,200 of a float64 vector. The networks
multiply only the pixels that occur (pongrl.inputs.compact, `matmul_active`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import Spec, check, require


def indptr_of(row_of_entry: np.ndarray, rows: int) -> np.ndarray:
    """Row pointers (rows + 1,) from the (sorted) row of every entry."""
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(row_of_entry, minlength=rows), out=indptr[1:])
    return indptr


def check_saved(s: dict[str, np.ndarray], prefix: str, rows: int, width: int, what: str) -> None:
    """The saved arrays prefix + indptr, cols, vals are `rows` sparse rows of `width` inputs; else StateError."""
    check(
        s,
        {
            prefix + "indptr": Spec("int64", ("*",), lo=0),
            prefix + "cols": Spec("int16", ("*",), lo=0, hi=width - 1),
            prefix + "vals": Spec("int8", ("*",), lo=-1, hi=1),
        },
        what=what,
    )
    indptr, nnz = s[prefix + "indptr"], len(s[prefix + "cols"])
    require(
        len(indptr) == rows + 1
        and indptr[0] == 0
        and indptr[-1] == nnz == len(s[prefix + "vals"])
        and bool((np.diff(indptr) >= 0).all()),
        f"{what}: its sparse rows {prefix}indptr do not fit {rows} rows of {nnz} entries",
    )


@dataclass
class SparseRows:
    indptr: np.ndarray  # (B + 1,) int64: row b holds cols[indptr[b]:indptr[b + 1]]
    cols: np.ndarray  # (nnz,) int16 pixel index in [0, 6400)
    vals: np.ndarray  # (nnz,) int8, -1 or +1

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.cols.nbytes + self.vals.nbytes

    @classmethod
    def from_dense(cls, x: np.ndarray) -> SparseRows:
        """(B, D) int array -> CSR."""
        r, c = np.nonzero(x)
        return cls(indptr_of(r, x.shape[0]), c.astype(np.int16), x[r, c].astype(np.int8))

    @classmethod
    def from_active(cls, sub: np.ndarray, active: np.ndarray) -> SparseRows:
        """CSR of a dense (B, D) array given only its nonzero columns: sub = x[:, active]."""
        r, c = np.nonzero(sub)
        return cls(indptr_of(r, sub.shape[0]), active[c].astype(np.int16), sub[r, c].astype(np.int8))

    @classmethod
    def concat(cls, parts: list[SparseRows]) -> SparseRows:
        if not parts:
            return cls(np.zeros(1, np.int64), np.zeros(0, np.int16), np.zeros(0, np.int8))
        counts = np.diff(np.concatenate([p.indptr for p in parts]))  # entries per row, and one between parts
        between = np.cumsum([len(p.indptr) for p in parts[:-1]], dtype=np.int64) - 1
        counts = np.delete(counts, between)
        indptr = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, np.concatenate([p.cols for p in parts]), np.concatenate([p.vals for p in parts]))

    def slice(self, start: int, stop: int) -> SparseRows:
        """Rows [start, stop) as a new CSR (the arrays are views)."""
        a, b = self.indptr[start], self.indptr[stop]
        return SparseRows(self.indptr[start : stop + 1] - a, self.cols[a:b], self.vals[a:b])

    def take(self, rows: np.ndarray) -> SparseRows:
        """The given rows, in that order."""
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        counts = stops - starts
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        # positions of every kept entry: start of its row + offset inside the row
        idx = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1])
        return SparseRows(indptr, self.cols[idx], self.vals[idx])

    def row_ids(self) -> np.ndarray:
        """(nnz,) the row of every stored entry."""
        return np.repeat(np.arange(self.rows), np.diff(self.indptr))

    def to_dense(self, dim: int, dtype=np.float64) -> np.ndarray:
        out = np.zeros((self.rows, dim), dtype)
        out[self.row_ids(), self.cols.astype(np.int64)] = self.vals
        return out


def active_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns of x (B, D) with any nonzero, and x restricted to them (B, k)."""
    active = np.flatnonzero(x.any(axis=0))
    return active, x[:, active]


def matmul_active(sub: np.ndarray, active: np.ndarray, WT: np.ndarray) -> np.ndarray:
    """x @ WT given x's active columns: (B, k) @ (k, H) -> (B, H).

    For a small batch (the N games of one step, k <= nnz) one small BLAS call beats
    a scatter-add; it costs O(B * nnz * H) with no Python loop."""
    return sub.astype(WT.dtype) @ WT[active]
