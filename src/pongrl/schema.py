"""Declared state: what every saved array must be, checked before it is used.

Each part that saves state (`state()` / `restore()`) declares its arrays next
to its code, as a dict of `Spec`s: dtype, shape (sizes or names of sizes the
part knows, such as "H" or "n"), and the range of the values. `check` holds a
section of a checkpoint against its schema and raises `StateError` naming the
array and what is wrong, so that a forged or damaged state is refused in one
line instead of failing later, or silently training on NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Dim = int | str  # a size, or the name of one (resolved against the part's sizes)


class StateError(ValueError):
    """A saved array is not what its part's schema declares."""


@dataclass(frozen=True)
class Spec:
    """What one saved array must be."""

    dtype: str  # numpy dtype name: "float32", "int64", "uint8", "bool", ...
    shape: tuple[Dim, ...]  # "*": any length along that axis
    lo: float | None = None  # smallest value allowed (inclusive)
    hi: float | None = None  # largest value allowed (inclusive)
    optional: bool = False  # may be absent

    def problem(self, a: np.ndarray, dims: dict[str, int]) -> str | None:
        """What is wrong with `a` (None: nothing)."""
        want = tuple(d if isinstance(d, int) or d == "*" else dims[d] for d in self.shape)
        if a.dtype != np.dtype(self.dtype):
            return f"is {a.dtype}, must be {self.dtype}"
        if len(a.shape) != len(want) or any(w != "*" and s != w for s, w in zip(a.shape, want)):
            return f"has shape {a.shape}, must be {tuple(want)}"
        if a.size == 0:
            return None
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            return "holds NaN or infinite values"
        if a.dtype.kind == "b" and a.view(np.uint8).max() > 1:
            return "holds a value that is neither true nor false"
        if self.lo is not None and a.min() < self.lo:
            return f"holds {a.min().item()!r}, below its smallest allowed value {self.lo!r}"
        if self.hi is not None and a.max() > self.hi:
            return f"holds {a.max().item()!r}, above its largest allowed value {self.hi!r}"
        return None


def check(
    arrays: dict[str, np.ndarray], schema: dict[str, Spec], dims: dict[str, int] | None = None, what: str = "state"
) -> None:
    """Every array of `schema` present (unless optional) and as declared; StateError otherwise."""
    for key, spec in schema.items():
        if key not in arrays:
            if spec.optional:
                continue
            raise StateError(f"{what}: array {key!r} is missing")
        problem = spec.problem(np.asarray(arrays[key]), dims or {})
        if problem:
            raise StateError(f"{what}: array {key!r} {problem}")


def require(ok: bool, message: str) -> None:
    """A check across arrays (their sizes agree, an index points inside another): StateError if not ok."""
    if not ok:
        raise StateError(message)
