"""The learner's threads: T of them share the heavy arrays of one update.

NumPy's BLAS calls and ufuncs release Python's GIL, so T threads can work on T
parts of one product, or of one elementwise pass, at once. A `Pool` runs a
function over parts, one part per thread (the first in the calling thread),
and waits for all of them. With T = 1 there are no threads: every caller makes
the calls it made before the pool existed, so the numbers are bit for bit the
same as a one-thread learner's.

What each split does to the numbers:
- elementwise passes (Adam, RMSProp, flushing tiny moments) give every element
  the same operations whatever T is: the same numbers for every T;
- products are split into T blocks of output columns (`Pool.matmul`). Every
  element is still one dot product, but BLAS may sum it in another order for a
  block of another shape, so T threads match T = 1 to float32 rounding, and a
  run with a fixed T is reproducible bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

Part = TypeVar("Part")
Result = TypeVar("Result")


def bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into at most `parts` contiguous, nonempty ranges of near-equal size."""
    edges = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


class Pool:
    """T threads for the learner: `run` a function over parts, `matmul` split by columns."""

    def __init__(self, threads: int = 1):
        if threads < 1:
            raise ValueError(f"a pool needs at least 1 thread, got {threads!r}")
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads - 1, "pongrl-learner") if threads > 1 else None

    def run(self, fn: Callable[[Part], Result], parts: Sequence[Part]) -> list[Result]:
        """[fn(p) for p in parts], the first part in this thread and the others in the pool's."""
        if self._executor is None or len(parts) < 2:
            return [fn(p) for p in parts]
        futures = [self._executor.submit(fn, p) for p in parts[1:]]
        try:
            first = fn(parts[0])
        finally:  # no thread may still write into the arrays when this returns or raises
            for f in futures:
                f.exception()
        return [first] + [f.result() for f in futures]

    def ranges(self, n: int) -> list[tuple[int, int]]:
        """[0, n) cut into one range per thread."""
        return bounds(n, self.threads)

    def matmul(self, a: np.ndarray, b: Callable[[int, int], np.ndarray], n: int) -> np.ndarray:
        """a (M, K) @ B (K, n), B's columns [j0, j1) made by b(j0, j1): one block of
        columns per thread (T = 1: the one product a @ b(0, n))."""
        if self.threads == 1 or n < 2:
            return a @ b(0, n)
        out = np.empty((len(a), n), np.result_type(a, b(0, 0)))

        def block(r: tuple[int, int]) -> None:
            out[:, r[0] : r[1]] = a @ b(*r)

        self.run(block, self.ranges(n))
        return out

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


SERIAL = Pool(1)  # no threads: the default of every function that takes a pool
