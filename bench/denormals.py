"""Denormal floats in a checkpoint: which of its float32 arrays hold them, and how many.

    python bench/denormals.py CHECKPOINT.npz [CHECKPOINT.npz ...]

A denormal is nonzero and below float32's smallest normal number (1.2e-38);
arithmetic on one is many times slower on x86. Optimiser state can decay into
them: a moment whose pixel stopped occurring shrinks by a constant factor every
step. For each file, every float32 array with a nonzero element gets its share
of denormal elements, its share of zeros and its smallest nonzero magnitude.
The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TINY = float(np.finfo(np.float32).tiny)


def census(a: np.ndarray) -> dict:
    """Shares of denormal and zero elements of a float32 array, and its smallest nonzero magnitude."""
    mag = np.abs(a)
    nonzero = mag[mag != 0]
    return {
        "shape": list(a.shape),
        "denormal": np.count_nonzero(nonzero < TINY) / a.size,
        "zero": float(1 - nonzero.size / a.size),
        "min_nonzero": float(nonzero.min()),
    }


def scan(path: Path) -> dict:
    """census() of every float32 array in an .npz file that is not all zero."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if z[k].dtype == np.float32 and z[k].size and z[k].any()}
    return {k: census(a) for k, a in sorted(arrays.items())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", type=Path, nargs="+")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.checkpoints if not p.is_file()]
    if missing:
        ap.error(f"no such checkpoint: {', '.join(missing)}")
    files = {str(p): scan(p) for p in args.checkpoints}
    for name, arrays in files.items():
        for key, c in arrays.items():
            print(
                f"{name} {key} {c['shape']}: denormal {c['denormal']:.2%}, zero {c['zero']:.2%}, "
                f"smallest {c['min_nonzero']:.3g}"
            )
    worst = max((c["denormal"] for arrays in files.values() for c in arrays.values()), default=0.0)
    out = {"benchmark": "denormals", "float32_tiny": TINY, "max_denormal_share": worst, "files": files}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
